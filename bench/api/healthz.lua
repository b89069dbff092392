-- GET /healthz: the framework's ceiling on this machine at the same concurrency.
request = function()
  return wrk.format("GET", "/healthz", headers())
end
