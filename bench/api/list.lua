-- GET /v1/customers?grade=B&sort=risk&limit=50 (the first page: the worst case of keyset paging
-- is no better than this, every page is one index range).
request = function()
  return wrk.format("GET", "/v1/customers?grade=B&sort=risk&limit=50", headers())
end
