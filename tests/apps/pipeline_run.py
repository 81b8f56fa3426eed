"""The app behind tests/http/test_pipelined_runs.py: a connection's
pipelined requests, of every kind an answer can take, answered in a run.

Paths:
  /plain?i=N         "plain N" (the common answer: C sends it)
  /echo?i=N          "echo N " + the request body (a POST reaches Python)
  /gen?i=N           three chunks from a generator with close() (streamed,
                     chunked); close() calls are counted
  /nap?i=N           sleeps 20 ms (work, not a wait), then "nap N"
  /big?i=N&size=S    S bytes of a pattern (more than a held batch takes)
  /wait/NAME         prints "waiting NAME" on stderr, then blocks until
                     /release/NAME (10 s at most): "released" or "timeout"
  /release/NAME      opens the gate
  /stats             {"closes": the generators' close() calls}
"""
import json
import threading
import time
from urllib.parse import parse_qs

# the file's folder is on sys.path (the importer puts it there)
from gates import gate, say, slow_body, text

_lock = threading.Lock()
_closes = [0]


class _Chunks:
    def __init__(self, i):
        self.i = i

    def __iter__(self):
        for part in (b"a", b"b", b"c"):
            yield b"gen %d %s;" % (self.i, part)

    def close(self):
        with _lock:
            _closes[0] += 1


def app(environ, start_response):
    path = environ["PATH_INFO"]
    qs = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    i = int(qs.get("i", "0"))
    if path == "/plain":
        return text(start_response, b"plain %d" % i)
    if path == "/echo":
        return text(start_response, b"echo %d %s" % (i, environ["wsgi.input"].read()))
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Chunks(i)
    if path == "/nap":
        time.sleep(0.02)
        return text(start_response, b"nap %d" % i)
    if path == "/big":
        return text(start_response, slow_body(int(qs["size"])))
    if path.startswith("/wait/"):
        name = path[len("/wait/"):]
        say(f"waiting {name}")
        ok = gate(name).wait(10)
        return text(start_response, b"released" if ok else b"timeout")
    if path.startswith("/release/"):
        gate(path[len("/release/"):]).set()
        return text(start_response, b"ok")
    if path == "/stats":
        with _lock:
            return text(start_response, json.dumps({"closes": _closes[0]}).encode())
    start_response("404 Not Found", [("Content-Length", "0")])
    return [b""]
