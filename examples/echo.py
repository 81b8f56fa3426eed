"""WebSocket echo and an SSE clock.   Run: iodine examples/echo.py

    ws://localhost:3000/       echoes every message back (text stays text)
    http://localhost:3000/     (Accept: text/event-stream) a clock, one event a second
"""
import time

from iodine_py import Iodine


class Echo:
    def on_message(self, client, data):
        client.write(data)


class Clock:
    def on_open(self, client):
        client.write(time.strftime("%H:%M:%S"), event="tick")
        self.timer = Iodine.run_every(1000, lambda: client.write(time.strftime("%H:%M:%S"), event="tick"))

    def on_close(self, client):
        self.timer.cancel()


def app(environ, start_response):
    kind = environ["rack.upgrade?"]
    if kind == "websocket":
        environ["rack.upgrade"] = Echo()
        start_response("101 Switching Protocols", [])
        return []
    if kind == "sse":
        environ["rack.upgrade"] = Clock()
        start_response("200 OK", [])
        return []
    body = b"Connect with a WebSocket (echo) or an EventSource (clock).\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
