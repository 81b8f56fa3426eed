-- wrk script used by bench/http.sh for the plain (non-pipelined) runs.
-- It changes nothing about the requests (no request()/response() hooks,
-- so wrk keeps its fast static-request path); it only prints one
-- machine-readable summary line at the end, parsed by http.sh:
--   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N errors=N non2xx=N
function done(summary, latency, requests)
  local e = summary.errors
  local errs = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.2f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), errs, e.status))
end
