"""Graceful shutdown (SIGTERM) with open WebSocket and SSE connections.

Order promised for every open upgraded connection: on_shutdown (a write
there still reaches the peer), then -- WebSocket -- a Close frame with 1001
"going away" (RFC 6455 7.4.1), then on_close; then the process exits 0.

App: tests/apps/ws_shutdown.py, recording to $WS_RECORD_FILE.
"""

from __future__ import annotations

import signal
import struct
import time

import pytest
import websocket
from websocket import ABNF

from tests.websocket import wsraw


def read_event(conn, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    while b"\n\n" not in conn.buf:
        if not conn._fill(deadline):
            raise AssertionError(f"stream ended before a whole event: {bytes(conn.buf)!r}")
    i = conn.buf.index(b"\n\n") + 2
    event = bytes(conn.buf[:i])
    del conn.buf[:i]
    return event


def open_sse(srv, name):
    c = srv.connect(timeout=10)
    c.request("GET", f"/?name={name}", [("Accept", "text/event-stream")])
    assert c.read_head().status == 200
    assert read_event(c) == b"data: hello\n\n"
    return c


def open_ws(srv, path, name):
    ws = wsraw.connect_srv(srv, f"{path}?name={name}", timeout=10)
    ws.send_text("ready?")
    assert ws.recv_text() == "ready?"
    return ws


@pytest.mark.parametrize("threads", ["1", "4"])
def test_sigterm_runs_on_shutdown_then_closes_1001_then_on_close(run_server, tmp_path, threads):
    record = tmp_path / "record.txt"
    srv = run_server("ws_shutdown", "-t", threads, env={"WS_RECORD_FILE": record})
    ws_a = open_ws(srv, "/ws", "a")          # answers the Close
    ws_b = open_ws(srv, "/ws", "b")          # never answers the Close
    ws_plain = open_ws(srv, "/ws-plain", "plain")  # has no on_shutdown
    sse = open_sse(srv, "s")
    try:
        signalled = time.monotonic()
        srv.send_signal(signal.SIGTERM)

        # WebSocket with on_shutdown: its write arrives first, then Close 1001.
        for ws in (ws_a, ws_b):
            assert ws.recv_text(timeout=10) == "bye-from-shutdown"
            f = ws.recv_close(timeout=10)
            assert f.close_code == 1001, f
        ws_a.send_close(1001)  # complete the closing handshake (7.1.2)
        ws_a.expect_tcp_close(timeout=5)
        ws_b.expect_tcp_close(timeout=5)

        # Without on_shutdown: just the Close 1001.
        ws_plain.expect_close(1001, timeout=10)

        # SSE: the shutdown event, then the end of the stream.
        assert read_event(sse, timeout=10) == b"event: shutdown\ndata: bye-from-shutdown\n\n"
        assert sse.wait_closed(timeout=5), "SSE stream still open after shutdown"
    finally:
        # Like real clients, close our sockets once the server closed its
        # side (a peer that does not is test_exit_not_held_by_...).
        for ws in (ws_a, ws_b, ws_plain):
            ws.close_socket()
        sse.close()
    assert srv.wait_exit(15) == 0, srv.stderr
    took = time.monotonic() - signalled
    assert took < 5, f"exit took {took:.1f}s after SIGTERM"
    lines = record.read_text().splitlines()

    def events(prefix):
        return [line[len(prefix):] for line in lines if line.startswith(prefix)]

    for name in ("a", "b"):
        assert events(f"ws:{name}:") == ["open", "shutdown", "shutdown-write=True",
                                         "close is_open=False"], lines
    assert events("ws:plain:") == ["open", "close is_open=False"], lines
    assert events("sse:s:") == ["open", "shutdown", "shutdown-write=True",
                                "close is_open=False"], lines


def test_sigterm_with_a_websocket_client_library(run_server, tmp_path):
    """websocket-client sees the shutdown message, then a 1001 Close."""
    record = tmp_path / "record.txt"
    srv = run_server("ws_shutdown", env={"WS_RECORD_FILE": record})
    conn = websocket.create_connection(wsraw.url(srv, "/ws?name=lib"), timeout=10)
    try:
        conn.send("x")
        assert conn.recv() == "x"
        srv.send_signal(signal.SIGTERM)
        assert conn.recv_data() == (ABNF.OPCODE_TEXT, b"bye-from-shutdown")
        frame = conn.recv_frame()
        assert frame.opcode == ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", frame.data[:2])[0] == 1001
    finally:
        conn.shutdown()
    assert srv.wait_exit(15) == 0, srv.stderr
    assert record.read_text().splitlines() == [
        "ws:lib:open", "ws:lib:shutdown", "ws:lib:shutdown-write=True",
        "ws:lib:close is_open=False"]


@pytest.mark.parametrize("answer_close", [True, False], ids=["answers-close", "silent"])
def test_exit_not_held_by_a_peer_that_keeps_its_socket_open(run_server, tmp_path, answer_close):
    """After the server's Close 1001 and its FIN, a peer may keep its
    socket open (with or without answering the Close). The server lingers
    only briefly (2 s in the reactor) before releasing the socket, so the
    process exits promptly -- it must not sit out the whole --grace period
    (here 10 s, the default) for a connection that is already closed."""
    srv = run_server("ws_shutdown", env={"WS_RECORD_FILE": tmp_path / "r.txt"})
    ws = open_ws(srv, "/ws-plain", "kept")
    try:
        signalled = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        f = ws.recv_close(timeout=10)
        assert f.close_code == 1001
        if answer_close:
            ws.send_close(1001)
        ws.expect_tcp_close(timeout=5)
        # ... and keep the socket open while the server exits.
        rc = srv.wait_exit(15)
        took = time.monotonic() - signalled
    finally:
        ws.close_socket()
    assert rc == 0, srv.stderr
    assert took < 5, (f"the process exited {took:.1f}s after SIGTERM: it waited for a peer "
                      f"whose connection it had already closed")


@pytest.mark.parametrize("threads", ["1", "4"])
@pytest.mark.parametrize("kind", ["sse", "websocket"])
def test_on_close_runs_for_the_last_connection_at_shutdown(run_server, tmp_path, kind, threads):
    """The connection that closes last during shutdown still gets its
    on_close before the process exits (the WebSocket client here closes its
    socket as soon as it has the server's Close, as browsers do)."""
    record = tmp_path / "record.txt"
    srv = run_server("ws_shutdown", "-t", threads, env={"WS_RECORD_FILE": record})
    if kind == "sse":
        c = open_sse(srv, "last")
        srv.send_signal(signal.SIGTERM)
        assert read_event(c, timeout=10) == b"event: shutdown\ndata: bye-from-shutdown\n\n"
        assert c.wait_closed(timeout=5)
        c.close()
        prefix = "sse:last:"
    else:
        ws = open_ws(srv, "/ws", "last")
        srv.send_signal(signal.SIGTERM)
        assert ws.recv_text(timeout=10) == "bye-from-shutdown"
        assert ws.recv_close(timeout=10).close_code == 1001
        ws.close_socket()
        prefix = "ws:last:"
    assert srv.wait_exit(15) == 0, srv.stderr
    events = [line[len(prefix):] for line in record.read_text().splitlines()]
    assert events == ["open", "shutdown", "shutdown-write=True", "close is_open=False"], \
        f"on_close did not run before exit: {events}"
