"""A browser-to-backend bridge: each browser WebSocket gets its own
connection to a backend service, through this one iodine process.

    Run: iodine examples/bridge.py   then open http://localhost:3000
    (BRIDGE_BACKEND=tcp://127.0.0.1:9000 by default; any Iodine.connect URL:
    tcp://, unix:, tls://, ws://, wss://)

What the browser sends goes to the backend; what the backend sends comes
back (a raw backend's bytes as text when they are UTF-8, else binary). If
the backend cannot be reached or goes away, the browser is told why
(`client.close_reason`) and its WebSocket is closed. Nothing here touches a
socket: both connections are the C core's, and each side's callbacks only
write to the other.
"""
import os
import threading

from iodine_py import Iodine

BACKEND = os.environ.get("BRIDGE_BACKEND", "tcp://127.0.0.1:9000")
MAX_EARLY = 64  # messages a browser may send before the backend is connected

PAGE = b"""<!doctype html><meta charset="utf-8"><title>bridge</title>
<input id="line" autofocus placeholder="to the backend"><pre id="log"></pre>
<script>
const log = t => document.getElementById("log").textContent += t + "\\n";
const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws");
ws.onmessage = e => log("< " + e.data);
ws.onclose = e => log("closed: " + e.reason);
document.getElementById("line").onkeydown = e => {
  if (e.key === "Enter") { ws.send(e.target.value + "\\n"); log("> " + e.target.value); e.target.value = ""; }
};
</script>"""


class Browser:
    """One browser's WebSocket (a new object per connection)."""

    def __init__(self):
        self.lock = threading.Lock()  # with -t N the two sides' callbacks may overlap
        self.client = None
        self.backend = None
        self.early = []
        self.closed = False

    def on_open(self, client):
        self.client = client
        Iodine.connect(BACKEND, Backend(self))

    def on_message(self, client, data):
        with self.lock:
            if self.backend is None:
                if len(self.early) >= MAX_EARLY:
                    client.close()
                    return
                self.early.append(data)
                return
            backend = self.backend
        backend.write(data)

    def on_close(self, client):
        with self.lock:
            self.closed = True
            backend = self.backend
        if backend is not None:
            backend.close()


class Backend:
    """The backend connection of one browser."""

    def __init__(self, browser):
        self.browser = browser

    def on_open(self, client):
        b = self.browser
        with b.lock:
            if b.closed:
                client.close()
                return
            b.backend = client
            early, b.early = b.early, []
        for data in early:
            client.write(data)

    def on_message(self, client, data):
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                pass  # binary it stays
        self.browser.client.write(data)

    def on_close(self, client):
        browser = self.browser.client
        if browser is not None and browser.is_open():
            browser.write(f"backend closed: {client.close_reason}")
            browser.close()


def app(environ, start_response):
    if environ["rack.upgrade?"] == "websocket" and environ["PATH_INFO"] == "/ws":
        environ["rack.upgrade"] = Browser
        start_response("101 Switching Protocols", [])
        return []
    if environ["PATH_INFO"] != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(PAGE)))])
    return [PAGE]
