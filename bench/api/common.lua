-- Shared by the scenarios: one summary line per run, parsed by run.sh.
-- wrk's `done` runs once, after every thread has finished.
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, bad))
end

-- Each thread gets its own number, for unique event ids and its own random sequence.
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

customers = tonumber(os.getenv("CUSTOMERS") or "100000")
token = os.getenv("TOKEN")

function headers(extra)
  local h = extra or {}
  if token and token ~= "" then h["Authorization"] = "Bearer " .. token end
  return h
end

function customer_id()
  return string.format("CUST-%06d", math.random(customers))
end
