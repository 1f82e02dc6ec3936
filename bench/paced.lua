-- wrk script: request.lua's fixed request, paced: each of the CONNS (64)
-- connections waits so that together they send about RATE requests/s
-- (wrk has no rate option; its delay() is per connection, in whole ms, so
-- the rate reached is approximate: the results show the one measured).
wrk.method = os.getenv("METHOD") or "GET"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local period = (tonumber(os.getenv("CONNS") or "64") * 1000) / tonumber(os.getenv("RATE"))
function delay()
  return math.floor(period + 0.5)
end
