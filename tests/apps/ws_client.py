"""Exercises the client object (iodine_py.client.Client) on command.

WebSocket, any path but /sse (rack.upgrade = a Commands instance; with
?class=1 the Commands class itself, instantiated per connection).  With
?timeout=S on_open sets client.timeout = S.  Text messages are commands:

  text:X         client.write("X")            (a str)
  binary:X       client.write(b"X")           (bytes)
  bytearray:X    client.write(bytearray(b"X"))
  empty-text     client.write("")
  empty-binary   client.write(b"")
  unicode        client.write("h\u00e9llo \u2603 \U0001F600")
  results        writes "write->True", reporting what write() returned
  is_open        writes repr(client.is_open())
  pending        writes str(client.pending())
  env            writes JSON: chosen environ keys, and whether client.env is
                 the very environ the app was called with
  protocol       writes client.protocol
  handler        writes JSON {"is_self", "id"}
  timeout        writes str(client.timeout)
  timeout=S      client.timeout = S, then writes str(client.timeout)
  swap           client.handler = Other(); writes JSON about the getter
  big:N          client.write(b"B" * N), then writes "big-write->R" (R: what
                 the big write returned)
  big-then-close:N   client.write(b"B" * N), then client.close()
  close          client.close(), then reports (stderr) what write(),
                 is_open() and pending() say right after
On a real close (not a handler swap, which writes "old on_close"), a line "ws-client REPORT <json>" reports write/is_open/
pending inside on_close and, one loop turn later, from a timer.

/sse (an EventSource request): on_open writes one event whose data is JSON
{"protocol", "is_open", "pending", "env_is_environ", "timeout"}, then one
whose data is "write->R", R being what the first write() returned.
"""

import json

from iodine_py import Iodine
from ws_common import say, text_response


def report(tag, obj):
    say(f"ws-client {tag} {json.dumps(obj, sort_keys=True)}")


def state(client, write_result):
    return {"write": write_result, "is_open": client.is_open(), "pending": client.pending()}


class Commands:
    def __init__(self, environ=None):
        self.environ = environ

    def on_open(self, client):
        if self.environ is None:  # instantiated by the server (class given)
            self.environ = client.env
        t = client.env.get("QUERY_STRING", "")
        if "timeout=" in t:
            client.timeout = float(t.split("timeout=")[1].split("&")[0])

    def on_message(self, client, data):
        cmd, _, arg = data.partition(":") if isinstance(data, str) else (None, "", "")
        if cmd == "text":
            client.write(arg)
        elif cmd == "binary":
            client.write(arg.encode())
        elif cmd == "bytearray":
            client.write(bytearray(arg.encode()))
        elif data == "empty-text":
            client.write("")
        elif data == "empty-binary":
            client.write(b"")
        elif data == "unicode":
            client.write("h\u00e9llo \u2603 \U0001F600")
        elif data == "results":
            r = client.write("probe")
            client.write(f"write->{r}")
        elif data == "is_open":
            client.write(repr(client.is_open()))
        elif data == "pending":
            client.write(str(client.pending()))
        elif data == "env":
            env = client.env
            client.write(json.dumps({
                "same": env is self.environ,
                "PATH_INFO": env.get("PATH_INFO"),
                "QUERY_STRING": env.get("QUERY_STRING"),
                "REQUEST_METHOD": env.get("REQUEST_METHOD"),
                "HTTP_X_TEST": env.get("HTTP_X_TEST"),
                "HTTP_SEC_WEBSOCKET_KEY": env.get("HTTP_SEC_WEBSOCKET_KEY"),
                "rack.upgrade?": env.get("rack.upgrade?"),
                "rack.upgrade_is_handler": env.get("rack.upgrade") is client.handler,
            }))
        elif data == "protocol":
            client.write(client.protocol)
        elif data == "handler":
            client.write(json.dumps({"is_self": client.handler is self, "id": id(self),
                                     "type": type(client.handler).__name__}))
        elif data == "timeout":
            client.write(repr(client.timeout))
        elif data.startswith("timeout="):
            client.timeout = float(data.split("=", 1)[1])
            client.write(repr(client.timeout))
        elif data == "swap":
            new = Other()
            client.handler = new
            client.write(json.dumps({"getter_is_new": client.handler is new,
                                     "env_upgrade_is_new": client.env["rack.upgrade"] is new}))
        elif cmd == "big":
            r = client.write(b"B" * int(arg))
            client.write(f"big-write->{r}")
        elif cmd == "big-then-close":
            client.write(b"B" * int(arg))
            client.close()
        elif data == "close":
            client.close()
            report("AFTER-CLOSE", state(client, client.write("late")))
        else:
            client.write(f"unknown command {data!r}")

    def on_close(self, client):
        if client.is_open():  # replaced by `client.handler = ...`, not closed
            client.write("old on_close")
            return
        inside = state(client, client.write("from on_close"))

        def later():
            report("REPORT", {"on_close": inside, "timer": state(client, client.write("later"))})
        Iodine.run(later)


class Other:
    def on_open(self, client):
        client.write("other-open")

    def on_message(self, client, data):
        client.write(f"other:{data}")


class SSEProbe:
    def __init__(self, environ):
        self.environ = environ

    def on_open(self, client):
        info = {"protocol": client.protocol, "is_open": client.is_open(),
                "pending": client.pending(), "env_is_environ": client.env is self.environ,
                "timeout": client.timeout}
        r = client.write(json.dumps(info))
        client.write(f"write->{r}")


def app(environ, start_response):
    kind = environ["rack.upgrade?"]
    if kind == "websocket":
        if "class=1" in environ.get("QUERY_STRING", ""):
            environ["rack.upgrade"] = Commands
        else:
            environ["rack.upgrade"] = Commands(environ)
        start_response("101 Switching Protocols", [])
        return []
    if kind == "sse":
        environ["rack.upgrade"] = SSEProbe(environ)
        start_response("200 OK", [])
        return []
    return text_response(start_response, "ok")
