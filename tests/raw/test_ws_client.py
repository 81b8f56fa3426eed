"""WebSocket client connections (Iodine.connect("ws://..." | "wss://...")):
against the `websockets` library's server (nobody here wrote it): text,
binary, 1 MiB messages both ways, fragmented messages, the server's ping,
close codes both ways, subprotocol negotiation, extra headers, a refused
handshake, TLS; and against our own WebSocket server; pub/sub delivering
to a client connection from C.

App: tests/apps/raw_app.py (GET /connect?url=...; its Logger logs "open
websocket SUBPROTOCOL", "text LEN ...", "binary LEN SHA", "close REASON").
"""
from __future__ import annotations

import asyncio
import hashlib
import queue
import ssl
import threading
from http import HTTPStatus
from urllib.parse import quote

import pytest

from tests.raw.helpers import wait_line
from tests.raw.test_connect import cert_files  # noqa: F401  (fixture)

websockets = pytest.importorskip("websockets")
from websockets.asyncio.server import serve  # noqa: E402


class WsPeer:
    """A websockets server in a thread. Paths: /echo (every message back),
    /fragments (a text and a binary message sent in fragments), /ping (pings
    the client, then says whether the pong came), /close4001 (closes with
    4001), /forbidden (refuses the handshake with 403). Records each
    connection's close code and request headers."""

    def __init__(self, subprotocols=None, tls=None):
        self.closes: "queue.Queue[int]" = queue.Queue()
        self.headers: "queue.Queue[dict]" = queue.Queue()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def handler(ws):
            self.headers.put(dict(ws.request.headers))
            path = ws.request.path
            try:
                if path == "/echo":
                    async for msg in ws:
                        await ws.send(msg)
                elif path == "/fragments":
                    await ws.send(["frag", "ment", "ed"])
                    await ws.send([b"\x01\x02", b"\x03"])
                    await ws.wait_closed()
                elif path == "/ping":
                    waiter = await ws.ping(b"are you there")
                    try:
                        await asyncio.wait_for(waiter, 10)
                        await ws.send("pong ok")
                    except asyncio.TimeoutError:
                        await ws.send("no pong")
                    await ws.wait_closed()
                elif path == "/close4001":
                    await ws.close(4001, "bye")
            finally:
                self.closes.put(ws.close_code)

        def process_request(connection, request):
            if request.path == "/forbidden":
                return connection.respond(HTTPStatus.FORBIDDEN, "no\n")
            return None

        async def main():
            kw = dict(subprotocols=subprotocols) if subprotocols else {}
            async with serve(handler, "127.0.0.1", 0, process_request=process_request,
                             max_size=4 * 1024 * 1024, ssl=tls, **kw) as server:
                self.port = server.sockets[0].getsockname()[1]
                self.stop = self.loop.create_future()
                ready.set()
                await self.stop

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),),
                                       daemon=True)
        self.thread.start()
        assert ready.wait(10)
        scheme = "wss" if tls else "ws"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set_result, None)
        self.thread.join(10)


@pytest.fixture
def wspeer():
    p = WsPeer()
    yield p
    p.close()


def connect(srv, url: str, name: str, **q) -> None:
    parts = [f"url={quote(url, safe='')}", f"name={name}"]
    for k, v in q.items():
        for item in (v if isinstance(v, list) else [v]):
            parts.append(f"{k}={quote(str(item), safe='')}")
    assert srv.get("/connect?" + "&".join(parts)).status == 200


def test_text_and_close_from_our_side(run_server, wspeer):
    srv = run_server("raw_app")
    connect(srv, wspeer.url + "/echo", "t", send="caf\u00e9 au lait", close_after=1)
    wait_line(srv, "t", "open", "websocket -")
    wait_line(srv, "t", "text", "12 caf\u00e9 au lait")
    assert wspeer.closes.get(timeout=10) == 1000  # our Close frame, code 1000
    wait_line(srv, "t", "close", "closed")


