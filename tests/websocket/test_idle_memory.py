"""What an open WebSocket costs the server while it is idle.

Input is read into one buffer shared by all connections, and only an
unfinished frame head is kept per connection between reads (websocket.c),
so an idle connection holds no read buffer. Its cost is then the C state,
the kernel socket (not in RSS), and the Python side: the client object,
the environ it keeps, and the handler. This test opens N connections, has
each echo one message (so every one has read input at least once), and
bounds the server's RSS growth per connection. With a 2 KiB read buffer
per connection, as before, the same run measured about 5.2 KiB each.
"""

from __future__ import annotations

import os
import resource
import socket

import pytest

from tests.websocket.wsraw import build_frame

N = 1500
PER_CONN_LIMIT = 4096  # bytes of RSS per idle connection

HANDSHAKE = (b"GET /idle HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while end not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before {end!r}: {data!r}"
        data += chunk
    return data


@pytest.fixture
def many_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * N + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"needs {want} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_idle_websockets_hold_no_read_buffer(run_server, many_fds):
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("RSS per connection is not comparable under AddressSanitizer")
    srv = run_server("ws_echo")
    socks = []
    try:
        # one connection first: the server's lazily built state (the
        # handler's module, the client class) is in the baseline
        warm = socket.create_connection((srv.host, srv.port), timeout=10)
        socks.append(warm)
        warm.sendall(HANDSHAKE)
        read_until(warm, b"\r\n\r\n")
        before = rss_bytes(srv.proc.pid)
        for _ in range(N):
            s = socket.create_connection((srv.host, srv.port), timeout=10)
            s.sendall(HANDSHAKE)
            socks.append(s)
        msg = build_frame(0x1, b"ping-0123456789")
        for s in socks[1:]:
            assert b" 101 " in read_until(s, b"\r\n\r\n")
            s.sendall(msg)
        for s in socks[1:]:
            echo = s.recv(64)
            assert echo.endswith(b"ping-0123456789"), echo
        grown = rss_bytes(srv.proc.pid) - before
        per_conn = grown / N
        assert per_conn < PER_CONN_LIMIT, (
            f"{N} idle WebSockets grew the server's RSS by {grown / 1048576:.1f} MiB, "
            f"{per_conn:.0f} B each")
        srv.assert_alive()
    finally:
        for s in socks:
            s.close()


def test_compact_environ_keeps_the_dict_and_shares_repeated_strings():
    """What a kept environ goes through at upgrade (iodine_py.wsgi)."""
    from iodine_py import wsgi

    def environ(port):
        # fresh strings, as the server decodes them per request
        return {"REQUEST_METHOD": "".join(["G", "ET"]), "HTTP_UPGRADE": "".join(["web", "socket"]),
                "REMOTE_PORT": str(port), "HTTP_SEC_WEBSOCKET_KEY": f"key-{port}",
                "".join(["HTTP_X_", "ONE"]): "x", "wsgi.input": None}

    a, b = environ(40000), environ(40001)
    a_id, a_order = id(a), list(a)
    wsgi.compact_environ(a)
    wsgi.compact_environ(b)
    assert id(a) == a_id and list(a) == a_order, "same dict, same order"
    assert a == {"REQUEST_METHOD": "GET", "HTTP_UPGRADE": "websocket", "REMOTE_PORT": "40000",
                 "HTTP_SEC_WEBSOCKET_KEY": "key-40000", "HTTP_X_ONE": "x", "wsgi.input": None}
    keys_a = {k: k for k in a}
    for k in b:  # header names are shared
        assert keys_a[k] is k
    assert a["REQUEST_METHOD"] is b["REQUEST_METHOD"]
    assert a["HTTP_UPGRADE"] is b["HTTP_UPGRADE"]
    # values unique per connection are left alone (they would only fill the table)
    assert "REMOTE_PORT" not in wsgi._SHARED_VALUES
    assert "HTTP_SEC_WEBSOCKET_KEY" not in wsgi._SHARED_VALUES


def test_the_shared_string_table_is_bounded(monkeypatch):
    from iodine_py import wsgi

    monkeypatch.setattr(wsgi, "_SHARED", {})
    for i in range(wsgi._SHARED_MAX + 100):
        wsgi.compact_environ({f"HTTP_X_{i}": "v"})
    assert len(wsgi._SHARED) == wsgi._SHARED_MAX
