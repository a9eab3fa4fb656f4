-- wrk: an analyst adding person records through the web API, with the
-- session's CSRF token and this site's origin, as the browser sends them.
-- Set by scripts/bench_web.py: BENCH_COOKIE, BENCH_CSRF, BENCH_CASE, BENCH_ORIGIN.
local case = os.getenv("BENCH_CASE")
wrk.method = "POST"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
wrk.headers["X-CSRF-Token"] = os.getenv("BENCH_CSRF")
wrk.headers["Origin"] = os.getenv("BENCH_ORIGIN")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local i = 0
request = function()
  i = i + 1
  local body = '{"type": "person", "fields": {"name": "Load Person ' .. i .. '"}}'
  return wrk.format("POST", "/api/cases/" .. case .. "/records", nil, body)
end
