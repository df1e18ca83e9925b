-- POST /self-service/recovery?flow=<id> with the flow's right code, each
-- flow once: the code submission a native app or an SPA makes through
-- Kratos' flow API (RECLAIM_BENCH_CODE_FILE: "flow code" per line).
local shares = dofile("scripts/wrk/shares.lua")
setup = shares.setup

function init(args)
  codes = shares.lines(os.getenv("RECLAIM_BENCH_CODE_FILE"))
  n = 0
end

function request()
  n = n + 1
  local flow, code = (codes[n] or "exhausted 000000"):match("(%S+) (%S+)")
  return wrk.format("POST", "/self-service/recovery?flow=" .. flow,
    { ["Content-Type"] = "application/json", ["Accept"] = "application/json" },
    '{"method":"code","email":"","code":"' .. code .. '"}')
end
