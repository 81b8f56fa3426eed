"""The application bench/soak.py drives (run with -w 2).

HTTP
  GET  /              "ok"
  GET  /bytes?n=N     N bytes (a repeating pattern), Content-Length given
  GET  /stream?n=K    K chunks of 1000 bytes, chunked (no Content-Length)
  POST /echo          the body back
  POST /publish?ch=C  Iodine.publish(C, body) across the cluster: {"r": true}
WebSocket
  /ws                 echo: every message back as it came
  /sub?ch=C[&pattern=1]
                      writes the text "ready", then subscribes the connection
                      to C (a glob with pattern=1), delivery straight from C
SSE (Accept: text/event-stream)
  /sub?ch=C           the event "ready", then the same subscription (events
                      instead of frames)
Timers: every worker publishes "tick WORKERPID N" to soak.tick every 50 ms.
"""

import os
from urllib.parse import parse_qs

from iodine_py import Iodine

PATTERN = bytes(range(256)) * 4


def _q(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _send(start_response, body, ctype="text/plain"):
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


class Echo:
    def on_message(self, client, data):
        client.write(data)


class Subscriber:
    def __init__(self, channel, pattern):
        self.channel = channel
        self.pattern = pattern

    def on_open(self, client):
        # "ready" first: a message published between subscribing and this
        # write would otherwise arrive before it
        if client.protocol == "sse":
            client.write("ready", event="ready")
        else:
            client.write("ready")
        client.subscribe(self.channel, pattern=self.pattern)


ECHO = Echo()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    upgrade = environ.get("rack.upgrade?")
    if upgrade and path == "/sub":
        q = _q(environ)
        environ["rack.upgrade"] = Subscriber(q.get("ch", "soak.tick"), q.get("pattern") == "1")
        start_response("200 OK", [])
        return []
    if upgrade == "websocket":
        environ["rack.upgrade"] = ECHO
        start_response("101 Switching Protocols", [])
        return []
    if path == "/echo":
        body = environ["wsgi.input"].read()
        return _send(start_response, body, "application/octet-stream")
    if path == "/bytes":
        n = int(_q(environ).get("n", "1000"))
        body = (PATTERN * (n // len(PATTERN) + 1))[:n]
        return _send(start_response, body, "application/octet-stream")
    if path == "/stream":
        k = int(_q(environ).get("n", "10"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"%04d" % i + b"s" * 996 for i in range(k))
    if path == "/publish":
        ch = _q(environ).get("ch", "soak.room")
        r = Iodine.publish(ch, environ["wsgi.input"].read())
        return _send(start_response, b'{"r": %s}' % (b"true" if r else b"false"),
                     "application/json")
    return _send(start_response, b"ok")


_ticks = [0]


def _tick():
    _ticks[0] += 1
    Iodine.publish("soak.tick", "tick %d %d" % (os.getpid(), _ticks[0]))


Iodine.run_every(50, _tick)
