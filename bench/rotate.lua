-- wrk script: header-login refreshes, each with a refresh token of its own
-- (harvested by bench/harvest.lua), so every request is a real rotation.
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  tokens = {}
  for line in io.lines(os.getenv("TOKENS") .. "." .. id) do
    tokens[#tokens + 1] = line
  end
  n = 0
end
function request()
  n = n + 1
  -- Running out would reuse a token (and fail the run as non-2xx).
  local t = tokens[n] or tokens[1]
  return wrk.format("GET", nil, { ["Refresh-Token"] = t })
end
