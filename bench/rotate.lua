-- wrk script: header-login refreshes, each with a refresh token of its own
-- (harvested by bench/harvest.lua into "$TOKENS.<thread>"), so every request
-- is a real rotation. A thread that runs out stops rather than present a
-- token twice (a reuse revokes the family and would fail the run), and
-- done() prints "out of tokens" so that bench/run.sh flags the figure (a
-- lower bound: wrk still divides by the whole duration).
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  threads[#threads + 1] = thread
end
function init(args)
  tokens = {}
  for line in io.lines(os.getenv("TOKENS") .. "." .. id) do
    tokens[#tokens + 1] = line
  end
  have = #tokens
  n = 0
end
function request()
  n = n + 1
  local t = tokens[n]
  if not t then
    -- The last token was rotated moments ago: presenting it again is a
    -- retry within the leeway (200, same pair) for the few requests that
    -- go out before the thread stops.
    wrk.thread:stop()
    t = tokens[have] or ""
  end
  return wrk.format("GET", nil, { ["Refresh-Token"] = t })
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local used, had = thread:get("n"), thread:get("have")
    if used > had then
      io.write(string.format("thread %d: out of tokens (had %d)\n", thread:get("id"), had))
    end
  end
end
