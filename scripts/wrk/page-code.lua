-- POST /self-service/recovery/code with a flow's right code, each flow
-- once: the pages' code form, with the CSRF cookie and token a form page
-- handed the browser (RECLAIM_BENCH_CSRF_COOKIE, _TOKEN;
-- RECLAIM_BENCH_CODE_FILE: "flow code" per line).
local file = os.getenv("RECLAIM_BENCH_CODE_FILE")
local csrf_cookie = os.getenv("RECLAIM_BENCH_CSRF_COOKIE")
local csrf_token = os.getenv("RECLAIM_BENCH_CSRF_TOKEN")
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
  return wrk.format("POST", "/self-service/recovery/code",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = csrf_cookie },
    "flow=" .. flow .. "&code=" .. code .. "&csrf_token=" .. csrf_token)
end
