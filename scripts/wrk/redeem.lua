-- POST /self-service/recovery/confirm with tokens from the link run, each
-- once: the redemption a person's browser makes, with the CSRF cookie and
-- token a form page handed it (RECLAIM_BENCH_CSRF_COOKIE, _TOKEN).
local file = os.getenv("RECLAIM_BENCH_TOKEN_FILE")
local csrf_cookie = os.getenv("RECLAIM_BENCH_CSRF_COOKIE")
local csrf_token = os.getenv("RECLAIM_BENCH_CSRF_TOKEN")
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  local i = 0
  local nthreads = tonumber(os.getenv("RECLAIM_BENCH_THREADS"))
  for line in io.lines(file) do
    -- Each thread takes its share of the tokens.
    if i % nthreads == tid then tokens[#tokens + 1] = line end
    i = i + 1
  end
  n = 0
end

function request()
  n = n + 1
  local token = tokens[n] or "exhausted"
  return wrk.format("POST", "/self-service/recovery/confirm",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = csrf_cookie },
    "token=" .. token .. "&csrf_token=" .. csrf_token)
end
