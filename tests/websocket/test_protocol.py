"""The WebSocket framing protocol (RFC 6455 sections 5 and 7), frame by
frame, over raw sockets.

Frames are built by tests.websocket.wsraw.build_frame (client frames,
masked unless a test says otherwise); server frames are parsed strictly by
RawWebSocket.recv_frame. Every protocol error must be answered with a Close
frame carrying the right status code (7.4.1), after which the server closes
the TCP connection (7.1.1) and goes on serving new connections.

App: tests/apps/ws_echo.py (every message echoed as it came).
"""

from __future__ import annotations

import os
import struct
import time

import pytest

from tests.websocket import wsraw
from tests.websocket.wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                                   build_frame, close_payload)

PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009


@pytest.fixture
def srv(run_server):
    return run_server("ws_echo")


def assert_fails_with(srv, data: bytes, code: int, warm_up: bytes = b"") -> None:
    """On a fresh connection, send the valid frame `warm_up` (if any) and
    await its echo, then send `data`: the server answers with a Close frame
    carrying `code`, then closes the TCP connection; a new connection still
    works.

    (Sending the valid frame and the bad one in one segment would race: the
    server fails the connection as soon as it parses the bad frame, and an
    app reply to the earlier message, written after the Close, is dropped
    as 5.5.1 requires.)"""
    with wsraw.connect_srv(srv) as ws:
        if warm_up:
            ws.send_raw(warm_up)
            ws.recv_message()
        ws.send_raw(data)
        ws.expect_close(code)
    wsraw.assert_echo_works(srv)


def text(payload: bytes, **kw) -> bytes:
    return build_frame(OP_TEXT, payload, **kw)


# -- 5.1 masking ------------------------------------------------------------------------

@pytest.mark.parametrize("opcode,payload", [(OP_TEXT, b"hello"), (OP_BINARY, b"\x00\x01"),
                                            (OP_PING, b"p"), (OP_CLOSE, close_payload(1000))],
                         ids=["text", "binary", "ping", "close"])
def test_unmasked_client_frame_is_1002(srv, opcode, payload):
    """5.1: "The server MUST close the connection upon receiving a frame
    that is not masked" -- with 1002 (7.4.1)."""
    assert_fails_with(srv, build_frame(opcode, payload, mask=False), PROTOCOL_ERROR)


def test_all_zero_mask_key_is_still_a_masked_frame(srv):
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(text(b"zero-mask", mask_key=b"\0\0\0\0"))
        assert ws.recv_message() == (OP_TEXT, b"zero-mask")


# -- 5.2 base framing -----------------------------------------------------------------------

@pytest.mark.parametrize("rsv", [4, 2, 1, 7], ids=["RSV1", "RSV2", "RSV3", "all"])
def test_reserved_bits_without_extension_are_1002(srv, rsv):
    """5.2: RSV1-3 MUST be 0 unless an extension defining them was
    negotiated (none is)."""
    assert_fails_with(srv, text(b"rsv", rsv=rsv), PROTOCOL_ERROR, warm_up=text(b"ok"))


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF],
                         ids=lambda op: f"op{op:#x}")
def test_reserved_opcodes_are_1002(srv, opcode):
    """5.2: opcodes 3-7 (data) and 0xB-0xF (control) are reserved; on
    receiving one the endpoint MUST Fail the WebSocket Connection."""
    assert_fails_with(srv, build_frame(opcode, b"x"), PROTOCOL_ERROR)


def test_64_bit_length_with_top_bit_set_is_1002(srv):
    """5.2: the most significant bit of a 64-bit payload length MUST be 0."""
    head = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 1 << 63) + b"\0\0\0\0"
    assert_fails_with(srv, head, PROTOCOL_ERROR)


@pytest.mark.parametrize("size,form", [(0, None), (125, None), (126, None), (65535, None),
                                       (65536, None), (200_000, None), (5, 16), (5, 64)],
                         ids=["0", "125", "126", "65535", "65536", "200000",
                              "5-in-16-bit-form", "5-in-64-bit-form"])
def test_payload_length_forms_round_trip(srv, size, form):
    """5.2: 7-bit, 16-bit and 64-bit lengths are read correctly (a
    non-minimal length from the client is tolerated), and the echo comes
    back in the minimal form (checked by recv_frame)."""
    payload = os.urandom(size)
    with wsraw.connect_srv(srv, timeout=10) as ws:
        ws.send_raw(build_frame(OP_BINARY, payload, length_form=form))
        f = ws.recv_frame()
        assert (f.fin, f.opcode, len(f.payload)) == (True, OP_BINARY, size)
        assert f.payload == payload


