"""Request bodies as they arrive (issue 18, point 3).

With -t N (N > 1) the app is called once the head is read and
wsgi.input.read(n) returns as soon as n bytes have arrived (read1: whatever
has); the server stops reading from the socket while the app does not read,
so a large upload read slowly costs a window, not the body. The limits keep
working: --max-body (413 before the app for a Content-Length, 413 and close
for chunked when nothing was sent yet), --min-body-rate (408), Expect:
100-continue (sent at the app's first read), and pipelined requests are
answered in order. With -t 1 the app runs on the loop, which must never
wait for a body: it is collected first, as before."""
from __future__ import annotations

import socket
import time

import pytest

from tests.hostile.common import proc_status_kib



def _rss_kib(pid: int) -> int:
    return proc_status_kib(pid, "VmRSS")


def _read_all(s: socket.socket, deadline: float = 30) -> bytes:
    s.settimeout(deadline)
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            return out
        out += data


def test_app_called_before_the_body_arrives(run_server):
    """Half the body, a pause, the other half: the app has its first bytes
    during the pause (before the fix it was called after the whole body)."""
    srv = run_server("streamed_body", "-t", "4")
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
    srv.wait_for_stderr("called", timeout=10)  # head only: the app runs
    s.sendall(b"hello")
    time.sleep(1.0)  # the client's pace: the second half comes 1 s later
    s.sendall(b"world")
    data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 200"), data
    got, took = data.split(b"\r\n\r\n", 1)[1].split()
    assert got == b"hello"
    assert float(took) < 0.9, "read1 waited for the rest of the body"


def test_t1_collects_the_body_first(run_server):
    """-t 1: the app runs on the loop, so the body is collected first."""
    srv = run_server("streamed_body", "-t", "1")
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
              b"hello")
    time.sleep(0.5)  # the client's pace
    assert not any("called" in x for x in srv.stderr_lines)
    s.sendall(b"world")
    assert _read_all(s).split(b"\r\n\r\n", 1)[1].startswith(b"hello")


@pytest.mark.parametrize("chunked,total", [(False, 1 << 30), (True, 256 << 20)],
                         ids=["length-1GiB", "chunked-256MiB"])
def test_large_upload_read_slowly_keeps_rss_flat(run_server, chunked, total):
    """1 GiB (chunked: 256 MiB) uploaded to an app that reads 256 KiB every
    2 ms: the client can only send as fast as the app reads (the server
    stops reading), and the server's RSS stays flat."""
    srv = run_server("streamed_body", "-t", "4", "--max-body", "1024")  # MiB
    assert srv.get("/noread").status == 200
    base = _rss_kib(srv.proc.pid)
    s = socket.create_connection((srv.host, srv.port), timeout=60)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % total
    s.sendall(b"POST /slow?ms=2&block=262144 HTTP/1.1\r\nHost: x\r\n" + framing +
              b"\r\nConnection: close\r\n\r\n")
    piece = b"u" * (1 << 20)
    if chunked:
        piece = b"%x\r\n" % len(piece) + piece + b"\r\n"
    peak = base
    start = time.monotonic()
    sent = 0
    app_read_at_half = None
    for i in range(total >> 20):
        s.sendall(piece)
        sent += 1 << 20
        if i % 8 == 0:
            peak = max(peak, _rss_kib(srv.proc.pid))
        if sent == total // 2:
            reads = [int(x.split()[1]) for x in srv.stderr_lines if x.startswith("read ")]
            app_read_at_half = max(reads, default=0)
        assert time.monotonic() - start < 120, "upload took over 2 minutes"
    if chunked:
        s.sendall(b"0\r\n\r\n")
    data = _read_all(s, 120)
    assert data.split(b"\r\n\r\n", 1)[1] == str(total).encode()
    growth_mib = (peak - base) / 1024
    assert growth_mib < 48, f"RSS grew {growth_mib:.0f} MiB for a {total >> 20} MiB upload"
    # backpressure: while the client had sent half, the app had read all
    # but what the buffers between hold (kernel buffers on both sides, our
    # window and read buffer), not nothing
    assert app_read_at_half is not None and app_read_at_half >= total // 2 - (40 << 20), (
        app_read_at_half, total // 2)


def test_max_body_by_length_is_413_before_the_app(run_server):
    srv = run_server("streamed_body", "-t", "4", "--max-body", "1")  # MiB
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
    assert _read_all(s).startswith(b"HTTP/1.1 413")
    assert not any("called" in x for x in srv.stderr_lines)


def test_max_body_chunked_is_413_and_close(run_server):
    srv = run_server("streamed_body", "-t", "4", "--max-body", "1")  # MiB
    srv.allow_tracebacks = True  # the app's read raises: the body will not come
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    block = b"a" * 30000
    try:
        for _ in range(70):  # 2.1 MB
            s.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending
    data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 413"), data[:100]
    assert srv.get("/noread").status == 200


def test_expect_continue_sent_at_first_read(run_server):
    srv = run_server("streamed_body", "-t", "4")
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
              b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
    s.settimeout(10)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"abcde")
    data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 200") and data.split(b"\r\n\r\n", 1)[1].startswith(b"5 ")


def test_expect_continue_not_sent_when_the_app_does_not_read(run_server):
    srv = run_server("streamed_body", "-t", "4")
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
              b"Expect: 100-continue\r\n\r\n")
    data = _read_all(s)  # closed: the unread body is not worth reading
    assert data.startswith(b"HTTP/1.1 200"), data
    assert b"100 Continue" not in data


def test_min_body_rate_cuts_a_trickle_the_app_waits_for(run_server):
    srv = run_server("streamed_body", "-t", "4", "-k", "1", "--header-timeout", "1")
    srv.allow_tracebacks = True  # the app's read raises: the body will not come
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    deadline = time.monotonic() + 8
    s.setblocking(False)
    data = b""
    while time.monotonic() < deadline:
        try:
            s.send(b"b")
        except OSError:
            break
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        except BlockingIOError:
            pass
        time.sleep(0.3)  # the trickle's pace
    assert data.startswith(b"HTTP/1.1 408"), data
    srv.assert_alive("/noread")


def test_pipelined_order_kept(run_server):
    srv = run_server("streamed_body", "-t", "4")
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n0\r\n\r\n"
              b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
              b"GET /noread HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = _read_all(s)
    parts = data.split(b"HTTP/1.1 200 OK")
    assert len(parts) == 4, data
    assert parts[1].split(b"\r\n\r\n", 1)[1].startswith(b"5 2cf24dba")
    assert parts[2].split(b"\r\n\r\n", 1)[1].startswith(b"3 ba7816bf")
    assert parts[3].endswith(b"ok")


def test_client_gone_mid_body_ends_the_read(run_server):
    srv = run_server("streamed_body", "-t", "4")
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    time.sleep(0.2)  # the client's pace
    s.close()
    deadline = time.monotonic() + 10
    while "the application" not in srv.stderr and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the log for the condition, with a deadline
    srv.allow_tracebacks = True
    assert "ended early" in srv.stderr
    assert srv.get("/noread").status == 200
