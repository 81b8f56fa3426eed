"""Connection limits: the cap on open connections (accepting pauses; nobody
is refused), running out of file descriptors (the server waits, does not
crash), and the header-read timeout that ends slowloris connections."""
import resource
import time

from tests.rawhttp import Connection
from tests.server import ServerProcess, base_env, iodine_argv


def test_header_timeout_ends_a_trickling_head(run_server):
    srv = run_server("hello", "--header-timeout", "1", "-k", "30")
    with srv.connect(timeout=10) as c:
        started = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400
        answer = b""
        # One byte every 50 ms: each byte alone would keep an idle timer
        # (30 s here) from ever firing.
        for i in range(len(head)):
            try:
                c.send(head[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            if c.readable(0.05):
                answer = c.read_until_close(timeout=5)
                break
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    # The deadline is one second from the first byte; it is checked as bytes
    # arrive, so it fires within a couple of the 50 ms steps.
    assert 0.9 <= took < 3.0, took
    srv.assert_alive()


def test_header_timeout_ends_a_silent_partial_head(run_server):
    srv = run_server("hello", "--header-timeout", "1", "-k", "30")
    with srv.connect(timeout=10) as c:
        started = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        answer = c.read_until_close(timeout=8)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert 0.9 <= took < 3.0, took


def test_header_timeout_does_not_cut_idle_keep_alive(run_server):
    # Between requests the keep-alive timeout applies, not the head's.
    srv = run_server("hello", "--header-timeout", "0.5", "-k", "30")
    with srv.connect(timeout=10) as c:
        c.request("GET", "/")
        assert c.read_response().status == 200
        assert not c.readable(1.2), "closed an idle keep-alive connection"
        c.request("GET", "/")
        assert c.read_response().status == 200


def test_header_timeout_zero_is_off(run_server):
    srv = run_server("hello", "--header-timeout", "0", "-k", "30")
    with srv.connect(timeout=10) as c:
        c.send(b"GET / HTTP/1.1\r\n")
        assert not c.readable(1.5)
        c.send(b"Host: x\r\n\r\n")
        assert c.read_response().status == 200


def _open(srv, n):
    conns = []
    for _ in range(n):
        conns.append(srv.connect(timeout=10))
    return conns


def test_connection_cap_pauses_accepting(run_server):
    srv = run_server("hello", "--max-connections", "4", "-k", "30")
    held = _open(srv, 4)
    try:
        for c in held:  # all four are served (and stay open: keep-alive)
            c.request("GET", "/")
            assert c.read_response().status == 200
        # The fifth connects (the kernel's backlog takes it) but is not
        # accepted while four are open: no answer.
        extra = srv.connect(timeout=10)
        extra.request("GET", "/")
        assert not extra.readable(0.5), "a fifth connection was served over the cap"
        held.pop().close()
        # One closed: the fifth is accepted and answered.
        assert extra.read_response(timeout=5).status == 200
        held.append(extra)
    finally:
        for c in held:
            c.close()
    srv.assert_alive()


def test_out_of_file_descriptors_pauses_instead_of_crashing(run_server):
    # 64 descriptors in all: Python, the loop and the listener use some;
    # the rest run out long before 120 connections.
    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    srv = ServerProcess(iodine_argv("hello", "-k", "30", "--max-connections", "1000"),
                        env=base_env(), preexec_fn=low_fd_limit)
    try:
        srv.wait_listening()
        conns = []
        for _ in range(120):
            c = Connection(srv.host, srv.port, timeout=10)
            c.request("GET", "/")
            conns.append(c)
        assert conns[0].read_response(timeout=5).status == 200
        assert not conns[-1].readable(0.5), "served with no descriptor to spare?"
        assert srv.proc.poll() is None, srv.stderr
        for c in conns[:100]:
            c.close()
        # Descriptors are back: the server accepts and answers the waiting ones.
        for c in conns[100:]:
            assert c.read_response(timeout=5).status == 200
            c.close()
        srv.assert_alive()
    finally:
        code = srv.stop()
    assert code == 0, srv.stderr
