-- POST /self-service/recovery/confirm with tokens from the link run, each
-- once: the redemption a person's browser makes, with the CSRF cookie and
-- token a form page handed it (RECLAIM_BENCH_CSRF_COOKIE, _TOKEN).
local shares = dofile("scripts/wrk/shares.lua")
local csrf_cookie = os.getenv("RECLAIM_BENCH_CSRF_COOKIE")
local csrf_token = os.getenv("RECLAIM_BENCH_CSRF_TOKEN")
setup = shares.setup

function init(args)
  tokens = shares.lines(os.getenv("RECLAIM_BENCH_TOKEN_FILE"))
  n = 0
end

function request()
  n = n + 1
  local token = tokens[n] or "exhausted"
  return wrk.format("POST", "/self-service/recovery/confirm",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = csrf_cookie },
    "token=" .. token .. "&csrf_token=" .. csrf_token)
end
