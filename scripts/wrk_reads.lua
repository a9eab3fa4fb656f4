-- wrk: an analyst reading a large case through the web API: pages of 50
-- records at random offsets, and single records, half and half.
-- Set by scripts/bench_web.py: BENCH_COOKIE, BENCH_CASE, BENCH_IDS, BENCH_TOTAL.
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local case = os.getenv("BENCH_CASE")
local total = tonumber(os.getenv("BENCH_TOTAL"))
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
wrk.headers["Accept"] = "application/json"
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then
    local offset = math.random(0, math.max(0, total - 50))
    return wrk.format("GET", "/api/cases/" .. case .. "/records?limit=50&offset=" .. offset)
  end
  return wrk.format("GET", "/api/records/" .. ids[math.random(#ids)])
end
