"""Interoperability with an independent client: websocket-client (sync).

The server runs tests/apps/ws_echo.py with -maxms 2048 so that 1 MiB
messages fit in both directions.
"""

from __future__ import annotations

import os
import struct

import pytest
import websocket
from websocket import ABNF

from tests.websocket import wsraw


@pytest.fixture
def srv(run_server):
    return run_server("ws_echo", "-maxms", "2048")


@pytest.fixture
def ws(srv):
    conn = websocket.create_connection(wsraw.url(srv, "/"), timeout=10)
    yield conn
    conn.shutdown()


def close_code(data: bytes):
    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None


def test_text_round_trip(ws):
    ws.send("hello, \u4e16\u754c")
    opcode, data = ws.recv_data()
    assert opcode == ABNF.OPCODE_TEXT
    assert data.decode("utf-8") == "hello, \u4e16\u754c"


def test_binary_round_trip(ws):
    payload = bytes(range(256))
    ws.send_binary(payload)
    opcode, data = ws.recv_data()
    assert (opcode, data) == (ABNF.OPCODE_BINARY, payload)


@pytest.mark.parametrize("kind", ["binary", "text"])
def test_one_mebibyte_message_both_directions(ws, kind):
    """1 MiB up (client -> server, masked) and the same 1 MiB back down."""
    if kind == "binary":
        payload = os.urandom(1 << 20)
        ws.send_binary(payload)
        expected = (ABNF.OPCODE_BINARY, payload)
    else:
        payload = ("0123456789abcdef\u00e9" * 65536)[: (1 << 20) // 2]
        ws.send(payload)
        expected = (ABNF.OPCODE_TEXT, payload.encode("utf-8"))
    opcode, data = ws.recv_data()
    assert opcode == expected[0]
    assert len(data) == len(expected[1])
    assert data == expected[1]


def test_several_large_messages_in_a_row(ws):
    payloads = [os.urandom(300_000 + i) for i in range(4)]
    for p in payloads:
        ws.send_binary(p)
    for p in payloads:
        assert ws.recv_data() == (ABNF.OPCODE_BINARY, p)


def test_fragmented_send_with_continuation_frames(ws):
    """send_frame with FIN=0, then continuation frames, the last FIN=1."""
    ws.send_frame(ABNF.create_frame("Hello", ABNF.OPCODE_TEXT, 0))
    ws.send_frame(ABNF.create_frame(", ", ABNF.OPCODE_CONT, 0))
    ws.send_frame(ABNF.create_frame("world", ABNF.OPCODE_CONT, 1))
    assert ws.recv_data() == (ABNF.OPCODE_TEXT, b"Hello, world")


def test_fragmented_binary_with_a_ping_in_between(ws):
    ws.send_frame(ABNF.create_frame(b"\x00\x01", ABNF.OPCODE_BINARY, 0))
    ws.ping("between")
    ws.send_frame(ABNF.create_frame(b"\x02\x03", ABNF.OPCODE_CONT, 1))
    assert ws.recv_data(control_frame=True) == (ABNF.OPCODE_PONG, b"between")
    assert ws.recv_data() == (ABNF.OPCODE_BINARY, b"\x00\x01\x02\x03")


def test_ping_pong(ws):
    ws.ping("are you there")
    assert ws.recv_data(control_frame=True) == (ABNF.OPCODE_PONG, b"are you there")


@pytest.mark.parametrize("code,reason", [(1000, b"done"), (1001, b""), (4001, b"app-specific")])
def test_client_close_code_is_echoed(ws, code, reason):
    """The client closes with a code; the server's Close echoes it."""
    ws.send_close(code, reason)
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == ABNF.OPCODE_CLOSE
    assert close_code(data) == code


def test_client_close_completes_the_handshake(srv):
    """websocket-client's close() sends Close and waits for the reply; the
    server then closes the TCP connection (recv sees the end)."""
    conn = websocket.create_connection(wsraw.url(srv, "/"), timeout=5)
    try:
        conn.send("before-close")
        assert conn.recv() == "before-close"
        conn.close(status=1000, timeout=3)
        assert not conn.connected
    finally:
        conn.shutdown()
    wsraw.assert_echo_works(srv)


def test_message_over_the_limit_is_closed_with_1009(srv):
    conn = websocket.create_connection(wsraw.url(srv, "/"), timeout=10)
    try:
        try:
            conn.send_binary(b"x" * (2048 * 1024 + 1))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before the whole message is written
        # recv_frame, not recv_data: the latter would answer the Close, and
        # the server (which stops discarding input after a bounded amount)
        # may already have reset the connection.
        frame = conn.recv_frame()
        assert frame.opcode == ABNF.OPCODE_CLOSE
        assert close_code(frame.data) == 1009
    finally:
        conn.shutdown()


def test_many_sequential_connections(srv):
    """Connection set-up and tear-down leak nothing that stops the 200th."""
    for i in range(200):
        conn = websocket.create_connection(wsraw.url(srv, "/"), timeout=5)
        try:
            conn.send(f"n{i}")
            assert conn.recv() == f"n{i}"
        finally:
            conn.close(timeout=2)
