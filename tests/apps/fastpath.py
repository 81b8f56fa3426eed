"""The app behind tests/http/test_fast_path.py: what the request hand-off
through the C API (iodine_py/_fast.c) must keep.

Paths:
  /seq?i=N      "conn-port N body" where body is wsgi.input read whole; the
                app also counts, per connection (REMOTE_PORT), how many of
                its requests run at once (must never exceed one)
  /closing?i=N  an iterable with close() (PEP 3333 says the server calls it)
  /stream?n=N   N chunks from a generator
  /environ      the environ's str values and wsgi.input's first read, as JSON
  /stats        {"overlaps", "closes", "max_running"}
  /types        start_response given a bytes status, then a tuple of headers:
                the two TypeError messages, then a proper answer
  /bad-latin    a header value outside latin-1 (the server answers 500)
  /twice        start_response twice without exc_info (500)
  /hello        the common answer: one bytes body, Content-Length given
"""
import json
import threading
import time

_lock = threading.Lock()
_running = {}
_stats = {"overlaps": 0, "closes": 0, "max_running": 0}


class _Closing:
    def __init__(self, body):
        self.body = body

    def __iter__(self):
        return iter([self.body])

    def close(self):
        with _lock:
            _stats["closes"] += 1


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stats":
        with _lock:
            body = json.dumps(_stats).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/environ":
        env = {k: v for k, v in environ.items() if type(v) is str}
        env["input"] = environ["wsgi.input"].read().decode("latin-1")
        body = json.dumps(env).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/types":
        errors = []
        for args in ((b"200 OK", []), ("200 OK", ())):
            try:
                start_response(*args)
            except TypeError as e:
                errors.append(str(e))
        body = "|".join(errors).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/bad-latin":
        start_response("200 OK", [("X-Name", "\u0151")])
        return [b"never"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]
    if path == "/stream":
        n = int(environ["QUERY_STRING"].split("=")[1])
        start_response("200 OK", [])
        return (b"chunk-%d;" % i for i in range(n))
    port = environ["REMOTE_PORT"]
    with _lock:
        _running[port] = _running.get(port, 0) + 1
        if _running[port] > 1:
            _stats["overlaps"] += 1
        _stats["max_running"] = max(_stats["max_running"], sum(_running.values()))
    try:
        # some work, so that two requests of one connection run on two
        # threads at once would overlap here (this is load, not a wait)
        time.sleep(0.001)
        i = environ["QUERY_STRING"].split("=")[1]
        data = environ["wsgi.input"].read()
        body = b"%s %s %s" % (port.encode(), i.encode(), data)
    finally:
        with _lock:
            _running[port] -= 1
    start_response("200 OK", [("Content-Length", str(len(body)))])
    if path == "/closing":
        return _Closing(body)
    return [body]
