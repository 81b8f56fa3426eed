-- wrk script: count responses per body (the answering worker's pid).
-- CLOSE=1 in the environment sends "Connection: close" (a new connection
-- per request, so the kernel chooses a worker each time).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  if os.getenv("CLOSE") == "1" then
    wrk.headers["Connection"] = "close"
  end
end

function response(status, headers, body)
  counts[body] = (counts[body] or 0) + 1
end

function done(summary, latency, requests)
  local total, per = 0, {}
  for _, t in ipairs(threads) do
    for pid, n in pairs(t:get("counts")) do
      per[pid] = (per[pid] or 0) + n
      total = total + n
    end
  end
  for pid, n in pairs(per) do
    io.write(string.format("PID %s %d %.1f\n", pid, n, 100.0 * n / total))
  end
end