def test_frame_delivered_one_byte_at_a_time(srv):
    """A frame split across many TCP segments (even inside the header and
    the mask) is reassembled."""
    with wsraw.connect_srv(srv) as ws:
        ws.conn.send_slowly(text(b"slowly" * 30), pause=0.001)
        assert ws.recv_message() == (OP_TEXT, b"slowly" * 30)


def test_many_frames_in_one_segment(srv):
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(b"".join(text(b"m%d" % i) for i in range(50)))
        assert [ws.recv_message()[1] for _ in range(50)] == [b"m%d" % i for i in range(50)]


# -- 5.4 fragmentation -------------------------------------------------------------------------

def test_fragmented_message_is_reassembled(srv):
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(text(b"Hel", fin=False) + build_frame(OP_CONT, b"lo, ", fin=False)
                    + build_frame(OP_CONT, b"", fin=False) + build_frame(OP_CONT, b"world"))
        assert ws.recv_message() == (OP_TEXT, b"Hello, world")


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_fragmented_control_frame_is_1002(srv, opcode):
    """5.5: "All control frames ... MUST NOT be fragmented"."""
    payload = close_payload(1000) if opcode == OP_CLOSE else b"ctl"
    assert_fails_with(srv, build_frame(opcode, payload, fin=False), PROTOCOL_ERROR)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_control_frame_with_126_byte_payload_is_1002(srv, opcode):
    """5.5: "All control frames MUST have a payload length of 125 bytes or
    less"."""
    payload = close_payload(1000, b"r" * 124) if opcode == OP_CLOSE else b"p" * 126
    assert_fails_with(srv, build_frame(opcode, payload), PROTOCOL_ERROR)


def test_continuation_without_a_started_message_is_1002(srv):
    """5.4: a continuation frame only continues a fragmented message."""
    assert_fails_with(srv, build_frame(OP_CONT, b"orphan"), PROTOCOL_ERROR)


def test_continuation_after_a_finished_message_is_1002(srv):
    assert_fails_with(srv, build_frame(OP_CONT, b"late"), PROTOCOL_ERROR,
                      warm_up=text(b"done"))


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_new_data_frame_inside_a_fragmented_message_is_1002(srv, second):
    """5.4: fragments of one message must not be interleaved with another
    data message."""
    assert_fails_with(srv, text(b"part", fin=False) + build_frame(second, b"intruder"),
                      PROTOCOL_ERROR, warm_up=text(b"first"))


def test_ping_between_fragments_is_answered_and_the_message_completes(srv):
    """5.4: control frames MAY be injected in the middle of a fragmented
    message; the pong comes at once, the message stays whole."""
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(text(b"Hel", fin=False) + build_frame(OP_PING, b"mid"))
        pong = ws.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"mid")
        ws.send_raw(build_frame(OP_PONG, b"unsolicited", fin=True)
                    + build_frame(OP_CONT, b"lo"))
        assert ws.recv_message() == (OP_TEXT, b"Hello")


# -- 8.1 UTF-8 in text messages ----------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    b"\xff",                 # never valid
    b"abc\xc0\xaf",          # overlong '/'
    b"\xed\xa0\x80",         # UTF-16 surrogate U+D800
    b"\xf4\x90\x80\x80",     # above U+10FFFF
    b"\x80",                 # lone continuation byte
    b"ok\xce",               # ends inside a character
], ids=["ff", "overlong", "surrogate", "above-10ffff", "lone-continuation", "truncated"])
def test_invalid_utf8_text_is_1007(srv, payload):
    """8.1: a text message that is not valid UTF-8 fails the connection
    with 1007."""
    assert_fails_with(srv, text(payload), INVALID_DATA)


def test_invalid_utf8_across_fragments_is_1007(srv):
    """The first fragment ends in a lead byte; the next does not continue it."""
    assert_fails_with(srv, text(b"ab\xce", fin=False) + build_frame(OP_CONT, b"(z"),
                      INVALID_DATA)


def test_text_ending_inside_a_character_across_fragments_is_1007(srv):
    assert_fails_with(srv, text(b"a", fin=False) + build_frame(OP_CONT, b"\xe2\x82"),
                      INVALID_DATA)


@pytest.mark.parametrize("char", ["\u03ba", "\u20ac", "\U0001F600"], ids=["2-byte", "3-byte",
                                                                      "4-byte"])
