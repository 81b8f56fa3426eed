"""Channel access control on pub/sub.   Run: iodine examples/access_chat.py

Who may read a channel and who may also write to it is decided once, from
a token checked *before* the upgrade: a request without a known token gets
401 and never becomes a WebSocket. The grants then travel with the
connection's callback object, and every subscribe or publish the client
asks for is checked against them in its callbacks. Nothing is trusted from
the client after the handshake.

The token comes as `?token=...` (a browser's WebSocket cannot set an
Authorization header; behind TLS the query string is as private as a
header, but keep such tokens short-lived) or as `Authorization: Bearer ...`
for other clients. A real application looks it up in its session store or
verifies a signed token; the table below stands in for that.

The client speaks JSON text messages:

    {"join": "news"}                    read a channel (must be readable)
    {"leave": "news"}
    {"to": "chat", "text": "hello"}     publish (the channel must be writable)

and receives `{"channel": ..., "from": ..., "text": ...}` for messages and
`{"error": "forbidden", ...}` when it asked for something it may not do. On
open it is subscribed to every channel it may read.

    websocat 'ws://localhost:3000/?token=alice-token'
"""
import json
from urllib.parse import parse_qs

from iodine_py import Iodine

# token -> (name, channels it may read, channels it may also write)
GRANTS = {
    "alice-token": ("alice", {"chat", "news"}, {"chat"}),
    "bob-token": ("bob", {"chat"}, set()),
    "carol-token": ("carol", {"news"}, {"news"}),
}


def token_of(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    return parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]


class Member:
    """One authorised connection; `read`/`write` are its grants."""

    def __init__(self, name, read, write):
        self.name, self.read, self.write = name, frozenset(read), frozenset(write)

    def on_open(self, client):
        for channel in sorted(self.read):
            client.subscribe(channel)  # delivered from C, no Python per message

    def on_message(self, client, data):
        try:
            ask = json.loads(data)
            if not isinstance(ask, dict):
                raise ValueError
        except ValueError:
            client.write(json.dumps({"error": "bad request", "detail": "send a JSON object"}))
            return
        if "join" in ask or "leave" in ask:
            channel = str(ask.get("join", ask.get("leave")))
            if channel not in self.read:
                client.write(json.dumps({"error": "forbidden", "read": channel}))
            elif "join" in ask:
                client.subscribe(channel)
            else:
                client.unsubscribe(channel)
        elif "to" in ask:
            channel = str(ask["to"])
            if channel not in self.write:
                client.write(json.dumps({"error": "forbidden", "write": channel}))
                return
            text = str(ask.get("text", ""))[:1000]
            Iodine.publish(channel, json.dumps({"channel": channel, "from": self.name,
                                                "text": text}))
        else:
            client.write(json.dumps({"error": "bad request", "detail": "join, leave or to"}))


def app(environ, start_response):
    grant = GRANTS.get(token_of(environ))
    if grant is None:  # decided before any upgrade: no token, no WebSocket
        start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                            ("WWW-Authenticate", 'Bearer realm="chat"')])
        return [b"a valid token is needed\n"]
    if environ["rack.upgrade?"] != "websocket":
        start_response("426 Upgrade Required", [("Content-Type", "text/plain"),
                                                ("Upgrade", "websocket")])
        return [b"connect with a WebSocket\n"]
    environ["rack.upgrade"] = Member(*grant)
    start_response("200 OK", [])
    return []
