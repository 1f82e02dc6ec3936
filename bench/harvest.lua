-- wrk script: header-login logins (GET, Basic in AUTH); every refresh token
-- received is appended to "$TOKENS.<thread>" for bench/rotate.lua.
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  out = io.open(os.getenv("TOKENS") .. "." .. id, "w")
end
wrk.method = "GET"
wrk.headers["Authorization"] = os.getenv("AUTH")
function response(status, headers, body)
  local t = headers["set-refresh-token"] or headers["Set-Refresh-Token"]
  if status == 200 and t then
    out:write(t, "\n")
    out:flush()
  end
end
