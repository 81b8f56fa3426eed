"""A WSGI app whose requests block on named events that other requests set.

It lets a test order things without sleeping: a request parks on a gate,
the test observes that (a stderr line, or the first streamed chunk), then
releases the gate with a second request.  Every wait is bounded.

Paths:
  /wait/NAME?timeout=T    prints "gate-waiting NAME", waits for the gate,
                          answers "released" or "timeout"
  /stream/NAME?timeout=T  streams FIRST, then waits for the gate, then
                          streams "second:released" or "second:timeout"
  /release/NAME           opens the gate (before or after the wait)
  /slow/NAME?delay=D&size=N  prints "slow-started NAME", waits D seconds on
                          a gate nobody opens, then answers N bytes
  anything else           "ok"
Needs -t 2 (or more) when one request must run while another is parked.
"""

import sys
import threading
from urllib.parse import parse_qs

FIRST = b"first\n"
_lock = threading.Lock()
_gates = {}


def gate(name):
    with _lock:
        ev = _gates.get(name)
        if ev is None:
            ev = _gates[name] = threading.Event()
        return ev


def say(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def slow_body(size):
    pattern = b"0123456789abcdef"
    return (pattern * (size // len(pattern) + 1))[:size]


def text(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    qs = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    timeout = float(qs.get("timeout", "5"))

    if path.startswith("/wait/"):
        name = path[len("/wait/"):]
        say("gate-waiting " + name)
        ok = gate(name).wait(timeout)
        return text(start_response, b"released" if ok else b"timeout")

    if path.startswith("/stream/"):
        name = path[len("/stream/"):]

        def body():
            yield FIRST
            ok = gate(name).wait(timeout)
            yield b"second:released\n" if ok else b"second:timeout\n"

        start_response("200 OK", [("Content-Type", "text/plain")])
        return body()

    if path.startswith("/release/"):
        gate(path[len("/release/"):]).set()
        return text(start_response, b"ok")

    if path.startswith("/slow/"):
        name = path[len("/slow/"):]
        delay = float(qs.get("delay", "1"))
        size = int(qs.get("size", "100000"))
        say("slow-started " + name)
        gate("never-opened:" + name).wait(delay)
        return text(start_response, slow_body(size))

    return text(start_response, b"ok")
