-- POST /self-service/recovery/code with a flow's right code, each flow
-- once: the pages' code form, with the CSRF cookie and token a form page
-- handed the browser (RECLAIM_BENCH_CSRF_COOKIE, _TOKEN;
-- RECLAIM_BENCH_CODE_FILE: "flow code" per line).
local shares = dofile("scripts/wrk/shares.lua")
local csrf_cookie = os.getenv("RECLAIM_BENCH_CSRF_COOKIE")
local csrf_token = os.getenv("RECLAIM_BENCH_CSRF_TOKEN")
setup = shares.setup

function init(args)
  codes = shares.lines(os.getenv("RECLAIM_BENCH_CODE_FILE"))
  n = 0
end

function request()
  n = n + 1
  local flow, code = (codes[n] or "exhausted 000000"):match("(%S+) (%S+)")
  return wrk.format("POST", "/self-service/recovery/code",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = csrf_cookie },
    "flow=" .. flow .. "&code=" .. code .. "&csrf_token=" .. csrf_token)
end
