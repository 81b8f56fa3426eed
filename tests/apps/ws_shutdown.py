"""Graceful shutdown of upgraded connections. The process is exiting, so
events go to the file named by $WS_RECORD_FILE (one line each:
"KIND:NAME:EVENT"), as well as to stderr.

  /ws?name=N          WebSocket echo; on_shutdown writes "bye-from-shutdown"
                      and records shutdown-write=<what write() returned>
  /ws-plain?name=N    WebSocket echo with no on_shutdown
  SSE ?name=N         on_open writes "hello"; on_shutdown writes the event
                      "shutdown" with data "bye-from-shutdown"
Each records open, shutdown, close (close also records is_open()).
"""

from ws_common import query, record_to_file, say, text_response


def record(kind, name, event):
    line = f"{kind}:{name}:{event}"
    record_to_file(line)
    say(f"ws-shutdown {line}")


class WS:
    def __init__(self, name):
        self.name = name

    def on_open(self, client):
        record("ws", self.name, "open")

    def on_message(self, client, data):
        client.write(data)

    def on_shutdown(self, client):
        record("ws", self.name, "shutdown")
        r = client.write("bye-from-shutdown")
        record("ws", self.name, f"shutdown-write={r}")

    def on_close(self, client):
        record("ws", self.name, f"close is_open={client.is_open()}")


class PlainWS:
    def __init__(self, name):
        self.name = name

    def on_open(self, client):
        record("ws", self.name, "open")

    def on_message(self, client, data):
        client.write(data)

    def on_close(self, client):
        record("ws", self.name, f"close is_open={client.is_open()}")


class SSE:
    def __init__(self, name):
        self.name = name

    def on_open(self, client):
        record("sse", self.name, "open")
        client.write("hello")

    def on_shutdown(self, client):
        record("sse", self.name, "shutdown")
        r = client.write("bye-from-shutdown", event="shutdown")
        record("sse", self.name, f"shutdown-write={r}")

    def on_close(self, client):
        record("sse", self.name, f"close is_open={client.is_open()}")


def app(environ, start_response):
    q = query(environ)
    kind = environ["rack.upgrade?"]
    path = environ["PATH_INFO"]
    if kind == "websocket":
        environ["rack.upgrade"] = (PlainWS if path == "/ws-plain" else WS)(q["name"])
        start_response("101 Switching Protocols", [])
        return []
    if kind == "sse":
        environ["rack.upgrade"] = SSE(q["name"])
        start_response("200 OK", [])
        return []
    return text_response(start_response, "ok")
