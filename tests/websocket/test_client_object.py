"""The client object handed to callbacks: write, close, is_open, pending,
env, handler, timeout, protocol.

App: tests/apps/ws_client.py (text messages are commands).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.websocket import wsraw
from tests.websocket.wsraw import OP_BINARY, OP_PING, OP_TEXT


@pytest.fixture
def srv(run_server):
    return run_server("ws_client")


def command(ws, cmd: str) -> str:
    ws.send_text(cmd)
    return ws.recv_text()


def report(srv, tag: str, start: int = 0, timeout: float = 5.0) -> dict:
    m = srv.wait_for_stderr(re.compile(rf"^ws-client {tag} (\{{.*\}})$"), timeout=timeout,
                            start=start)
    return json.loads(m.group(1))


# -- write ------------------------------------------------------------------------

@pytest.mark.parametrize("cmd,opcode,payload", [
    ("text:hello", OP_TEXT, b"hello"),
    ("binary:hello", OP_BINARY, b"hello"),
    ("bytearray:hello", OP_BINARY, b"hello"),
    ("empty-text", OP_TEXT, b""),
    ("empty-binary", OP_BINARY, b""),
    ("unicode", OP_TEXT, "h\u00e9llo \u2603 \U0001F600".encode("utf-8")),
], ids=["str", "bytes", "bytearray", "empty-str", "empty-bytes", "unicode"])
def test_write_str_is_a_text_frame_and_bytes_a_binary_frame(srv, cmd, opcode, payload):
    """RFC 6455 5.6: str goes out as one text frame (opcode 1, UTF-8),
    bytes-like as one binary frame (opcode 2), unfragmented."""
    with wsraw.connect_srv(srv) as ws:
        ws.send_text(cmd)
        f = ws.recv_frame()
        assert (f.fin, f.opcode, f.payload) == (True, opcode, payload)


def test_write_returns_true_while_open(srv):
    with wsraw.connect_srv(srv) as ws:
        ws.send_text("results")
        assert ws.recv_text() == "probe"
        assert ws.recv_text() == "write->True"


def test_after_close_write_is_false_is_open_false_pending_minus_1(srv):
    """client.close(): from then on write() returns False (and sends
    nothing), is_open() is False, pending() is -1; the same inside on_close
    and in a timer after it."""
    mark = srv.stderr_mark()
    with wsraw.connect_srv(srv) as ws:
        ws.send_text("close")
        f = ws.recv_frame()
        assert f.opcode == wsraw.OP_CLOSE and f.close_code == 1000, \
            f"expected only the Close frame (no 'late' message), got {f!r}"
        ws.send_close(1000)
        ws.expect_tcp_close()
    after = report(srv, "AFTER-CLOSE", start=mark)
    assert after == {"write": False, "is_open": False, "pending": -1}
    closed = report(srv, "REPORT", start=mark)
    assert closed["on_close"] == {"write": False, "is_open": False, "pending": -1}
    assert closed["timer"] == {"write": False, "is_open": False, "pending": -1}


def test_write_is_false_after_the_peer_vanished(srv):
    mark = srv.stderr_mark()
    ws = wsraw.connect_srv(srv)
    assert command(ws, "is_open") == "True"
    ws.reset()
    closed = report(srv, "REPORT", start=mark)
    assert closed["on_close"] == {"write": False, "is_open": False, "pending": -1}
    assert closed["timer"] == {"write": False, "is_open": False, "pending": -1}


def test_close_after_a_large_write_delivers_the_write_then_the_close(srv):
    """close() waits for queued data: 512 KiB written just before close()
    arrive whole, then the Close frame (1000)."""
    with wsraw.connect_srv(srv, timeout=10) as ws:
        ws.send_text(f"big-then-close:{512 * 1024}")
        opcode, data = ws.recv_message(timeout=10)
        assert (opcode, len(data)) == (OP_BINARY, 512 * 1024)
        assert data == b"B" * (512 * 1024)
        f = ws.recv_close()
        assert f.close_code == 1000
        ws.send_close(1000)
        ws.expect_tcp_close()


@pytest.mark.parametrize("size_kib", [512, 1024, 2048])
def test_one_write_larger_than_max_pending_to_a_reading_client(run_server, size_kib):
    """--max-pending is "output a client may leave unread before it is cut
    off". A client that reads everything leaves nothing unread, so one
    large write (here up to twice --max-pending 1024 KiB) to an idle,
    reading connection is delivered; it is not a reason to drop the
    connection (and never without a Close frame)."""
    srv = run_server("ws_client", "--max-pending", "1024")
    with wsraw.connect_srv(srv, timeout=10) as ws:
        ws.send_text(f"big:{size_kib * 1024}")
        try:
            opcode, data = ws.recv_message(timeout=10)
        except AssertionError as e:  # ConnectionClosed is an AssertionError
            raise AssertionError(f"connection dropped instead of sending a {size_kib} KiB "
                                 f"message to a reading client: {e}") from None
        assert (opcode, len(data)) == (OP_BINARY, size_kib * 1024)
        assert ws.recv_text() == "big-write->True"


# -- is_open / pending ------------------------------------------------------------------

def test_is_open_is_true_in_a_callback_of_an_open_connection(srv):
    with wsraw.connect_srv(srv) as ws:
        assert command(ws, "is_open") == "True"


def test_pending_is_a_small_non_negative_count_while_open(srv):
    with wsraw.connect_srv(srv) as ws:
        n = int(command(ws, "pending"))
        assert 0 <= n <= 1, f"pending() == {n} with nothing written yet"


# -- env, protocol ------------------------------------------------------------------------

def test_env_is_the_request_environ(srv):
    key = wsraw.new_key()
    with wsraw.connect_srv(srv, "/some/path?a=1&b=2", key=key,
                           extra_headers=[("X-Test", "header-value")]) as ws:
        env = json.loads(command(ws, "env"))
    assert env == {
        "same": True,
        "PATH_INFO": "/some/path",
        "QUERY_STRING": "a=1&b=2",
        "REQUEST_METHOD": "GET",
        "HTTP_X_TEST": "header-value",
        "HTTP_SEC_WEBSOCKET_KEY": key,
        "rack.upgrade?": "websocket",
        "rack.upgrade_is_handler": True,
    }


def test_protocol_is_websocket(srv):
    with wsraw.connect_srv(srv) as ws:
        assert command(ws, "protocol") == "websocket"


def test_sse_client_protocol_is_sse_and_its_methods_work(run_server):
    srv = run_server("ws_client", "-ping", "7")
    with srv.connect() as c:
        c.request("GET", "/sse", [("Accept", "text/event-stream")])
        resp = c.read_head()
        assert resp.status == 200
        deadline = time.monotonic() + 5
        while c.buf.count(b"\n\n") < 2:
            assert c._fill(deadline), f"stream ended: {bytes(c.buf)!r}"
    events = bytes(c.buf).split(b"\n\n")
    assert events[0].startswith(b"data: ")
    info = json.loads(events[0][len(b"data: "):])
    assert info == {"protocol": "sse", "is_open": True, "pending": info["pending"],
                    "env_is_environ": True, "timeout": 7.0}
    assert info["pending"] >= 0
    assert events[1] == b"data: write->True"


# -- handler --------------------------------------------------------------------------------

def test_handler_getter_returns_the_callback_object(srv):
    with wsraw.connect_srv(srv) as ws:
        h = json.loads(command(ws, "handler"))
    assert h["is_self"] is True and h["type"] == "Commands"


def test_a_class_is_instantiated_once_per_connection(srv):
    """rack.upgrade = a class: each connection gets its own instance, which
    is what client.handler returns."""
    ids = []
    # both open at once: a closed connection's instance may be freed and
    # its id() reused by the next one
    with wsraw.connect_srv(srv, "/?class=1") as ws1, wsraw.connect_srv(srv, "/?class=1") as ws2:
        for ws in (ws1, ws2):
            h = json.loads(command(ws, "handler"))
            assert h["is_self"] is True and h["type"] == "Commands"
            assert json.loads(command(ws, "handler"))["id"] == h["id"], \
                "one connection saw two instances"
            ids.append(h["id"])
    assert ids[0] != ids[1], "two connections shared one instance of the class"


def test_handler_setter_switches_the_callback_object(srv):
    """Setting handler runs the old object's on_close (which writes "old
    on_close": the connection is still open), then the new object's on_open
    (which writes "other-open"); the getter and env['rack.upgrade'] now
    name the new object, and later messages reach it."""
    with wsraw.connect_srv(srv) as ws:
        ws.send_text("swap")
        assert ws.recv_text() == "old on_close"
        assert ws.recv_text() == "other-open"
        assert json.loads(ws.recv_text()) == {"getter_is_new": True, "env_upgrade_is_new": True}
        assert command(ws, "anything") == "other:anything"


# -- timeout ---------------------------------------------------------------------------------

def test_timeout_getter_defaults_to_the_ping_flag(run_server):
    srv = run_server("ws_client", "-ping", "7")
    with wsraw.connect_srv(srv) as ws:
        assert float(command(ws, "timeout")) == 7.0


def test_timeout_setter_round_trips(srv):
    with wsraw.connect_srv(srv) as ws:
        assert float(command(ws, "timeout")) == 40.0
        assert float(command(ws, "timeout=2.5")) == 2.5
        assert float(command(ws, "timeout")) == 2.5


def test_timeout_setter_changes_when_the_server_pings(srv):
    """The server runs with the default 40 s interval; on_open sets
    client.timeout = 1, so a silent connection is pinged after about 1 s."""
    with wsraw.connect_srv(srv, "/?timeout=1") as ws:
        start = time.monotonic()
        f = ws.recv_frame(timeout=5)
        waited = time.monotonic() - start
    assert f.opcode == OP_PING, f
    assert 0.8 <= waited < 5, f"ping after {waited:.2f}s with client.timeout = 1"
