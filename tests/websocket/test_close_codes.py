"""Close codes both ways (RFC 6455 5.5.1, 7.4), against
tests/apps/ws_deflate.py:

- the application closes with `client.close(code, reason)`: the code must
  be one an application may send, the reason at most 123 bytes of UTF-8;
- the peer's code and reason are `client.close_code` / `close_reason` in
  the one-argument on_close (None when no Close frame came), and the
  server's answering Close echoes both.
"""

from __future__ import annotations

import re

import pytest

from tests.websocket import wsraw


def wait_closed(srv, text: str) -> None:
    """on_close logged exactly `text` (CODE|REASON) for a connection."""
    srv.wait_for_stderr(re.compile(re.escape(f"ws-log close {text}") + r"\s*$"))


@pytest.fixture
def srv(run_server):
    return run_server("ws_deflate")


@pytest.mark.parametrize("code,reason", [
    (1000, ""), (1001, "going away"), (1008, "policy"), (1011, "oops"),
    (3000, "registered"), (4999, "private"), (4000, "é" * 61),  # 122 bytes
    (4001, "x" * 123),
])
def test_app_close_sends_code_and_reason(srv, code, reason):
    with wsraw.connect_srv(srv, "/close") as ws:
        ws.send_text(f"{code} {reason}")
        f = ws.recv_close()
        assert (f.close_code, f.close_reason) == (code, reason.encode())
        ws.send_close(code)
        ws.expect_tcp_close()


@pytest.mark.parametrize("code,reason,why", [
    (999, "", "close code"), (1002, "", "close code"), (1004, "", "close code"),
    (1005, "", "close code"), (1006, "", "close code"), (1015, "", "close code"),
    (2999, "", "close code"), (5000, "", "close code"), (0, "", "close code"),
    (1000, "x" * 124, "123 bytes"), (1000, "é" * 62, "123 bytes"),
])
def test_app_close_refuses_what_a_close_frame_cannot_carry(srv, code, reason, why):
    with wsraw.connect_srv(srv, "/close") as ws:
        ws.send_text(f"{code} {reason}")
        answer = ws.recv_text()
        assert answer.startswith("ValueError: ") and why in answer, answer
        ws.send_text("still open")  # the connection was not closed
        assert ws.recv_text().startswith("ValueError")


@pytest.mark.parametrize("code,reason", [(1000, b""), (4001, b"bye now"), (1001, "é".encode() * 20)])
def test_peer_close_code_and_reason_reach_on_close_and_are_echoed(srv, code, reason):
    with wsraw.connect_srv(srv, "/") as ws:
        ws.send_close(code, reason)
        f = ws.recv_close()
        assert (f.close_code, f.close_reason) == (code, reason)  # echoed (5.5.1)
        ws.expect_tcp_close()
    wait_closed(srv, f"{code}|{reason.decode()}")


def test_peer_close_without_code_is_1005_and_echoed_empty(srv):
    with wsraw.connect_srv(srv, "/") as ws:
        ws.send_frame(wsraw.OP_CLOSE, b"")
        f = ws.recv_close()
        assert f.payload == b""
    wait_closed(srv, "1005|")


def test_no_close_frame_leaves_close_code_none(srv):
    with wsraw.connect_srv(srv, "/") as ws:
        ws.send_text("hi")
        assert ws.recv_text() == "hi"
        ws.reset()
    wait_closed(srv, "None|None")


def test_protocol_error_is_not_a_peer_close(srv):
    """Our own 1002 is not the peer's code: close_code stays None."""
    with wsraw.connect_srv(srv, "/") as ws:
        ws.send_frame(wsraw.OP_TEXT, b"x", rsv=2)
        ws.expect_close(1002)
    wait_closed(srv, "None|None")


def test_check_close_takes_int_enums_not_bools():
    """client.close's validation, without a server: an IntEnum code is a
    code, True is not."""
    import enum

    from iodine_py.client import check_close

    class Code(enum.IntEnum):
        PRIVATE = 4000

    assert check_close(Code.PRIVATE, "ok") == b"ok"
    assert check_close(1000, "é") == "é".encode()
    for bad in (True, 1000.0, "1000", None):
        with pytest.raises(ValueError):
            check_close(bad, "")
    with pytest.raises(ValueError):
        check_close(1000, "\ud800")  # a lone surrogate is not UTF-8
    with pytest.raises(ValueError):
        check_close(1000, b"bytes")
