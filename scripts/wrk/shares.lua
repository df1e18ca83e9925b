-- What the wrk scripts share: each of wrk's threads numbered (`tid`, set in
-- `setup`) and given its share of a file's lines, so that no two threads
-- send the same single-use token or code. Loaded with `dofile` from the
-- repository's root, where the bench scripts run wrk.
local shares = {}
local threads = {}

-- wrk's `setup`, run once per thread before it starts.
function shares.setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- The lines of `file` this thread takes (every RECLAIM_BENCH_THREADS-th).
function shares.lines(file)
  local mine, i = {}, 0
  local nthreads = tonumber(os.getenv("RECLAIM_BENCH_THREADS"))
  for line in io.lines(file) do
    if i % nthreads == tid then mine[#mine + 1] = line end
    i = i + 1
  end
  return mine
end

return shares