def test_multibyte_character_split_across_fragments_is_accepted(srv, char):
    """Validity is a property of the whole message: a character may be
    split over fragments, one byte per frame."""
    raw = ("<" + char + ">").encode("utf-8")
    frames = [text(raw[:1], fin=False)]
    frames += [build_frame(OP_CONT, raw[i:i + 1], fin=False) for i in range(1, len(raw) - 1)]
    frames.append(build_frame(OP_CONT, raw[-1:]))
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(b"".join(frames))
        assert ws.recv_message() == (OP_TEXT, raw)


def test_binary_message_is_not_checked_for_utf8(srv):
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(build_frame(OP_BINARY, b"\xff\xfe\xed\xa0\x80"))
        assert ws.recv_message() == (OP_BINARY, b"\xff\xfe\xed\xa0\x80")


def test_empty_text_message_is_valid(srv):
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(text(b""))
        assert ws.recv_message() == (OP_TEXT, b"")


# -- 7.4.1 1009: message too big (-maxms) ------------------------------------------------------

@pytest.fixture
def small_srv(run_server):
    return run_server("ws_echo", "-maxms", "1")  # 1 KiB


def test_message_at_the_limit_is_accepted(small_srv):
    with wsraw.connect_srv(small_srv) as ws:
        ws.send_raw(build_frame(OP_BINARY, b"x" * 1024))
        assert ws.recv_message() == (OP_BINARY, b"x" * 1024)


def test_message_over_the_limit_is_1009(small_srv):
    assert_fails_with(small_srv, build_frame(OP_BINARY, b"x" * 1025), MESSAGE_TOO_BIG)


def test_fragmented_message_over_the_limit_is_1009(small_srv):
    """The limit is on the message, not the frame: 3 fragments of 400."""
    frames = (build_frame(OP_TEXT, b"a" * 400, fin=False)
              + build_frame(OP_CONT, b"b" * 400, fin=False) + build_frame(OP_CONT, b"c" * 400))
    assert_fails_with(small_srv, frames, MESSAGE_TOO_BIG)


def test_oversized_frame_is_refused_from_its_header(small_srv):
    """The header alone announces 1 GiB: the server refuses at once rather
    than wait for (or buffer) the payload."""
    head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 30) + os.urandom(4)
    assert_fails_with(small_srv, head, MESSAGE_TOO_BIG)


# -- 5.5.2 / 5.5.3 ping and pong -----------------------------------------------------------------

@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125))], ids=["empty", "text",
                                                                           "125-bytes"])
def test_ping_is_answered_with_a_pong_carrying_the_same_payload(srv, payload):
    """5.5.2/5.5.3: "A Pong frame sent in response to a Ping frame must have
    identical Application data"."""
    with wsraw.connect_srv(srv) as ws:
        ws.send_frame(OP_PING, payload)
        f = ws.recv_frame()
        assert (f.fin, f.opcode, f.payload) == (True, OP_PONG, payload)


def test_unsolicited_pong_is_ignored(srv):
    """5.5.3: a Pong may be sent unsolicited; no response is expected."""
    with wsraw.connect_srv(srv) as ws:
        ws.send_frame(OP_PONG, b"heartbeat")
        ws.send_text("after-pong")
        assert ws.recv_frame() == wsraw.Frame(True, 0, OP_TEXT, b"after-pong")


# -- 5.5.1 / 7 closing ------------------------------------------------------------------------

@pytest.mark.parametrize("code,reason", [(1000, b""), (1001, b"going"), (3000, b""),
                                         (4000, b"custom"), (4999, "\u00e9t\u00e9".encode())],
                         ids=["1000", "1001", "3000", "4000", "4999-utf8-reason"])
def test_close_handshake_echoes_the_peers_code(srv, code, reason):
    """5.5.1: the endpoint answers a Close with a Close, "typically echoing
    the status code it received"; then the server closes TCP (7.1.1)."""
    with wsraw.connect_srv(srv) as ws:
        ws.send_close(code, reason)
        ws.expect_close(code)


def test_close_without_payload_is_answered_with_a_close(srv):
    with wsraw.connect_srv(srv) as ws:
        ws.send_close(None)
        f = ws.recv_close()
        assert f.close_code in (None, 1000), f
        ws.expect_tcp_close()


