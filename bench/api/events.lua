-- POST /v1/events, one purchase.recorded each, a unique UUID-shaped id per request:
-- RUN (random per run) - thread - counter, so reruns append rather than answer duplicates.
local n = 0
local run
init = function(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
  run = math.random(0, 0x7fffffff)
end
request = function()
  n = n + 1
  local id = string.format("%08x-%04x-4000-8000-%012x", run, tid or 0, n)
  local body = string.format(
    '{"specversion":"1.0","id":"%s","source":"/bench/api","type":"purchase.recorded",' ..
    '"subject":"%s","time":"2026-03-14T09:30:00Z","data":{"order_id":"BENCH-%s",' ..
    '"amount":{"minor":%d,"currency":"EUR"},"units":1}}',
    id, customer_id(), id, 100 + n % 1000)
  return wrk.format("POST", "/v1/events", headers({["Content-Type"] = "application/json"}), body)
end
