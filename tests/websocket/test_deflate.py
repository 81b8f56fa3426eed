"""permessage-deflate (RFC 7692) against tests/apps/ws_deflate.py, with a
raw client that compresses and inflates with Python's zlib (an
implementation nobody here wrote), so every byte on the wire is the test's.

Section numbers are RFC 7692's.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from typing import Optional

import pytest

from tests.websocket import wsraw
from tests.websocket.test_idle_memory import rss_bytes

TAIL = b"\x00\x00\xff\xff"


def deflate(data: bytes, bits: int = 15, co=None) -> bytes:
    """7.2.1: compress, sync-flush, drop the trailing 00 00 ff ff."""
    c = co or zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


class Inflater:
    def __init__(self, bits: int = 15):
        self.d = zlib.decompressobj(-bits)

    def __call__(self, payload: bytes) -> bytes:
        return self.d.decompress(payload + TAIL)


def connect(srv, path: str = "/", offer: Optional[str] = "permessage-deflate", **kw):
    extra = [("Sec-WebSocket-Extensions", offer)] if offer is not None else []
    return wsraw.connect_srv(srv, path, extra_headers=extra, **kw)


def recv_data(ws, inflate: Inflater, timeout: float = 5.0) -> tuple[int, bytes, bool]:
    """(opcode, message, was compressed) of the next data message."""
    deadline = time.monotonic() + timeout
    op, parts, compressed = None, [], False
    while True:
        f = ws.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
        if f.opcode in (wsraw.OP_PING, wsraw.OP_PONG):
            continue
        assert f.opcode != wsraw.OP_CLOSE, f"Close {f.close_code} {f.close_reason!r}"
        if op is None:
            op, compressed = f.opcode, f.rsv == 4
        else:
            assert f.opcode == wsraw.OP_CONT and f.rsv == 0, f
        parts.append(f.payload)
        if f.fin:
            data = b"".join(parts)
            return op, inflate(data) if compressed else data, compressed


def stats(srv) -> dict:
    return json.loads(srv.get("/stats").body)


@pytest.fixture
def srv(run_server):
    """--ws-deflate-mem 64: clients may keep their context (the default, 0,
    makes every one reset it: see the memory tests below)."""
    return run_server("ws_deflate", "-maxms", "64", "--ws-deflate-mem", "64")


# -- negotiation (5, 7.1) ------------------------------------------------------

@pytest.mark.parametrize("offer,expected", [
    ("permessage-deflate",
     "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=15"),
    ("permessage-deflate; client_max_window_bits=10",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"),
    ("permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
    ('permessage-deflate; server_max_window_bits="12"',
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=12"),
    ("permessage-deflate; server_max_window_bits=8",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=8"),
    ("permessage-deflate; client_no_context_takeover; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    # 5.1: the first acceptable offer wins; the bad first one is declined
    ("permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=15"),
    ("x-webkit-deflate-frame, permessage-deflate",
     "permessage-deflate; server_no_context_takeover"),
], ids=["bare", "cmwb", "cmwb10", "smwb10", "quoted", "smwb8", "no-ctx", "second-offer",
        "other-ext-first"])
def test_offer_is_answered(srv, offer, expected):
    with connect(srv, offer=offer) as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") == expected
        assert ws.deflate


@pytest.mark.parametrize("offer", [
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits",           # 7.1.2.1: a value is required
    "permessage-deflate; client_max_window_bits=20",
    "permessage-deflate; server_no_context_takeover=1",     # takes no value
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; unknown_param",
    "permessage-deflate; client_max_window_bits=\"1 5\"",
    "permessage-deflate;;",                                 # malformed
    "x-webkit-deflate-frame",
], ids=["smwb7", "smwb16", "leading-zero", "smwb-novalue", "cmwb20", "snct-value",
        "duplicate", "unknown", "quoted-space", "malformed", "other-ext"])
def test_unacceptable_offer_is_declined_and_connection_goes_on_uncompressed(srv, offer):
    """5.1 / 7.1: an offer the server cannot accept is declined (no
    Sec-WebSocket-Extensions), the handshake still succeeds, and then RSV1
    from the client is a protocol error (1002)."""
    with connect(srv, offer=offer) as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") is None
        ws.send_text("plain")
        assert ws.recv_text() == "plain"
        ws.send_frame(wsraw.OP_TEXT, deflate(b"compressed"), rsv=4)
        ws.expect_close(1002)


def test_off_switch_declines_every_offer(run_server):
    srv = run_server("ws_deflate", "--ws-deflate", "off")
    with connect(srv) as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") is None
        assert not ws.deflate


def test_memory_cap_makes_the_client_reset_its_context(run_server):
    """ws_deflate_mem: a 32 KiB window plus zlib's state does not fit in
    16 KiB, so the client must drop its context (7.1.1.2), or lower its
    window when it offered client_max_window_bits."""
    srv = run_server("ws_deflate", "--ws-deflate-mem", "16")
    with connect(srv) as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") == \
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    with connect(srv, offer="permessage-deflate; client_max_window_bits") as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") == \
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=13"


@pytest.mark.parametrize("offer,expected", [
    ("permessage-deflate",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits",  # what browsers offer: the window stays
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "client_max_window_bits=15"),
])
def test_by_default_no_client_keeps_a_context(run_server, offer, expected):
    """The default ws_deflate_mem (0): every client resets its context, so
    an idle connection holds no zlib memory whatever the client offered."""
    srv = run_server("ws_deflate")
    socks = [connect(srv, offer=offer) for _ in range(20)]
    try:
        for ws in socks:
            assert ws.response.header("Sec-WebSocket-Extensions") == expected
            ws.send_frame(wsraw.OP_TEXT, deflate(b"hello " * 100), rsv=4)
        for ws in socks:
            assert recv_data(ws, Inflater())[1] == b"hello " * 100
        assert stats(srv)["inflaters"] <= 16  # the pool, not one per connection
    finally:
        for ws in socks:
            ws.close_socket()


# -- messages (6, 7.2) -----------------------------------------------------------

def test_compressed_messages_round_trip_with_context_takeover(srv):
    """The client keeps its context across messages (the second message is
    mostly a back-reference into the first); the server inflates both and
    compresses its echo (RSV1), each on its own (server_no_context_takeover:
    a fresh inflater per message must do)."""
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    with connect(srv) as ws:
        text = ("the quick brown fox jumps over the lazy dog " * 40).encode()
        for _ in range(3):
            ws.send_frame(wsraw.OP_TEXT, deflate(text, co=co), rsv=4)
            op, data, compressed = recv_data(ws, Inflater())  # fresh: no server context
            assert (op, data, compressed) == (wsraw.OP_TEXT, text, True)
        blob = os.urandom(3000)  # does not shrink: sent plain
        ws.send_frame(wsraw.OP_BINARY, deflate(blob, co=co), rsv=4)
        assert recv_data(ws, Inflater()) == (wsraw.OP_BINARY, blob, False)


def test_small_messages_go_uncompressed(srv):
    with connect(srv) as ws:
        ws.send_text("tiny")  # uncompressed from the client is fine too (6)
        assert recv_data(ws, Inflater()) == (wsraw.OP_TEXT, b"tiny", False)


def test_fragmented_compressed_message_sets_rsv1_on_first_frame_only(srv):
    payload = deflate(("fragmented " * 500).encode())
    third = len(payload) // 3
    with connect(srv) as ws:
        ws.send_frame(wsraw.OP_TEXT, payload[:third], fin=False, rsv=4)
        ws.send_frame(wsraw.OP_PING, b"between")  # control frames interleave
        ws.send_frame(wsraw.OP_CONT, payload[third:2 * third], fin=False)
        ws.send_frame(wsraw.OP_CONT, payload[2 * third:])
        assert recv_data(ws, Inflater())[1] == ("fragmented " * 500).encode()


def test_rsv1_on_a_continuation_frame_is_1002(srv):
    payload = deflate(b"x" * 1000)
    with connect(srv) as ws:
        ws.send_frame(wsraw.OP_TEXT, payload[:5], fin=False, rsv=4)
        ws.send_frame(wsraw.OP_CONT, payload[5:], rsv=4)
        ws.expect_close(1002)


@pytest.mark.parametrize("op", [wsraw.OP_PING, wsraw.OP_CLOSE])
def test_rsv1_on_a_control_frame_is_1002(srv, op):
    """6.1: control frames are never compressed."""
    with connect(srv) as ws:
        ws.send_frame(op, b"\x03\xe8" if op == wsraw.OP_CLOSE else b"", rsv=4)
        ws.expect_close(1002)


@pytest.mark.parametrize("rsv", [2, 1, 6])
def test_rsv2_and_rsv3_stay_errors_with_compression(srv, rsv):
    with connect(srv) as ws:
        ws.send_frame(wsraw.OP_TEXT, deflate(b"abc"), rsv=rsv)
        ws.expect_close(1002)


def test_invalid_deflate_data_is_1007(srv):
    with connect(srv) as ws:
        ws.send_frame(wsraw.OP_BINARY, b"\xff\xff\xff\xff\xff", rsv=4)
        ws.expect_close(1007)


def test_invalid_utf8_after_inflating_is_1007(srv):
    with connect(srv) as ws:
        ws.send_frame(wsraw.OP_TEXT, deflate(b"ok \xed\xa0\x80 surrogate" * 10), rsv=4)
        ws.expect_close(1007)


def test_message_over_the_limit_after_inflating_is_1009(srv):
    """-maxms 64: 100 KiB that deflate to about 100 bytes are still too big."""
    with connect(srv) as ws:
        ws.send_frame(wsraw.OP_BINARY, deflate(b"\0" * (100 * 1024)), rsv=4)
        ws.expect_close(1009)


def test_compression_bomb_is_1009_with_memory_flat(run_server):
    """A 1 GiB message of zeros deflates to about 1 MiB; the server stops
    inflating at -maxms (256 KiB here) and answers 1009. Sent to 20
    connections at once, the server's RSS may grow by little more than 20
    message limits, nowhere near the 20 GiB the bombs would inflate to."""
    srv = run_server("ws_deflate", "-maxms", "256")
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(co.compress(chunk) for _ in range(1024)) + co.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]
    assert len(bomb) < 2 << 20
    socks = [connect(srv) for _ in range(20)]
    try:
        before = rss_bytes(srv.proc.pid)
        for ws in socks:
            # the frame announces 1 MiB (under a 64-bit -maxms check it
            # would be refused from the header: this one is legal on the
            # wire, only its inflated size is not)
            ws.send_frame(wsraw.OP_BINARY, bomb[:200 * 1024], rsv=4)
        for ws in socks:
            ws.expect_close(1009, timeout=20)
        grown = rss_bytes(srv.proc.pid) - before
        assert grown < 40 << 20, f"RSS grew {grown >> 20} MiB for 20 bombs"
    finally:
        for ws in socks:
            ws.close_socket()
    wsraw.assert_echo_works(srv)


def test_idle_connections_hold_no_zlib_state(srv):
    """Connections that negotiated compression and exchanged compressed
    messages with client_no_context_takeover hold nothing afterwards: the
    inflaters they borrowed are back in the (small) pool, and our side
    keeps no compressor per connection."""
    offer = "permessage-deflate; client_no_context_takeover"
    socks = [connect(srv, offer=offer) for _ in range(40)]
    try:
        for ws in socks:
            ws.send_frame(wsraw.OP_TEXT, deflate(b"hello deflate " * 20), rsv=4)
        for ws in socks:
            assert recv_data(ws, Inflater())[1] == b"hello deflate " * 20
        s = stats(srv)
        assert s["inflaters"] <= 16, s  # the pool's size, not one per connection
    finally:
        for ws in socks:
            ws.close_socket()


def test_context_takeover_keeps_one_inflater_per_connection_until_close(srv):
    """With --ws-deflate-mem 64 a client keeps its context: one inflater per
    connection, within the cap (32 KiB window + zlib's ~7 KiB), freed with
    the connection."""
    before = stats(srv)
    base = before["inflaters"]
    socks = [connect(srv) for _ in range(30)]
    try:
        for ws in socks:
            ws.send_frame(wsraw.OP_TEXT, deflate(b"kept context " * 20), rsv=4)
            assert recv_data(ws, Inflater())[1] == b"kept context " * 20
        after = stats(srv)
        assert after["inflaters"] >= base + 30
        # the shared compressors (made once, at most one per window) aside
        per_conn = (after["zlib_bytes"] - before["zlib_bytes"] - 300_000) / 30
        assert per_conn <= 64 * 1024, f"{per_conn:.0f} bytes of zlib state per connection"
    finally:
        for ws in socks:
            ws.send_close(1000)
            ws.expect_close(1000)
    deadline = time.monotonic() + 10
    while stats(srv)["inflaters"] > base and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(srv)["inflaters"] <= base, "inflaters outlive their connections"


# -- the server owns Sec-WebSocket-Extensions ---------------------------------------

def test_app_naming_the_agreed_extension_gets_the_servers_parameters(srv):
    with connect(srv, "/ext?v=permessage-deflate") as ws:
        assert ws.response.header_values("Sec-WebSocket-Extensions") == \
            ["permessage-deflate; server_no_context_takeover"]


@pytest.mark.parametrize("offer", [None, "permessage-deflate"], ids=["not-agreed", "agreed"])
def test_app_naming_an_extension_not_agreed_is_refused(srv, offer):
    """An extension the server does not run would corrupt the stream: the
    upgrade fails (500), it is not sent."""
    srv.allow_tracebacks = True  # the app's error is logged with its traceback
    value = "permessage-deflate" if offer is None else "x-custom-extension"
    with connect(srv, f"/ext?v={value}", offer=offer, expect_status=None) as ws:
        assert ws.response.status == 500, ws.response
        assert ws.response.header("Sec-WebSocket-Extensions") is None


# -- fan-out: one compression per publish ------------------------------------------

def test_publish_to_many_compressed_subscribers_compresses_once(srv):
    """200 subscribers with compression (two window sizes among them) and
    20 without: each 1 KiB publish is deflated once per window size, not
    once per subscriber, and every subscriber inflates it correctly."""
    subs = []
    try:
        for i in range(220):
            offer = (None if i >= 200 else
                     "permessage-deflate; server_max_window_bits=10" if i % 2 else
                     "permessage-deflate")
            ws = connect(srv, "/sub", offer=offer)
            assert ws.recv_text() == "subscribed"
            subs.append(ws)
        before = stats(srv)["deflates"]
        reached = json.loads(srv.get("/publish?n=5&size=1024").body)["reached"]
        assert reached == 5 * 220
        calls = stats(srv)["deflates"] - before
        assert calls == 5 * 2, f"{calls} deflate calls for 5 publishes to 200 compressed subscribers"
        for i, ws in enumerate(subs):
            inflate = Inflater(10 if i % 2 else 15)
            for seq in range(5):
                op, data, compressed = recv_data(ws, inflate)
                assert compressed == (i < 200)
                assert json.loads(data)["seq"] == seq
    finally:
        for ws in subs:
            ws.close_socket()
