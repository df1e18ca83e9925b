-- POST /self-service/recovery?flow=<id> with the flow's right code, each
-- flow once: the code submission a native app or an SPA makes through
-- Kratos' flow API (RECLAIM_BENCH_CODE_FILE: "flow code" per line).
local file = os.getenv("RECLAIM_BENCH_CODE_FILE")
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
  local i = 0
  local nthreads = tonumber(os.getenv("RECLAIM_BENCH_THREADS"))
  for line in io.lines(file) do
    if i % nthreads == tid then codes[#codes + 1] = line end
    i = i + 1
  end
  n = 0
end

function request()
  n = n + 1
  local flow, code = (codes[n] or "exhausted 000000"):match("(%S+) (%S+)")
  return wrk.format("POST", "/self-service/recovery?flow=" .. flow,
    { ["Content-Type"] = "application/json", ["Accept"] = "application/json" },
    '{"method":"code","email":"","code":"' .. code .. '"}')
end
