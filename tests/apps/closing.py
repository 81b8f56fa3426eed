"""WSGI app whose response iterables report close() on stderr.

PEP 3333: "If the iterable returned by the application has a close() method,
the server or gateway must call that method upon completion of the current
request, whether the request was completed normally, or terminated early due
to an application error during iteration or an early disconnect of the
browser."  Each iterable prints "close-called TAG" when closed, so a test can
wait for that line.

Paths (tag from ?tag=):
  /normal        three chunks, no Content-Length
  /with-length   three chunks, Content-Length given
  /big?size=N    N bytes (default 64 MiB) in 64 KiB chunks, no Content-Length
  /raise-mid     one chunk, then RuntimeError("raised-mid-iteration")
"""

import sys
from urllib.parse import parse_qs

PARTS = [b"alpha,", b"beta,", b"gamma"]
BLOCK = b"x" * 65536


def say(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


class Tracked:
    def __init__(self, tag, gen):
        self.tag = tag
        self.gen = gen

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.gen)

    def close(self):
        say("close-called " + self.tag)


def _big(size):
    sent = 0
    while sent < size:
        block = BLOCK[: min(len(BLOCK), size - sent)]
        sent += len(block)
        yield block


def _raise_mid():
    yield PARTS[0]
    raise RuntimeError("raised-mid-iteration")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    qs = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    tag = qs.get("tag", "untagged")

    if path == "/normal":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(tag, iter(PARTS))
    if path == "/with-length":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(sum(map(len, PARTS))))])
        return Tracked(tag, iter(PARTS))
    if path == "/big":
        size = int(qs.get("size", str(64 * 1024 * 1024)))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Tracked(tag, _big(size))
    if path == "/raise-mid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(tag, _raise_mid())

    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [body]
