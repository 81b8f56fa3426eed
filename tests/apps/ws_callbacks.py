"""Records every callback of every WebSocket connection, for the ordering
and lifecycle tests.

  /ws?name=N[&open_delay=S]   WebSocket; handler Recorder("A") logs under N:
        A:open (A:open-end after sleeping S seconds, when open_delay given),
        A:msg:<text>, A:shutdown, A:close.  Every message is echoed back.
        Commands (text messages):
          close   -> client.close()
          swap    -> client.handler = Recorder("B")   (A:close, then B:open)
          raise   -> on_message raises (logged by the server; conn goes on)
        Integer messages must arrive in order 0, 1, 2...: a gap or reordering
        is logged as ORDER:<got>!=<expected>.
        Two callbacks of one connection running at once (on different
        threads) are logged as OVERLAP:<callback>.
  /log/N        JSON list of N's events
Each event is also printed to stderr as "ws-cb N EVENT".
"""

import threading
import time

from ws_common import Log, json_response, query, text_response

LOG = Log("ws-cb")

_active_lock = threading.Lock()
_active = {}  # connection id -> (thread ident, depth)


class _Guard:
    """Detects two callbacks of one connection on different threads at once.
    Nested calls on one thread (the handler setter calls on_close/on_open
    from inside on_message) are by design and not an overlap."""

    def __init__(self, rec, client, what):
        self.rec, self.key, self.what = rec, client.conn, what

    def __enter__(self):
        me = threading.get_ident()
        with _active_lock:
            owner = _active.get(self.key)
            if owner is not None and owner[0] != me:
                LOG.add(self.rec.name, f"OVERLAP:{self.what}")
            depth = owner[1] + 1 if owner is not None and owner[0] == me else 1
            _active[self.key] = (me, depth)

    def __exit__(self, *exc):
        me = threading.get_ident()
        with _active_lock:
            owner = _active.get(self.key)
            if owner is not None and owner[0] == me:
                if owner[1] <= 1:
                    del _active[self.key]
                else:
                    _active[self.key] = (me, owner[1] - 1)


class Recorder:
    def __init__(self, name, label="A", open_delay=0.0):
        self.name = name
        self.label = label
        self.open_delay = open_delay
        self.expect = 0

    def log(self, event):
        LOG.add(self.name, f"{self.label}:{event}")

    def on_open(self, client):
        with _Guard(self, client, "on_open"):
            self.log("open")
            if self.open_delay:
                time.sleep(self.open_delay)  # the app being slow, on purpose
                self.log("open-end")

    def on_message(self, client, data):
        with _Guard(self, client, "on_message"):
            self.log(f"msg:{data}")
            if isinstance(data, str) and data.isdigit():
                if int(data) != self.expect:
                    LOG.add(self.name, f"ORDER:{data}!={self.expect}")
                self.expect = int(data) + 1
                time.sleep(0.0002)  # widen the window an overlap would need
            if data == "raise":
                raise RuntimeError("on_message raised on purpose")
            client.write(data)
            if data == "close":
                client.close()
            elif data == "swap":
                client.handler = Recorder(self.name, "B")

    def on_shutdown(self, client):
        with _Guard(self, client, "on_shutdown"):
            self.log("shutdown")

    def on_close(self, client):
        with _Guard(self, client, "on_close"):
            self.log("close")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    if path == "/ws" and environ["rack.upgrade?"] == "websocket":
        environ["rack.upgrade"] = Recorder(q["name"], "A", float(q.get("open_delay", 0)))
        start_response("101 Switching Protocols", [])
        return []
    if path.startswith("/log/"):
        return json_response(start_response, LOG.get(path[len("/log/"):]))
    return text_response(start_response, "ok")
