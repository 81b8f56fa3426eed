"""A chat room shared by browsers and plain TCP clients.

    Run: iodine examples/tcp_chat.py   then open http://localhost:3000
    and, in a terminal: nc localhost 3001   (CHAT_TCP_PORT picks another port)

Browsers join over WebSocket (examples/chat.html, the page of
examples/chat.py); TCP clients over a raw service (Iodine.listen(...,
service="raw")): one line is one message, and the first line of a TCP
client may be "/nick NAME". Both kinds publish to the one "chat" channel
and both receive it. WebSocket members are subscribed without a callback
(C frames each message once for all of them); TCP members get each message
with a line break added, by a subscription callback.
"""
import os

from iodine_py import Iodine

import importlib.util

_spec = importlib.util.spec_from_file_location(
    "chat_example", os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat.py"))
_chat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_chat)

CHANNEL = _chat.CHANNEL  # "chat": the browsers' room
MAX_LINE = 1000          # a TCP line longer than this ends the connection
app = _chat.app          # the browser side: the chat page, /ws, /events, /say


class TcpMember:
    """One TCP client (a new object per connection)."""

    def __init__(self):
        self.name = None
        self.buf = b""

    def on_open(self, client):
        self.name = f"tcp-{client.conn & 0xffff:x}"
        # a callback subscription: the message plus a line break, per member
        client.subscribe(CHANNEL, lambda c, channel, msg: c.write(f"{msg}\n"))
        client.write(f"welcome, {self.name} (/nick NAME to change it)\n")
        Iodine.publish(CHANNEL, f"{self.name} joined")

    def on_message(self, client, data):
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        if len(self.buf) > MAX_LINE:
            client.write(b"line too long\n")
            client.close()
            return
        for raw in lines:
            text = raw.decode("utf-8", "replace").strip()[:MAX_LINE]
            if text.startswith("/nick "):
                new = " ".join(text[6:].split())[:32]
                if new:
                    Iodine.publish(CHANNEL, f"{self.name} is now {new}")
                    self.name = new
            elif text:
                Iodine.publish(CHANNEL, f"{self.name}: {text}")

    def on_close(self, client):
        Iodine.publish(CHANNEL, f"{self.name} left")


Iodine.listen(TcpMember, port=int(os.environ.get("CHAT_TCP_PORT", "3001")), service="raw")