def test_no_data_is_echoed_after_the_peers_close(srv):
    """5.5.1: after sending a Close, the peer sends no more data; what it
    sends anyway is not processed (no echo before the Close reply)."""
    with wsraw.connect_srv(srv) as ws:
        ws.send_raw(build_frame(OP_CLOSE, close_payload(1000)) + text(b"too-late"))
        ws.expect_close(1000)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_with_invalid_code_is_1002(srv, code):
    """7.4: 1004 is reserved, 1005/1006/1015 MUST NOT be sent in a Close
    frame, 0-999 are unused, 1016-2999 are reserved, above 4999 undefined."""
    assert_fails_with(srv, build_frame(OP_CLOSE, struct.pack("!H", code)), PROTOCOL_ERROR)


def test_close_with_one_byte_payload_is_1002(srv):
    """5.5.1: a Close body, if present, starts with a 2-byte status code."""
    assert_fails_with(srv, build_frame(OP_CLOSE, b"\x03"), PROTOCOL_ERROR)


def test_close_with_invalid_utf8_reason_is_1007(srv):
    """5.5.1: the reason is UTF-8; 8.1 applies."""
    assert_fails_with(srv, build_frame(OP_CLOSE, close_payload(1000, b"\xff\xfe")), INVALID_DATA)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_server_releases_the_socket_after_its_close_even_if_the_peer_keeps_it_open(srv):
    """7.1.1: after the closing handshake the server closes the TCP
    connection. It half-closes at once (the peer sees EOF) and may linger
    briefly to drain input, but a peer that then neither sends nor closes
    must not keep the server's socket (a file descriptor) forever: the
    reactor's linger bound is 2 s, so within 6 s the server's open fd count
    is back to where it was."""
    wsraw.assert_echo_works(srv)
    pid = srv.proc.pid
    baseline = open_fds(pid)
    peers = []
    try:
        for _ in range(3):
            ws = wsraw.connect_srv(srv)
            ws.send_close(1000)
            ws.expect_close(1000)  # Close echoed and FIN seen; we keep our socket
            peers.append(ws)
        deadline = time.monotonic() + 6
        while open_fds(pid) > baseline and time.monotonic() < deadline:
            time.sleep(0.1)  # polling /proc: there is no event to wait on
        held = open_fds(pid) - baseline
        assert held <= 0, (f"{held} server sockets still open 6 s after their closing "
                           f"handshakes, held only by peers that did not close")
    finally:
        for ws in peers:
            ws.close_socket()


# -- keep-alive: ping on silence, close when silence persists (-ping) ----------------------------

def test_silent_peer_is_pinged_then_closed_with_1001(run_server):
    """-ping 1: silence for one interval -> a Ping; still silent at the next
    interval -> Close 1001, then the TCP connection is closed."""
    srv = run_server("ws_echo", "-ping", "1")
    with wsraw.connect_srv(srv) as ws:
        start = time.monotonic()
        f = ws.recv_frame(timeout=5)
        t_ping = time.monotonic() - start
        assert f.opcode == OP_PING, f
        f = ws.recv_frame(timeout=5)
        t_close = time.monotonic() - start
        assert f.opcode == OP_CLOSE and f.close_code == 1001, f
        ws.expect_tcp_close()
    assert 0.9 <= t_ping < 5, f"ping after {t_ping:.2f}s with -ping 1"
    assert 1.8 <= t_close < 5, f"close after {t_close:.2f}s with -ping 1"
    assert t_close - t_ping >= 0.8, f"closed {t_close - t_ping:.2f}s after the ping"
    wsraw.assert_echo_works(srv)


def test_peer_that_answers_pings_stays_open(run_server):
    """A peer that answers each ping is not silent: it survives several
    intervals and still gets its echo."""
    srv = run_server("ws_echo", "-ping", "1")
    with wsraw.connect_srv(srv) as ws:
        start = time.monotonic()
        pings = 0
        while pings < 3:
            f = ws.recv_frame(timeout=5)
            assert f.opcode == OP_PING, f"expected a ping, got {f!r}"
            ws.send_frame(OP_PONG, f.payload)
            pings += 1
        assert time.monotonic() - start >= 2.5
        ws.send_text("alive")
        assert ws.recv_message() == (OP_TEXT, b"alive")


def test_peer_that_keeps_sending_messages_is_not_pinged_for_silence(run_server):
    srv = run_server("ws_echo", "-ping", "1")
    with wsraw.connect_srv(srv) as ws:
        deadline = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < deadline:
            ws.send_text(f"m{n}")
            f = ws.recv_frame(timeout=5)
            assert (f.opcode, f.payload) == (OP_TEXT, f"m{n}".encode()), \
                f"a busy peer got {f!r} instead of its echo"
            n += 1
            ws.conn.readable(0.2)  # pace: ~5 messages a second (returns at once if data)
        assert n >= 5
