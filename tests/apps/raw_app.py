"""Raw services and client connections for tests/raw.

At import (so the CLI serves them next to `app`), on 127.0.0.1 port 0:
  - an echo service (every byte back, as it arrives), logged as "raw echo";
  - a pub/sub service: each connection subscribes to RAW_CHANNEL (bytes
    reach it unframed) and publishes what it sends there;
  - with RAW_UNIX=/path, the echo service on that Unix socket too;
  - with RAW_TLS=1, the echo service over TLS (self-signed, or
    RAW_TLS_CERT/RAW_TLS_KEY);
  - with RAW_CONNECT_AT_START=url, every worker connects there from its
    enter_child hook and writes "boot <pid>\\n".

`app` (WSGI) drives client connections:
  GET /connect?url=U&name=N[&send=S][&sub=CH][&verify=0][&ca=F][&timeout=SEC]
       [&proto=A,B][&hdr=Name:value][&maxmsg=N][&sendbin=N][&close_after=N]
  GET /connect-later?... (the same, from a timer)
  GET /publish?ch=CH&msg=M

Every callback writes one line to stderr: "raw NAME EVENT DETAIL".
"""
import hashlib
import os
import sys
from urllib.parse import parse_qs

from iodine_py import Iodine

RAW_CHANNEL = "raw-chat"


def log(name, event, detail=""):
    sys.stderr.write(f"raw {name} {event} {detail}\n")
    sys.stderr.flush()


class Echo:
    def on_open(self, client):
        log("echo", "open", client.protocol)

    def on_message(self, client, data):
        client.write(data)

    def on_close(self, client):
        log("echo", "close", client.close_reason)


class Chat:
    def on_open(self, client):
        client.subscribe(RAW_CHANNEL)
        log("chat", "open")

    def on_message(self, client, data):
        client.publish(RAW_CHANNEL, data)

    def on_close(self, client):
        log("chat", "close", client.close_reason)


class Logger:
    """WebSocket client connections (ws://) log "open websocket SUBPROTOCOL",
    "text LEN FIRST-40-CHARS" and "binary LEN SHA256[:16]"; `send` goes as a
    text message, `sendbin` (bytes) as binary; `close_after` closes after
    that many messages."""

    def __init__(self, name, send=b"", sub=None, sendbin=None, close_after=0):
        self.name, self.send, self.sub = name, send, sub
        self.sendbin, self.close_after, self.seen = sendbin, close_after, 0

    def on_open(self, client):
        if client.protocol == "websocket":
            log(self.name, "open", f"websocket {client.env.get('subprotocol', '-')}")
        else:
            log(self.name, "open", client.protocol)
        if self.sub:
            client.subscribe(self.sub)
        if self.send:
            client.write(self.send.decode() if client.protocol == "websocket" else self.send)
        if self.sendbin is not None:
            client.write(self.sendbin)

    def on_message(self, client, data):
        self.seen += 1
        if isinstance(data, str):
            log(self.name, "text", f"{len(data)} {data[:40]}")
        elif client.protocol == "websocket":
            log(self.name, "binary", f"{len(data)} {hashlib.sha256(data).hexdigest()[:16]}")
        else:
            log(self.name, "msg", data.decode("latin-1").replace("\n", "|"))
        if self.close_after and self.seen >= self.close_after:
            client.close()

    def on_close(self, client):
        log(self.name, "close", client.close_reason)


Iodine.listen(Echo, port=0, address="127.0.0.1", service="raw")
Iodine.listen(Chat, port=0, address="127.0.0.1", service="raw")
if os.environ.get("RAW_UNIX"):
    Iodine.listen(Echo, address="unix:" + os.environ["RAW_UNIX"], service="raw")
if os.environ.get("RAW_TLS"):
    Iodine.listen(Echo, port=0, address="127.0.0.1", service="raw", tls=True,
                  tls_cert=os.environ.get("RAW_TLS_CERT"), tls_key=os.environ.get("RAW_TLS_KEY"))
if os.environ.get("RAW_CONNECT_AT_START"):
    def _boot():
        name = f"boot-{os.getpid()}"
        Iodine.connect(os.environ["RAW_CONNECT_AT_START"],
                       Logger(name, f"boot {os.getpid()}\n".encode()))
    Iodine.on_state("enter_child", _boot)


def _connect(q):
    name = q.get("name", ["c"])[0]
    kw = {}
    if q.get("verify", ["1"])[0] == "0":
        kw["tls_verify"] = False
    if "ca" in q:
        kw["tls_ca"] = q["ca"][0]
    if "timeout" in q:
        kw["timeout"] = float(q["timeout"][0])
    if "proto" in q:
        kw["subprotocols"] = q["proto"][0].split(",")
    if "hdr" in q:
        kw["headers"] = [tuple(h.split(":", 1)) for h in q["hdr"]]
    if "maxmsg" in q:
        kw["max_msg"] = int(q["maxmsg"][0])
    sendbin = None
    if "sendbin" in q:  # N bytes of a fixed pattern
        n = int(q["sendbin"][0])
        sendbin = (bytes(range(256)) * (n // 256 + 1))[:n]
    Iodine.connect(q["url"][0], Logger(name, q.get("send", [""])[0].encode(), q.get("sub", [None])[0],
                                       sendbin, int(q.get("close_after", ["0"])[0])), **kw)


def app(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    path = environ["PATH_INFO"]
    if path == "/connect":
        _connect(q)
    elif path == "/connect-later":
        Iodine.run_after(10, lambda: _connect(q))
    elif path == "/publish":
        Iodine.publish(q["ch"][0], q["msg"][0].encode())
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [body]
