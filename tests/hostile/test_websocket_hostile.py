"""Hostile WebSocket peers: absurd frame lengths, a compression extension
forced on us, ping floods.

(tests/websocket/test_protocol.py covers the protocol rules one frame at a
time, including a 64-bit length with only the top bit set; these push the
same edges the way an attacker would, with memory measured.)
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from tests.hostile.common import KiB, MiB, RssWatch, close_all
from tests.websocket import wsraw
from tests.websocket.wsraw import OP_BINARY, OP_PING, OP_PONG, OP_TEXT, build_frame

PROTOCOL_ERROR = 1002
MESSAGE_TOO_BIG = 1009


def huge_head(opcode: int, length: int, fin: bool = True) -> bytes:
    """A masked frame header announcing `length` bytes (64-bit form) and no
    payload behind it."""
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | 127]) + struct.pack("!Q", length) \
        + b"\x11\x22\x33\x44"


# Announcing a length allocates nothing: a message buffer grows only as
# payload arrives. 100 connections announcing 2^63-1 each, or 256 KiB each
# with one byte sent, stay within a few MiB (an allocation up front would
# be 25 MiB for the second case, and impossible for the first).
ANNOUNCE_RSS_CEILING = 12 * MiB


@pytest.mark.parametrize("length,code", [
    pytest.param(2 ** 63 - 1, MESSAGE_TOO_BIG, id="2^63-1"),
    pytest.param(2 ** 64 - 1, PROTOCOL_ERROR, id="2^64-1"),
    pytest.param(2 ** 63, PROTOCOL_ERROR, id="2^63"),
])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_absurd_frame_length_is_refused_from_the_header(run_server, length, code, opcode):
    """The largest lengths the 64-bit form can carry: 2^63-1 is a legal
    header over -maxms (1009, RFC 6455 7.4.1); with the top bit set it is
    illegal (1002, 5.2). Refused from the header alone, on 100 connections
    at once, without the server allocating for them."""
    srv = run_server("hostile_app")
    rss = RssWatch(srv)
    peers = [wsraw.connect_srv(srv) for _ in range(100)]
    try:
        for ws in peers:
            ws.send_raw(huge_head(opcode, length))
        for ws in peers:
            ws.expect_close(code)
            rss.sample()
        rss.assert_growth_under(ANNOUNCE_RSS_CEILING, "after 100 absurd lengths ")
    finally:
        close_all(ws.conn for ws in peers)
    wsraw.assert_echo_works(srv)
    srv.assert_alive()


@pytest.mark.parametrize("length", [2 ** 63 - 1, 126], ids=["2^63-1", "126"])
def test_control_frame_announcing_a_long_payload_is_1002(run_server, length):
    """5.5: control frames carry at most 125 bytes; a ping announcing 2^63-1
    is a protocol error from its header."""
    srv = run_server("hostile_app")
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(huge_head(OP_PING, length))
        ws.expect_close(PROTOCOL_ERROR)
    srv.assert_alive()


def test_announced_messages_that_never_arrive_cost_nothing_up_front(run_server):
    """100 connections each announce a 256 KiB frame (exactly -maxms), send
    one byte, and go silent: nothing is allocated for the announced size;
    the keep-alive pings (-ping 1) find them silent and close them (1001)."""
    srv = run_server("hostile_app", "-ping", "1")
    rss = RssWatch(srv)
    peers = [wsraw.connect_srv(srv) for _ in range(100)]
    try:
        for ws in peers:
            ws.send_raw(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 256 * KiB)
                        + b"\x01\x02\x03\x04" + b"z")
        time.sleep(0.5)  # let them all be read (pacing, not synchronisation)
        rss.assert_growth_under(ANNOUNCE_RSS_CEILING, "with 100 stalled 256 KiB frames ")
        for ws in peers:
            f = ws.recv_frame(timeout=5)
            if f.opcode == OP_PING:
                f = ws.recv_frame(timeout=5)
            assert f.opcode == wsraw.OP_CLOSE and f.close_code == 1001, f
            ws.expect_tcp_close()
    finally:
        close_all(ws.conn for ws in peers)
    srv.assert_alive()


def test_permessage_deflate_offer_is_accepted_and_rfc_example_inflates(run_server):
    """RFC 7692: a client offering permessage-deflate (first in its list)
    gets it, and a frame compressed as in RFC 7692 7.2.3.1's "Hello" example
    (RSV1, f2 48 cd c9 c9 07 00) is inflated and echoed."""
    srv = run_server("hostile_app")
    offer = [("Sec-WebSocket-Extensions",
              "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame")]
    with wsraw.connect_srv(srv, extra_headers=offer) as ws:
        ext = ws.response.header("Sec-WebSocket-Extensions")
        assert ext is not None and ext.startswith("permessage-deflate;"), ws.response
        assert "x-webkit-deflate-frame" not in ext  # the other offer is declined
        ws.send_raw(build_frame(OP_TEXT, bytes.fromhex("f248cdc9c90700"), rsv=4))
        f = ws.recv_frame()
        assert (f.opcode, f.rsv, f.payload) == (OP_TEXT, 0, b"Hello")  # too small to compress


@pytest.mark.parametrize("flags,offer", [((), None), (("--ws-deflate", "off"), "permessage-deflate")],
                         ids=["not-offered", "server-off"])
def test_compressed_frame_without_agreed_deflate_is_1002(run_server, flags, offer):
    """Without permessage-deflate agreed (the client did not offer it, or
    the server refuses it), RSV1 is a protocol error (RFC 6455 5.2)."""
    srv = run_server("hostile_app", *flags)
    extra = [("Sec-WebSocket-Extensions", offer)] if offer else []
    with wsraw.connect_srv(srv, extra_headers=extra) as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") is None, ws.response
        ws.send_text("plain")
        assert ws.recv_text() == "plain"
        ws.send_raw(build_frame(OP_TEXT, bytes.fromhex("f248cdc9c90700"), rsv=4))
        ws.expect_close(PROTOCOL_ERROR)
    srv.assert_alive()


# --- ping floods ---------------------------------------------------------

PING = build_frame(OP_PING, b"p" * 125)
# At most this many pings (131 bytes each on the wire, 256 MiB in all): a
# bound for the test should the server never cut the flood.
PING_FLOOD_MAX = 2_000_000
PING_FLOOD_PENDING_KIB = 1024
# What the flood may cost: the unread pongs are output like any other and
# count against --max-pending (1 MiB here); over it the connection is cut.
# Each queued pong is a small allocation of its own, so the real cost is
# a few times the 1 MiB of frame bytes. 64 MiB is far above that and far
# below the gigabytes an unbounded queue reaches (9 GiB in 30 s when this
# test was written, before the fix).
PING_FLOOD_RSS_CEILING = 64 * MiB


def test_ping_flood_without_reading_pongs_is_cut_with_bounded_memory(run_server):
    """A client sends pings as fast as it can and never reads: the server
    answers each with a pong (RFC 6455 5.5.2) until the unread pongs pass
    --max-pending, then drops the connection, as it does for any peer that
    stopped reading. Memory stays bounded; other clients are unaffected."""
    srv = run_server("hostile_app", "--max-pending", str(PING_FLOOD_PENDING_KIB))
    rss = RssWatch(srv)
    ws = wsraw.connect_srv(srv, sock_opts=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    sent = 0
    stop = threading.Event()
    err = []

    def flood():
        nonlocal sent
        block = PING * 1000
        s = ws.conn.sock.dup()
        s.settimeout(10)
        try:
            while sent < PING_FLOOD_MAX and not stop.is_set():
                s.sendall(block)
                sent += 1000
        except OSError as e:  # the server cut us off
            err.append(e)
        finally:
            s.close()

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 60
        while t.is_alive() and time.monotonic() < deadline:
            rss.sample()
            time.sleep(0.05)
        stop.set()
        t.join(15)
        rss.assert_growth_under(PING_FLOOD_RSS_CEILING, f"after {sent} pings ")
        assert sent < PING_FLOOD_MAX, \
            f"all {PING_FLOOD_MAX} pings were taken without the connection being cut"
        assert err, "the flood neither finished nor was cut"
        print(f"[ping-flood] cut after {sent} pings sent: {err[0]!r}")
    finally:
        ws.close_socket()
    wsraw.assert_echo_works(srv)
    srv.assert_alive()


def test_ping_flood_from_a_reading_client_gets_every_pong_in_order(run_server):
    """A flood from a client that does read: each of 20000 pings gets its
    own pong, same payload, in order (the server does not coalesce), and
    the connection stays usable."""
    srv = run_server("hostile_app")
    count = 20000
    rss = RssWatch(srv)
    with wsraw.connect_srv(srv, timeout=20) as ws:
        frames = b"".join(build_frame(OP_PING, b"%d" % i) for i in range(count))
        sender = threading.Thread(target=ws.conn.sock.sendall, args=(frames,), daemon=True)
        sender.start()
        for i in range(count):
            f = ws.recv_frame(timeout=20)
            assert f.opcode == OP_PONG and f.payload == b"%d" % i, (i, f)
        sender.join(10)
        ws.send_text("after")
        assert ws.recv_text() == "after"
        rss.assert_growth_under(ANNOUNCE_RSS_CEILING, "reading ping flood ")
    srv.assert_alive()
