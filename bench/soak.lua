-- wrk script for bench/soak.sh: a mixed load on one tollgate.
--   8 in 10 requests: client_credentials (BODY, POST /oauth/token)
--   1 in 10: device-credentials refresh under the reuse policy (DEVICE_KEY,
--            DEVICE_REFRESH)
--   1 in 10: header-login: a login (LOGIN_AUTH) when the thread holds no
--            refresh token, else a rotation of one it holds, so sessions
--            keep being created and rotated for the whole run.
-- DELAY_MS (a decimal) paces each connection; the fractional part is
-- spread by drawing floor or ceil, since wrk's delay() takes whole ms.
local form = "application/x-www-form-urlencoded"
local cc_body = os.getenv("BODY")
local device_key = os.getenv("DEVICE_KEY")
local device_body = "refresh_token=" .. (os.getenv("DEVICE_REFRESH") or "")
local login_auth = os.getenv("LOGIN_AUTH")
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")

function init(args)
  n = 0
  held = {}     -- refresh tokens this thread may rotate, each once
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
end

function request()
  n = n + 1
  local slot = n % 10
  if slot == 8 then
    return wrk.format("POST", "/v1/token?grant_type=refresh_token",
      { ["Authorization"] = device_key, ["Content-Type"] = form }, device_body)
  elseif slot == 9 then
    local t = table.remove(held)
    if t then
      return wrk.format("GET", "/v2/authentication/refresh", { ["Refresh-Token"] = t })
    end
    return wrk.format("GET", "/v2/authentication/login", { ["Authorization"] = login_auth })
  end
  return wrk.format("POST", "/oauth/token", { ["Content-Type"] = form }, cc_body)
end

function response(status, headers, body)
  local t = headers["set-refresh-token"] or headers["Set-Refresh-Token"]
  -- Keep a few per thread: enough to rotate, never a growing pile.
  if status == 200 and t and #held < 64 then held[#held + 1] = t end
end

function delay()
  if delay_ms <= 0 then return 0 end
  local whole = math.floor(delay_ms)
  if math.random() < delay_ms - whole then return whole + 1 end
  return whole
end
