"""The chat room as a Flask app.   Run: iodine examples/flask_chat.py -t 4   then open http://localhost:3000

Needs Flask (pip install flask). The page is examples/chat.html, the same
one examples/chat.py serves: a WebSocket on /ws, or (with ?sse=1, or in a
browser without WebSocket) an EventSource on /events plus POSTs to /say.

Each view accepts its connection with one line, iodine_py.upgrade(request,
handler); after that Flask is out of the picture and the callbacks below
run for that connection. Messages go through pub/sub, so `-w 4` (four
worker processes) or `-r redis://...` (several servers) changes nothing
here.
"""
import os

from flask import Flask, request, send_file

import iodine_py
from iodine_py import Iodine

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat.html")
CHANNEL = "chat"

app = Flask(__name__)


def nickname() -> str:
    name = request.args.get("name", "guest")
    return " ".join(name.split())[:32] or "guest"


class Member:
    """One connected browser, WebSocket or EventSource."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_open(self, client) -> None:
        client.subscribe(CHANNEL)  # delivered from C, no Python per message
        Iodine.publish(CHANNEL, f"{self.name} joined")

    def on_message(self, client, data) -> None:  # WebSocket only
        if isinstance(data, str) and data.strip():
            Iodine.publish(CHANNEL, f"{self.name}: {data[:1000]}")

    def on_close(self, client) -> None:
        Iodine.publish(CHANNEL, f"{self.name} left")


@app.get("/")
def index():
    return send_file(PAGE, mimetype="text/html")


# Werkzeug hands a WebSocket handshake only to rules marked websocket=True.
@app.route("/ws", websocket=True)
def ws():
    return iodine_py.upgrade(request, Member(nickname()), protocols=("websocket",))


@app.get("/events")
def events():
    return iodine_py.upgrade(request, Member(nickname()), protocols=("sse",))


@app.post("/say")
def say():
    text = request.stream.read(4096).decode("utf-8", "replace")
    if text.strip():
        Iodine.publish(CHANNEL, f"{nickname()}: {text[:1000]}")
    return "", 204
