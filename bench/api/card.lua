-- GET /v1/customers/{id} for random existing customers.
init = function(args) math.randomseed(os.time() * 1000 + (tid or 0)) end
request = function()
  return wrk.format("GET", "/v1/customers/" .. customer_id(), headers())
end