def test_binary_one_mib_both_ways(run_server, wspeer):
    srv = run_server("raw_app")
    n = 1 << 20
    payload = (bytes(range(256)) * (n // 256 + 1))[:n]
    connect(srv, wspeer.url + "/echo", "big", sendbin=n, maxmsg=2 * n)
    wait_line(srv, "big", "binary", f"{n} {hashlib.sha256(payload).hexdigest()[:16]}",
              timeout=30)


def test_message_over_max_msg_is_refused_with_1009(run_server, wspeer):
    srv = run_server("raw_app")
    connect(srv, wspeer.url + "/echo", "toobig", sendbin=300_000, maxmsg=100_000)
    wait_line(srv, "toobig", "close", "protocol error: Close 1009 sent", timeout=20)
    assert wspeer.closes.get(timeout=10) == 1009


def test_fragmented_messages_are_reassembled(run_server, wspeer):
    srv = run_server("raw_app")
    connect(srv, wspeer.url + "/fragments", "frag")
    wait_line(srv, "frag", "text", "10 fragmented")
    wait_line(srv, "frag", "binary", f"3 {hashlib.sha256(bytes([1, 2, 3])).hexdigest()[:16]}")


def test_server_ping_gets_our_pong(run_server, wspeer):
    srv = run_server("raw_app")
    connect(srv, wspeer.url + "/ping", "ping")
    wait_line(srv, "ping", "text", "7 pong ok")


def test_close_code_from_the_server_reaches_close_reason(run_server, wspeer):
    srv = run_server("raw_app")
    connect(srv, wspeer.url + "/close4001", "c4001")
    wait_line(srv, "c4001", "open", "websocket -")
    wait_line(srv, "c4001", "close", "peer sent Close 4001")
    assert wspeer.closes.get(timeout=10) == 4001  # echoed: the close handshake completed


def test_refused_handshake_reaches_on_close(run_server, wspeer):
    srv = run_server("raw_app")
    connect(srv, wspeer.url + "/forbidden", "403")
    wait_line(srv, "403", "close", r"handshake: the server did not switch protocols \(no 101\)")
    assert not any(line.startswith("raw 403 open") for line in srv.stderr_lines)


def test_subprotocol_and_headers(run_server):
    p = WsPeer(subprotocols=["chat"])
    try:
        srv = run_server("raw_app")
        connect(srv, p.url + "/echo", "sp", proto="superchat,chat", hdr="X-Token:s3cret",
                send="hi")
        wait_line(srv, "sp", "open", "websocket chat")
        wait_line(srv, "sp", "text", "2 hi")
        h = p.headers.get(timeout=10)
        assert h.get("x-token") == "s3cret"
        assert h.get("sec-websocket-protocol") == "superchat, chat"
    finally:
        p.close()


def test_wss_with_a_pinned_ca(run_server, cert_files):  # noqa: F811
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_files)
    p = WsPeer(tls=ctx)
    try:
        srv = run_server("raw_app")
        port = p.port
        connect(srv, f"wss://localhost:{port}/echo", "wss", send="over tls", ca=cert_files[0])
        wait_line(srv, "wss", "text", "8 over tls")
        connect(srv, f"wss://localhost:{port}/echo", "wssbad", send="x")
        wait_line(srv, "wssbad", "close", r"tls: certificate verify failed: .*")
    finally:
        p.close()


def test_client_to_our_own_websocket_server_and_pubsub_from_c(run_server):
    """Our client to our own WebSocket server (a second server running
    examples/echo.py), and a subscription on the client connection: a
    publish goes out from C as a masked binary frame, the echo comes back."""
    echo = run_server("examples/echo.py")
    srv = run_server("raw_app")
    url = f"ws://127.0.0.1:{echo.port}/"
    connect(srv, url, "own", send="to our server", sub="wsnews")
    wait_line(srv, "own", "text", "13 to our server")
    assert srv.get("/publish?ch=wsnews&msg=from%20pubsub").status == 200
    wait_line(srv, "own", "binary", f"11 {hashlib.sha256(b'from pubsub').hexdigest()[:16]}")


class RawAnswer:
    """A TCP server that answers any connection with fixed bytes (or
    nothing) and keeps it open: a broken or silent WebSocket server."""

    def __init__(self, answer: bytes):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"ws://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.conns = []

        def serve():
            while True:
                try:
                    c, _ = self.sock.accept()
                except OSError:
                    return
                self.conns.append(c)
                if answer:
                    c.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("answer,reason", [
    (b"SSH-2.0-OpenSSH_9.0\r\n\r\n", r"handshake: not an HTTP/1\.1 response"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
     r"handshake: wrong Sec-WebSocket-Accept"),
    (b"HTTP/1.1 101 OK\r\nX-Filler: " + b"a" * 10000, r"handshake: response head too long"),
    (b"", "connect timeout"),  # accepts, never answers the handshake
])
def test_broken_servers_reach_on_close_with_the_reason(run_server, answer, reason):
    peer = RawAnswer(answer)
    try:
        srv = run_server("raw_app")
        connect(srv, peer.url, "broken", timeout="1")
        wait_line(srv, "broken", "close", reason)
        assert not any(line.startswith("raw broken open") for line in srv.stderr_lines)
        srv.assert_alive()
    finally:
        peer.close()


def test_server_stop_closes_client_connections(run_server, wspeer):
    srv = run_server("raw_app")
    connect(srv, wspeer.url + "/echo", "stopping", send="x")
    wait_line(srv, "stopping", "text", "1 x")
    assert srv.stop() == 0
    wait_line(srv, "stopping", "close", "server stopping", timeout=5)
    assert wspeer.closes.get(timeout=10) == 1001  # going away, with a Close frame
