"""Every example in examples/ started the way its docstring says (through
the iodine command, on a free port) and used for one real interaction.

examples/chat_redis.py is exercised by
tests/pubsub/test_redis.py::test_chat_example_over_redis (two servers and a
real redis-server), so it is not repeated here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path


from tests.frameworks.helpers import EventStream, json_body, needs
from tests.server import REPO_ROOT
from tests.websocket.wsraw import OP_BINARY, connect_srv

EXAMPLES = REPO_ROOT / "examples"
CHAT_PAGE = (EXAMPLES / "chat.html").read_bytes()


def test_every_example_names_its_run_line():
    for path in sorted(EXAMPLES.glob("*.py")):
        doc = path.read_text().split('"""')[1]
        assert re.search(rf"iodine examples/{re.escape(path.name)}\b", doc), \
            f"{path.name}: no `iodine examples/{path.name}` run line in its docstring"


# -- hello, echo ----------------------------------------------------------------------

def test_hello(run_server):
    srv = run_server("examples/hello.py")
    resp = srv.get("/")
    assert (resp.status, resp.body) == (200, b"Hello World")


def test_echo_websocket_and_sse_clock(run_server):
    srv = run_server("examples/echo.py")
    with connect_srv(srv, "/") as ws:
        ws.send_text("caf\u00e9")
        assert ws.recv_text() == "caf\u00e9"
        ws.send_binary(b"\x01\x02")
        assert ws.recv_message() == (OP_BINARY, b"\x01\x02")
    with EventStream(srv, "/") as es:
        first = es.next_event()
        assert first["type"] == "tick" and re.fullmatch(r"\d\d:\d\d:\d\d", first["data"])
        second = es.next_event(timeout=3)  # Iodine.run_every(1000, ...)
        assert second["type"] == "tick"
    assert b"WebSocket" in srv.get("/").body


# -- the chat, three ways ---------------------------------------------------------------

def chat_round_trip(srv) -> None:
    """Two WebSocket members and an EventSource member talk through the
    example's pub/sub channel, as chat.html does (/ws, /events, /say)."""
    with connect_srv(srv, "/ws?name=bob") as bob:
        assert bob.recv_text() == "bob joined"  # bob's subscription is live
        with connect_srv(srv, "/ws?name=alice") as alice:
            assert alice.recv_text() == "alice joined"
            assert bob.recv_text() == "alice joined"
            alice.send_text("hello bob")
            assert bob.recv_text() == "alice: hello bob"
            assert alice.recv_text() == "alice: hello bob"
            with EventStream(srv, "/events?name=carol") as carol:
                assert carol.head.status == 200
                assert carol.next_event()["data"] == "carol joined"
                assert alice.recv_text() == "carol joined"
                assert bob.recv_text() == "carol joined"
                resp = srv.request("POST", "/say?name=carol", body="hi \u00e9 all".encode())
                assert resp.status == 204
                assert carol.next_event()["data"] == "carol: hi \u00e9 all"
                assert alice.recv_text() == "carol: hi \u00e9 all"
                assert bob.recv_text() == "carol: hi \u00e9 all"
            assert alice.recv_text() == "carol left"
        assert bob.recv_text() == "carol left"
        assert bob.recv_text() == "alice left"


def test_chat(run_server):
    srv = run_server("examples/chat.py")
    page = srv.get("/")
    assert page.status == 200 and page.body == CHAT_PAGE
    chat_round_trip(srv)


@needs("flask")
def test_flask_chat(run_server):
    srv = run_server("examples/flask_chat.py", "-t", "4")
    page = srv.get("/")
    assert page.status == 200 and page.body == CHAT_PAGE
    assert page.header("Content-Type").startswith("text/html")
    chat_round_trip(srv)
    assert srv.get("/ws").status == 400  # not a handshake: Werkzeug refuses it


@needs("django")
def test_django_chat(run_server):
    srv = run_server("examples/django_chat.py", "-t", "4")
    page = srv.get("/")
    assert page.status == 200 and page.body == CHAT_PAGE
    chat_round_trip(srv)
    assert srv.get("/ws").status == 400  # the helper's refusal
    assert srv.get("/", host="elsewhere.example").status == 400  # ALLOWED_HOSTS


# -- dashboard -----------------------------------------------------------------------

def test_dashboard_pushes_metrics(run_server):
    srv = run_server("examples/dashboard.py")
    page = srv.get("/")
    assert page.status == 200 and b'new EventSource("/metrics")' in page.body
    with EventStream(srv, "/metrics") as es:
        hello = es.next_event()
        assert hello["type"] == "hello"
        first = json.loads(hello["data"])
        assert set(first) == {"pid", "time", "uptime", "load", "rss", "viewers",
                              "requests", "rate"}
        assert first["viewers"] == 1
        assert first["rss"] > 1024 * 1024 and len(first["load"]) == 3
        for _ in range(10):
            assert srv.get("/ping").body == b"pong\n"
        # the next timer tick (Iodine.run_every(1000, ...)) arrives by pub/sub
        deadline = time.monotonic() + 5
        while True:
            ev = es.next_event(timeout=max(0.1, deadline - time.monotonic()))
            assert ev is not None, "the stream ended"
            if ev["type"] != "message":
                continue
            tick = json.loads(ev["data"])
            if tick["requests"] >= first["requests"] + 10:
                break
            assert time.monotonic() < deadline, f"no tick counted the pings: {tick}"
        assert tick["pid"] == first["pid"]
        assert tick["viewers"] == 1


# -- upload --------------------------------------------------------------------------

