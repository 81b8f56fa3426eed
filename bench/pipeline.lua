-- wrk script for the pipelined run of bench/http.sh: every write carries
-- DEPTH (default 16, env PIPELINE_DEPTH) back-to-back GET requests on one
-- keep-alive connection; wrk counts each response separately.
-- Prints the same "BENCH ..." summary line as report.lua.
local depth = tonumber(os.getenv("PIPELINE_DEPTH") or "16")
local batch

function init(args)
  local parts = {}
  for i = 1, depth do
    parts[i] = wrk.format("GET", wrk.path)
  end
  batch = table.concat(parts)
end

function request()
  return batch
end

function done(summary, latency, requests)
  local e = summary.errors
  local errs = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.2f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), errs, e.status))
end
