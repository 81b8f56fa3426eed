"""The target of the hostile-client suite (tests/hostile/).

Paths:
  /                 "ok" (Content-Length 2)
  /n/K              "K\\n": pipelined floods check answers come back in order
  /flood?mb=M&tag=T M MiB (default 256) in 64 KiB chunks, no Content-Length;
                    logs "hostile-flood T closed sent=BYTES" from close()
                    (PEP 3333: called however the response ended)
  /body             reads the whole body, answers its length
  /work?ms=D&id=I   logs "hostile-work-start I", sleeps D ms (work, not
                    synchronisation: it keeps requests in flight), answers
                    "done I"
  /smuggled...      logs "hostile-SMUGGLED PATH": a request that only exists
                    inside another request's body; seeing it is the bug
  WebSocket upgrade echo: every message back as it came
"""

import sys
import time
from urllib.parse import parse_qs

BLOCK = b"x" * 65536


def say(line):
    # one write per line: lines from app threads never interleave
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _text(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))])
    return [body]


class Echo:
    def on_message(self, client, data):
        client.write(data)


ECHO = Echo()


class Flood:
    """A body of `size` bytes that records how much of it was handed over."""

    def __init__(self, tag, size):
        self.tag = tag
        self.size = size
        self.sent = 0

    def __iter__(self):
        while self.sent < self.size:
            block = BLOCK[:min(len(BLOCK), self.size - self.sent)]
            self.sent += len(block)
            yield block

    def close(self):
        say(f"hostile-flood {self.tag} closed sent={self.sent}")


def app(environ, start_response):
    if environ.get("rack.upgrade?") == "websocket":
        environ["rack.upgrade"] = ECHO
        start_response("101 Switching Protocols", [])
        return []
    path = environ["PATH_INFO"]
    if path.startswith("/smuggled"):
        say("hostile-SMUGGLED " + path)
        return _text(start_response, b"smuggled!")
    if path.startswith("/n/"):
        return _text(start_response, path[3:].encode("ascii") + b"\n")
    qs = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/flood":
        flood = Flood(qs.get("tag", "-"), int(float(qs.get("mb", "256")) * 1024 * 1024))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Closing(flood)
    if path == "/body":
        n = 0
        inp = environ["wsgi.input"]
        while True:
            piece = inp.read(65536)
            if not piece:
                break
            n += len(piece)
        return _text(start_response, str(n).encode("ascii"))
    if path == "/work":
        rid = qs.get("id", "-")
        say("hostile-work-start " + rid)
        time.sleep(float(qs.get("ms", "5")) / 1000.0)
        return _text(start_response, b"done " + rid.encode("ascii"))
    return _text(start_response, b"ok")


class _Closing:
    """An iterable with close() (a generator's close would not log)."""

    def __init__(self, flood):
        self.flood = flood
        self.it = iter(flood)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.it)

    def close(self):
        self.flood.close()
