-- POST /admin/recovery/link for a different identity each request, and
-- keep each returned token (per thread) for the redemption run.
local ids_file = os.getenv("RECLAIM_BENCH_IDS")
local out_dir = os.getenv("RECLAIM_BENCH_TOKENS")
local admin = os.getenv("RECLAIM_ADMIN_TOKEN")
setup = dofile("scripts/wrk/shares.lua").setup

function init(args)
  ids = {}
  for line in io.lines(ids_file) do ids[#ids + 1] = line end
  nthreads = tonumber(os.getenv("RECLAIM_BENCH_THREADS"))
  n = tid
  tokens = io.open(out_dir .. "/tokens-" .. tid .. "-" .. os.time() .. "-" .. math.random(1e9), "w")
end

function request()
  -- Threads take interleaved identities, so no identity gets two links.
  n = n + nthreads
  local id = ids[(n % #ids) + 1]
  return wrk.format("POST", "/admin/recovery/link",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. admin },
    '{"identity_id":"' .. id .. '"}')
end

-- Flushed every 256 tokens rather than each: a write per response costs
-- wrk a system call that the server under test would pay for in CPU.
-- wrk never closes the file, so up to 255 tokens per thread go unused.
local kept = 0
function response(status, headers, body)
  local token = string.match(body, "token=([%w_%-]+)")
  if token then
    tokens:write(token, "\n")
    kept = kept + 1
    if kept % 256 == 0 then tokens:flush() end
  end
end
