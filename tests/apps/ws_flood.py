"""Writers for the back-pressure tests.

  /flood?name=N[&size=65536&per_tick=4&max=4096]
        A producer that ignores back-pressure: a timer every 2 ms writes
        `per_tick` messages of `size` bytes until write() returns False (or
        `max` writes: a bound, so a broken server cannot eat the machine).
        Logs "ws-flood N refused-after K" (K = writes that returned True)
        and "ws-flood N close".
  /paced?name=N[&count=1000&size=16384&high=8]
        A producer that respects back-pressure: writes binary messages
        numbered 0..count-1 (4-byte big-endian index, then filler) while
        client.pending() <= high; stops (logging "ws-flood N paused" the
        first time), resumes in on_drained; after the last one writes the
        text "done" and logs "ws-flood N done sent=S drained=D max_pending=M".
  /slow?delay=S
        A slow consumer: on_message sleeps S seconds per binary message
        (4-byte index first); the text "end" is answered with
        "count=N in_order=True|False".
  /echo   WebSocket echo (a well-behaved neighbour).
  plain GET: "ok"
"""

import struct
import time

from iodine_py import Iodine
from ws_common import Log, query, text_response

LOG = Log("ws-flood")


class Flood:
    def __init__(self, name, size, per_tick, max_writes):
        self.name = name
        self.chunk = b"f" * size
        self.per_tick = per_tick
        self.max_writes = max_writes
        self.ok = 0
        self.timer = None
        self.done = False

    def on_open(self, client):
        self.timer = Iodine.run_every(2, lambda: self.tick(client))

    def tick(self, client):
        if self.done:
            return
        for _ in range(self.per_tick):
            if self.ok >= self.max_writes:
                self.stop("max-reached", self.ok)
                return
            if not client.write(self.chunk):
                self.stop("refused-after", self.ok)
                return
            self.ok += 1

    def stop(self, what, n):
        self.done = True
        self.timer.cancel()
        LOG.add(self.name, f"{what} {n}")

    def on_close(self, client):
        if self.timer is not None:
            self.timer.cancel()
        LOG.add(self.name, "close")


class Paced:
    def __init__(self, name, count, size, high):
        self.name = name
        self.count = count
        self.size = size
        self.high = high
        self.sent = 0
        self.drained = 0
        self.max_pending = 0
        self.paused_once = False
        self.finished = False

    def pump(self, client):
        while self.sent < self.count:
            p = client.pending()
            if p < 0:
                return
            self.max_pending = max(self.max_pending, p)
            if p > self.high:
                if not self.paused_once:
                    self.paused_once = True
                    LOG.add(self.name, f"paused pending={p}")
                return  # on_drained resumes
            msg = struct.pack("!I", self.sent) + b"p" * (self.size - 4)
            if not client.write(msg):
                LOG.add(self.name, f"write-refused {self.sent}")
                return
            self.sent += 1
        if not self.finished:
            self.finished = True
            client.write("done")
            LOG.add(self.name, f"done sent={self.sent} drained={self.drained} "
                               f"max_pending={self.max_pending}")

    def on_open(self, client):
        self.pump(client)

    def on_drained(self, client):
        self.drained += 1
        self.pump(client)

    def on_close(self, client):
        LOG.add(self.name, "close")


class Slow:
    """A slow consumer: each message takes `delay` seconds of app time.
    Binary messages carry a 4-byte index; the text "end" gets the reply
    "count=N in_order=B"."""

    def __init__(self, delay):
        self.delay = delay
        self.count = 0
        self.in_order = True

    def on_message(self, client, data):
        if isinstance(data, str):
            if data == "end":
                client.write(f"count={self.count} in_order={self.in_order}")
            return
        if struct.unpack("!I", data[:4])[0] != self.count:
            self.in_order = False
        self.count += 1
        time.sleep(self.delay)  # the app being slow, on purpose


class Echo:
    def on_message(self, client, data):
        client.write(data)


def app(environ, start_response):
    q = query(environ)
    path = environ["PATH_INFO"]
    if environ["rack.upgrade?"] == "websocket":
        if path == "/flood":
            environ["rack.upgrade"] = Flood(q["name"], int(q.get("size", 65536)),
                                            int(q.get("per_tick", 4)), int(q.get("max", 4096)))
        elif path == "/paced":
            environ["rack.upgrade"] = Paced(q["name"], int(q.get("count", 1000)),
                                            int(q.get("size", 16384)), int(q.get("high", 8)))
        elif path == "/slow":
            environ["rack.upgrade"] = Slow(float(q.get("delay", 0.0005)))
        else:
            environ["rack.upgrade"] = Echo()
        start_response("101 Switching Protocols", [])
        return []
    return text_response(start_response, "ok")
