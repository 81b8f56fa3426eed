"""Cross-server pub/sub through Redis, for bench/redis.sh: iodine-py.

Run: iodine bench/apps/redis_wsgi.py -p PORT -b 127.0.0.1 -t 1 -r redis://127.0.0.1:RPORT/0

    ws://HOST:PORT/sub   a subscriber to "bench" (delivery from C, no Python per message)
    ws://HOST:PORT/pub   every message received is published to "bench" (client.publish:
                         through the Redis engine)
    GET /flood?rate=R&secs=S&size=B   publish R messages/s for S seconds from this worker,
                         from a 1 ms timer on the loop (R/1000 per tick); each message is
                         B bytes of text: a CLOCK_MONOTONIC send time in ns (16 hex digits),
                         a sequence number (16 hex digits), padding. Answers at once.
    GET /flood-result    {"published": n, "refused": n, "running": bool, "queued": n}
    GET /                hello (the HTTP latency probe)
"""

import json
import time

from iodine_py import Iodine

CHANNEL = "bench"
state = {"published": 0, "refused": 0, "running": False}


class Subscriber:
    def on_open(self, client):
        client.subscribe(CHANNEL)


class Publisher:
    def on_message(self, client, data):
        client.publish(CHANNEL, data)


def flood(rate, secs, size):
    per_tick = max(1, rate // 1000)
    pad = "x" * max(0, size - 32)
    start = time.monotonic()
    state.update(published=0, refused=0, running=True)
    seq = [0]
    publish = Iodine.publish
    mono = time.monotonic_ns

    def tick():
        if not state["running"]:
            return
        elapsed = time.monotonic() - start
        if elapsed >= secs:
            state["running"] = False
            timer.cancel()
            return
        # on schedule, but at most two ticks' worth at once: an overloaded worker publishes
        # less rather than stalling its loop in a catch-up burst
        due = min(int(elapsed * rate) + per_tick, seq[0] + 2 * per_tick)
        n = seq[0]
        ok = 0
        while n < due:
            if publish(CHANNEL, f"{mono():016x}{n:016x}{pad}"):
                ok += 1
            n += 1
        state["published"] += ok
        state["refused"] += n - seq[0] - ok
        seq[0] = n

    timer = Iodine.run_every(1, tick)


def app(environ, start_response):
    if environ["rack.upgrade?"] == "websocket":
        path = environ["PATH_INFO"]
        environ["rack.upgrade"] = Subscriber() if path == "/sub" else Publisher()
        start_response("101 Switching Protocols", [])
        return []
    path = environ["PATH_INFO"]
    if path == "/flood":
        q = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
        flood(int(q.get("rate", "100000")), float(q.get("secs", "5")), int(q.get("size", "64")))
        body = b'{"ok": true}'
    elif path == "/flood-result":
        st = dict(state)
        st["queued"] = Iodine.PubSub.default.stats()["queued"]
        body = json.dumps(st).encode()
    else:
        body = b"Hello World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
