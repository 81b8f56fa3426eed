"""A finish hook that means finished (issue 18, point 4).

PEP 3333's close() on the response iterable, and Iodine.on_request's
finish(environ), run once the response's last byte has been written to the
socket (or the connection died), not when it was queued. A slow reader
shows the order: the app (tests/apps/finished.py) says "queued TAG" when
its last chunk is handed over; the client then stops reading, so the end of
the response must wait in the server's queue; close must not have run
while it waits, and must run once the client has read everything."""
from __future__ import annotations

import itertools
import socket
import time

import pytest

from tests.server import ServerProcess, base_env, iodine_argv

SIZE = 32 * 1024 * 1024
HOLD = 1.5  # seconds the client reads nothing after "queued"
_tags = itertools.count(1)


@pytest.fixture(params=[1, 4], ids=["t1", "t4"], scope="module")
def server(request):
    srv = ServerProcess(iodine_argv("finished", "-t", str(request.param)),
                        env=base_env({"FINISH_HOOKS": "1"}))
    srv.wait_listening()
    yield srv
    srv.stop()
    assert srv.problems() == []


def _open(srv: ServerProcess, path: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect((srv.host, srv.port))
    s.settimeout(30)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    return s


def _seen(srv: ServerProcess, line: str) -> bool:
    return any(x.strip() == line for x in srv.stderr_lines)


def _read_until_queued(srv: ServerProcess, s: socket.socket, tag: str) -> int:
    """Read slowly until the app says its last chunk was queued."""
    got = 0
    deadline = time.monotonic() + 60
    while not _seen(srv, f"queued {tag}"):
        assert time.monotonic() < deadline, "the app never queued its last chunk"
        data = s.recv(65536)
        assert data, "the server closed early"
        got += len(data)
        time.sleep(0.005)  # a slow reader, not synchronisation
    return got


def _hold_then_drain(srv: ServerProcess, s: socket.socket, tag: str, got: int,
                     done_line: str) -> None:
    # the client reads nothing: the response's end cannot leave, so the
    # finish line must not appear (before the fix it came right after
    # "queued", as the last chunk was queued)
    until = time.monotonic() + HOLD
    while time.monotonic() < until:
        assert not _seen(srv, done_line), f"{done_line!r} ran while the response was still queued"
        time.sleep(0.05)
    while True:
        data = s.recv(1 << 20)
        if not data:
            break
        got += len(data)
    s.close()
    assert got > SIZE  # the head and framing on top of the body
    srv.wait_for_stderr(done_line, timeout=20)


def test_close_after_last_byte_left(server):
    tag = f"big{next(_tags)}"
    s = _open(server, f"/big?tag={tag}&size={SIZE}")
    got = _read_until_queued(server, s, tag)
    assert got < SIZE
    _hold_then_drain(server, s, tag, got, f"close {tag}")
    server.wait_for_stderr(f"finish {tag}", timeout=20)
    lines = [x.strip() for x in server.stderr_lines]
    order = [lines.index(f"{w} {tag}") for w in ("start", "queued", "close", "finish")]
    assert order == sorted(order), lines


def test_file_wrapper_close_after_sent(server):
    tag = f"file{next(_tags)}"
    s = _open(server, f"/file?tag={tag}&size={SIZE}")
    server.wait_for_stderr(f"queued {tag}", timeout=20)
    _hold_then_drain(server, s, tag, 0, f"close {tag}")
    server.wait_for_stderr(f"finish {tag}", timeout=20)


def test_xsendfile_finish_after_sent(server):
    tag = f"xs{next(_tags)}"
    s = _open(server, f"/xsend?tag={tag}&size={SIZE}")
    server.wait_for_stderr(f"queued {tag}", timeout=20)
    _hold_then_drain(server, s, tag, 0, f"finish {tag}")


def test_early_disconnect_still_closes(server):
    tag = f"gone{next(_tags)}"
    s = _open(server, f"/big?tag={tag}&size={SIZE}")
    _read_until_queued(server, s, tag)
    assert not _seen(server, f"close {tag}")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # unread data: a reset
    server.wait_for_stderr(f"close {tag}", timeout=20)
    server.wait_for_stderr(f"finish {tag}", timeout=20)
    assert server.get("/plain?tag=after").status == 200


def test_keepalive_pipelined_hooks_in_order(server):
    """Two pipelined requests on one connection: each one's close and
    finish run once, in request order, and plain answers still work."""
    s = socket.create_connection((server.host, server.port), timeout=30)
    a, b = f"pa{next(_tags)}", f"pb{next(_tags)}"
    s.sendall((f"GET /big?tag={a}&size=200000 HTTP/1.1\r\nHost: t\r\n\r\n"
               f"GET /plain?tag={b} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").encode())
    data = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.count(b"HTTP/1.1 200") == 2
    server.wait_for_stderr(f"finish {b}", timeout=20)
    lines = [x.strip() for x in server.stderr_lines]
    assert lines.count(f"close {a}") == 1 and lines.count(f"finish {a}") == 1
    assert lines.index(f"finish {a}") < lines.index(f"finish {b}")
