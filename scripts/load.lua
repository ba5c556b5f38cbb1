-- wrk script for scripts/load.sh: POSTs /classify bodies taken in turn from the file named by
-- the BODIES environment variable (one JSON body a line), counts each HTTP status apart and
-- prints one JSON line of results at the end.
local bodies = {}
local threads = {}
local next_body = 1
-- Per-thread status counts; plain numbers so that `done` can read them with thread:get.
s200, s429, s503, sother = 0, 0, 0, 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("BODIES")) do
    table.insert(bodies, line)
  end
  -- Threads start at different bodies so that they do not send the same prompt at once.
  next_body = (math.random(#bodies) - 1) % #bodies + 1
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/classify", { ["Content-Type"] = "application/json" }, body)
end

-- HONOUR_RETRY_AFTER=1: after a 429 the connection waits the answer's Retry-After before its
-- next request, as a well-behaved client would (else it sends the next one at once). wrk
-- asks `delay` right after `response` on the same connection.
local pause_ms = 0
if os.getenv("HONOUR_RETRY_AFTER") == "1" then
  function delay()
    local d = pause_ms
    pause_ms = 0
    return d
  end
end

function response(status, headers, body)
  if status == 200 then s200 = s200 + 1
  elseif status == 429 then
    s429 = s429 + 1
    pause_ms = (tonumber(headers["retry-after"] or headers["Retry-After"]) or 1) * 1000
  elseif status == 503 then s503 = s503 + 1
  else sother = sother + 1 end
end

function done(summary, latency, requests)
  local c = { s200 = 0, s429 = 0, s503 = 0, sother = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + t:get(k) end
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.2f, "ok_per_s": %.1f, "status_200": %d, "status_429": %d, ' ..
    '"status_503": %d, "status_other": %d, "socket_errors": %d, "timeouts": %d, ' ..
    '"p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\n',
    summary.requests, secs, c.s200 / secs, c.s200, c.s429, c.s503, c.sother,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
