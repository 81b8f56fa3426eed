"""A chat room on pub/sub.   Run: iodine examples/chat.py   then open http://localhost:3000

Each browser opens a WebSocket (or, with ?sse=1 or no WebSocket support, an
EventSource plus POSTs) and subscribes it to the "chat" channel. A message
is published once; the C core frames it once and sends it to every
subscriber, with no Python code run per recipient.
"""
import os
from urllib.parse import parse_qs

from iodine_py import Iodine

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat.html")
CHANNEL = "chat"


def nickname(environ):
    name = parse_qs(environ.get("QUERY_STRING", "")).get("name", ["guest"])[0]
    return " ".join(name.split())[:32] or "guest"


class Member:
    """One connected browser (WebSocket or SSE)."""

    def __init__(self, name):
        self.name = name

    def on_open(self, client):
        client.subscribe(CHANNEL)  # messages go straight to the socket, from C
        Iodine.publish(CHANNEL, f"{self.name} joined")

    def on_message(self, client, data):  # WebSocket only; SSE members POST /say
        if isinstance(data, str) and data.strip():
            Iodine.publish(CHANNEL, f"{self.name}: {data[:1000]}")

    def on_close(self, client):
        Iodine.publish(CHANNEL, f"{self.name} left")


def app(environ, start_response):
    if environ["rack.upgrade?"]:
        environ["rack.upgrade"] = Member(nickname(environ))
        start_response("200 OK", [])
        return []
    if environ["PATH_INFO"] == "/say" and environ["REQUEST_METHOD"] == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        text = environ["wsgi.input"].read(min(size, 4096)).decode("utf-8", "replace")
        if text.strip():
            Iodine.publish(CHANNEL, f"{nickname(environ)}: {text[:1000]}")
        start_response("204 No Content", [])
        return []
    if environ["PATH_INFO"] != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    with open(PAGE, "rb") as f:
        body = f.read()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