def test_upload_streams_to_disk_with_checksum(run_server, tmp_path):
    store = tmp_path / "uploads"
    srv = run_server("examples/upload.py", env={"UPLOAD_DIR": str(store)})
    assert srv.get("/").status == 200
    data = os.urandom(2 * 1024 * 1024 + 12345)  # past the 1 MiB body spill
    resp = srv.request("PUT", "/upload/r%C3%A9sum%C3%A9.bin", body=data, timeout=20)
    assert resp.status == 201, resp
    assert json_body(resp) == {"name": "r\u00e9sum\u00e9.bin", "size": len(data),
                               "sha256": hashlib.sha256(data).hexdigest()}
    assert (store / "r\u00e9sum\u00e9.bin").read_bytes() == data
    assert [p.name for p in store.iterdir()] == ["r\u00e9sum\u00e9.bin"]  # no temp file left
    # names cannot leave the folder
    resp = srv.request("POST", "/upload/..%2F..%2Fescape.txt", body=b"x")
    assert resp.status == 201 and json_body(resp)["name"] == "escape.txt"
    assert (store / "escape.txt").read_bytes() == b"x"
    assert srv.request("POST", "/upload/..", body=b"x").status == 400
    assert srv.get("/upload/x").status == 405
    assert not any(Path(tmp_path).glob("escape.txt"))


# -- access control: examples/access_chat.py --------------------------------------------

def test_access_chat_checks_the_token_before_the_upgrade_and_the_grants_after(run_server):
    websocket = __import__("pytest").importorskip("websocket")  # websocket-client
    srv = run_server("examples/access_chat.py")
    url = f"ws://127.0.0.1:{srv.port}/"
    # no token, or an unknown one: 401 before any upgrade
    for target in ("/", "/?token=mallory"):
        resp = srv.get(target, headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                        ("Sec-WebSocket-Version", "13")])
        assert resp.status == 401, target
    for bad in ("", "mallory"):
        with __import__("pytest").raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(url + f"?token={bad}", timeout=5)

    def join(token, header=False):
        if header:
            ws = websocket.create_connection(url, timeout=10,
                                             header=[f"Authorization: Bearer {token}"])
        else:
            ws = websocket.create_connection(url + f"?token={token}", timeout=10)
        return ws

    def recv(ws):
        return json.loads(ws.recv())

    alice, bob, carol = join("alice-token"), join("bob-token", header=True), join("carol-token")
    for ws in (alice, bob, carol):
        ws.settimeout(10)

    def until(ws, text):
        """The messages ws gets up to the one with this text (which is last)."""
        seen = []
        while True:
            m = recv(ws)
            seen.append(m)
            if m.get("text") == text:
                return seen

    def ready(writer, channel, readers):
        """Probe until every reader is subscribed (on_open has run), then
        sync every reader to one point: one process delivers in publish
        order, so what a reader gets next was published after that."""
        deadline = time.monotonic() + 10
        heard = set()
        k = 0
        while len(heard) < len(readers):
            assert time.monotonic() < deadline, f"not every reader of {channel} is subscribed"
            writer.send(json.dumps({"to": channel, "text": f"probe{k}"}))
            for n, ws in enumerate(readers):
                if n in heard:
                    continue
                ws.settimeout(0.5)
                try:
                    while True:
                        if recv(ws).get("text", "").startswith("probe"):
                            heard.add(n)
                            break
                except websocket.WebSocketTimeoutException:
                    pass
                ws.settimeout(10)
            k += 1
        writer.send(json.dumps({"to": channel, "text": f"sync-{channel}"}))
        for ws in readers:
            until(ws, f"sync-{channel}")

    try:
        ready(alice, "chat", [alice, bob])
        ready(carol, "news", [carol, alice])
        # bob may read chat but not write it
        bob.send(json.dumps({"to": "chat", "text": "not allowed"}))
        assert recv(bob) == {"error": "forbidden", "write": "chat"}
        # bob may not join news; carol may not join chat
        bob.send(json.dumps({"join": "news"}))
        assert recv(bob) == {"error": "forbidden", "read": "news"}
        carol.send(json.dumps({"join": "chat"}))
        assert recv(carol) == {"error": "forbidden", "read": "chat"}
        # carol writes news: she and alice (readers) get it; bob does not
        carol.send(json.dumps({"to": "news", "text": "headline"}))
        assert recv(carol) == {"channel": "news", "from": "carol", "text": "headline"}
        assert recv(alice) == {"channel": "news", "from": "carol", "text": "headline"}
        alice.send(json.dumps({"to": "chat", "text": "marker"}))
        assert recv(alice) == {"channel": "chat", "from": "alice", "text": "marker"}
        # bob's next message is alice's marker: neither carol's news nor his
        # own refused message reached him
        assert recv(bob) == {"channel": "chat", "from": "alice", "text": "marker"}
        # alice leaves news: carol's next news no longer reaches her
        alice.send(json.dumps({"leave": "news"}))
        alice.send(json.dumps({"to": "chat", "text": "after leave"}))
        assert recv(alice) == {"channel": "chat", "from": "alice", "text": "after leave"}
        carol.send(json.dumps({"to": "news", "text": "unseen"}))
        assert recv(carol)["text"] == "unseen"
        alice.send(json.dumps({"to": "chat", "text": "second marker"}))
        assert recv(alice) == {"channel": "chat", "from": "alice", "text": "second marker"}
        # bob (a chat reader) got both chat messages and nothing from news
        assert [m["text"] for m in until(bob, "second marker")] == ["after leave",
                                                                     "second marker"]
        # not JSON: a clear answer, the connection stays
        bob.send("hello")
        assert recv(bob)["error"] == "bad request"
    finally:
        for ws in (alice, bob, carol):
            ws.close()
