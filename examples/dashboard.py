"""Live server metrics over Server-Sent Events.   Run: iodine examples/dashboard.py -w 2   then open http://localhost:3000

Every worker process measures itself once a second (Iodine.run_every) and
publishes one JSON line to the "metrics" channel: its pid, the machine's
load average, its own resident memory, how many dashboards it is streaming
to, and how many HTTP requests it answered in the last second. Each open
page holds one EventSource subscribed to that channel, so it sees every
worker's line, whichever worker it is connected to; the page keeps a row
per pid.

    curl -N -H 'Accept: text/event-stream' localhost:3000/metrics    # the raw stream
    for i in $(seq 200); do curl -s localhost:3000/ping >/dev/null; done   # move "req/s"
"""
import json
import os
import threading
import time

from iodine_py import Iodine

CHANNEL = "metrics"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Counters:
    """This process's numbers; app threads and the timer both touch them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.viewers = 0
        self.started = time.time()
        self.last_requests = 0
        self.last_time = time.monotonic()

    def request(self) -> None:
        with self.lock:
            self.requests += 1

    def viewer(self, delta: int) -> None:
        with self.lock:
            self.viewers += delta

    def rate(self) -> float:
        """Requests per second since the previous call."""
        with self.lock:
            now, count = time.monotonic(), self.requests
            elapsed = max(now - self.last_time, 1e-6)
            rate = (count - self.last_requests) / elapsed
            self.last_requests, self.last_time = count, now
            return rate


COUNTERS = Counters()


def rss_bytes() -> int:
    """Resident set size of this process (Linux: /proc/self/statm)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sample() -> dict:
    load1, load5, load15 = os.getloadavg()
    return {
        "pid": os.getpid(),
        "time": round(time.time(), 3),
        "uptime": round(time.time() - COUNTERS.started, 1),
        "load": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "rss": rss_bytes(),
        "viewers": COUNTERS.viewers,
        "requests": COUNTERS.requests,
        "rate": round(COUNTERS.rate(), 1),
    }


def tick() -> None:
    Iodine.publish(CHANNEL, json.dumps(sample()))


# Set before the server starts, so it runs in every worker (-w N).
Iodine.run_every(1000, tick)


class Viewer:
    def on_open(self, client) -> None:
        COUNTERS.viewer(+1)
        client.subscribe(CHANNEL)  # each publish goes straight out as an SSE event
        client.write(json.dumps(sample()), event="hello")  # something to show at once

    def on_close(self, client) -> None:
        COUNTERS.viewer(-1)


PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iodine-py dashboard</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 56em; margin: 2em auto; padding: 0 1em; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: right; padding: .3em .6em; border-bottom: 1px solid #ddd; }
  th:first-child, td:first-child { text-align: left; }
  #status { color: #666; }
</style></head>
<body>
<h1>iodine-py dashboard</h1>
<p id="status">connecting&hellip;</p>
<table><thead><tr><th>worker pid</th><th>load 1/5/15</th><th>RSS</th><th>viewers</th>
<th>requests</th><th>req/s</th><th>uptime</th><th>updated</th></tr></thead>
<tbody id="rows"></tbody></table>
<script>
const rows = document.getElementById("rows"), status = document.getElementById("status");
const mib = (n) => (n / 1048576).toFixed(1) + " MiB";
function show(e) {
  const m = JSON.parse(e.data);
  let tr = document.getElementById("pid-" + m.pid);
  if (!tr) {
    tr = document.createElement("tr");
    tr.id = "pid-" + m.pid;
    rows.appendChild(tr);
  }
  const cells = [m.pid, m.load.join(" / "), mib(m.rss), m.viewers, m.requests, m.rate,
                 m.uptime + " s", new Date(m.time * 1000).toLocaleTimeString()];
  tr.replaceChildren(...cells.map((v) => { const td = document.createElement("td"); td.textContent = v; return td; }));
}
const es = new EventSource("/metrics");
es.onopen = () => { status.textContent = "live"; };
es.onerror = () => { status.textContent = "reconnecting\\u2026"; };
es.onmessage = show;
es.addEventListener("hello", show);
</script>
</body></html>
"""


def app(environ, start_response):
    COUNTERS.request()
    path = environ["PATH_INFO"]
    if path == "/metrics":
        if environ["rack.upgrade?"] == "sse":
            environ["rack.upgrade"] = Viewer
            start_response("200 OK", [])
            return []
        body = json.dumps(sample()).encode()  # a plain GET: one sample as JSON
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(PAGE)))])
        return [PAGE]
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"pong\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]
