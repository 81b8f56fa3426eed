"""WebSocket messages reach on_message through the C event path
(iodine_py/_fast.c's FAST_WS_MESSAGE tuple: the message made into str or
bytes in C, its buffer freed there). What that path must keep, with the app
on the loop thread (-t 1) and on a pool (-t 4):

- every message arrives once, in the order the peer sent it, also when a
  burst of them arrives in one read (several events taken in one call);
- a text message is a str (multi-byte UTF-8 intact), a binary one bytes
  (bytes that are not UTF-8 intact), empty ones included;
- the echo goes out as the same frame type.
"""
from __future__ import annotations

import pytest

from tests.websocket.wsraw import OP_BINARY, OP_TEXT, build_frame, connect_srv

N = 400


def message(i: int) -> tuple[int, bytes]:
    if i % 5 == 4:  # empty ones, both kinds
        return (OP_TEXT, b"") if i % 10 == 4 else (OP_BINARY, b"")
    if i % 2:
        return OP_TEXT, f"{i} é✓𝄞 {'x' * (i % 37)}".encode("utf-8")
    return OP_BINARY, i.to_bytes(4, "big") + b"\xff\xfe\x80" * (i % 11)


@pytest.mark.parametrize("threads", ["1", "4"])
def test_messages_keep_order_type_and_bytes(run_server, threads):
    srv = run_server("ws_echo", "-t", threads)
    with connect_srv(srv) as ws:
        sent = [message(i) for i in range(N)]
        # one write: the server reads a burst and takes many events per call
        ws.send_raw(b"".join(build_frame(op, data) for op, data in sent))
        for i, (op, data) in enumerate(sent):
            got_op, got = ws.recv_message(10.0)
            assert (got_op, got) == (op, data), f"message {i} of {N}"
