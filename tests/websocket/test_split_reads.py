"""Frame heads cut by read boundaries, at every possible offset.

Between reads the server keeps only an unfinished frame head (websocket.c:
input is parsed from one buffer shared by all connections; what is left of
a read is copied aside). This test makes each read end at a chosen offset
inside the next frame's head: it sends the stream up to that offset and
then waits for the echo of the message just completed. The echo proves the
server has read everything sent so far, so its next read starts exactly
there. Heads of every length form (2 + 4, 4 + 4 and 10 + 4 bytes with the
mask) are cut at each offset from 1 to the last byte, with pings and
fragmented messages in between.
"""

from __future__ import annotations

import pytest

from tests.websocket import wsraw
from tests.websocket.wsraw import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, build_frame


@pytest.fixture
def srv(run_server):
    return run_server("ws_echo")


def payload(n: int, seed: int) -> bytes:
    return bytes((seed * 31 + i * 7) & 0xFF for i in range(n))


def head_len(n: int) -> int:
    return 6 if n <= 125 else 8 if n <= 0xFFFF else 14


def plan():
    """(frames, echoes): messages of each length form, each followed by a
    cut at offset k of the next frame's head, k cycling through all."""
    sizes = [0, 5, 125, 126, 1000, 0xFFFF, 0x10000, 70000]
    frames = []
    seed = 0
    for size in sizes:
        for cut in range(1, head_len(size)):
            seed += 1
            data = payload(size, seed)
            if seed % 5 == 0:  # a ping first: its pong is skipped by recv_message
                frames.append((build_frame(OP_PING, b"p%d" % seed), None))
            if seed % 3 == 0 and size >= 2:  # fragmented: two frames, one message
                frames.append((build_frame(OP_BINARY, data[:1], fin=False), None))
                frames.append((build_frame(OP_CONT, data[1:]), (OP_BINARY, data, cut)))
            else:
                frames.append((build_frame(OP_BINARY, data), (OP_BINARY, data, cut)))
    frames.append((build_frame(OP_TEXT, b"last"), (OP_TEXT, b"last", 0)))
    return frames


def test_frame_heads_cut_at_every_offset_by_read_boundaries(srv):
    frames = plan()
    with wsraw.connect_srv(srv, timeout=20) as ws:
        for i, (frame, echo) in enumerate(frames):
            if echo is None:
                ws.send_raw(frame)
                continue
            op, data, cut = echo
            nxt = frames[i + 1][0] if i + 1 < len(frames) else b""
            cut = min(cut, len(nxt) - 1) if nxt else 0
            # this message, then the first `cut` bytes of the next head...
            ws.send_raw(frame + nxt[:cut])
            got_op, got = ws.recv_message(timeout=20)
            assert (got_op, len(got)) == (op, len(data)), f"message {i}"
            assert got == data, f"message {i}: payload differs"
            # ...and the rest of that head begins the next send
            if cut:
                frames[i + 1] = (nxt[cut:], frames[i + 1][1])
    srv.assert_alive()
