"""Raw services (Iodine.listen(factory, service="raw")): bytes in as they
arrive, bytes out, over TCP, Unix sockets and TLS; pub/sub delivering
unframed bytes; a peer that never reads (memory stays bounded), a flood
(every byte comes back, in order), half-close (answers flushed before our
close), idle timeout; a file of raw services only, served by the CLI.

App: tests/apps/raw_app.py (echo and chat services, declared at import).
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import threading
import time

import pytest

from tests.raw.helpers import raw_ports, recv_exactly, recv_until_eof, rss_kib, wait_line
from tests.server import ServerProcess, base_env, server_cmd

MAX_PENDING_KIB = 1024


def test_echo_tcp_bytes_as_they_arrive(run_server):
    srv = run_server("raw_app")
    echo, _chat = raw_ports(srv)
    with socket.create_connection(("127.0.0.1", echo), timeout=10) as s:
        wait_line(srv, "echo", "open", "raw")
        for piece in (b"a", b"\x00\xff binary \r\n", b"x" * 70000):
            s.sendall(piece)
            assert recv_exactly(s, len(piece)) == piece
    wait_line(srv, "echo", "close", "peer closed")


def test_echo_unix_socket(run_server, tmp_path):
    path = str(tmp_path / "raw.sock")
    run_server("raw_app", env={"RAW_UNIX": path})
    assert os.path.exists(path)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"over unix")
        assert recv_exactly(s, 9) == b"over unix"


def test_echo_tls(run_server):
    srv = run_server("raw_app", env={"RAW_TLS": "1"})
    _echo, _chat, tls_port = raw_ports(srv)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the app's self-signed development certificate
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"secret bytes")
            assert recv_exactly(s, 12) == b"secret bytes"


def test_half_close_gets_every_answer_then_eof(run_server):
    srv = run_server("raw_app")
    echo, _ = raw_ports(srv)
    payload = os.urandom(300_000)
    with socket.create_connection(("127.0.0.1", echo), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)  # our FIN: the server must answer, then close
        assert recv_until_eof(s) == payload
    wait_line(srv, "echo", "close", "peer closed")


def test_pubsub_delivers_unframed_bytes_between_raw_peers(run_server):
    srv = run_server("raw_app")
    _echo, chat = raw_ports(srv)
    a = socket.create_connection(("127.0.0.1", chat), timeout=10)
    b = socket.create_connection(("127.0.0.1", chat), timeout=10)
    try:
        import re
        srv.wait_for_lines(re.compile(r"^raw chat open"), 2, timeout=10)
        a.sendall(b"hello from a\n")
        assert recv_exactly(b, 13) == b"hello from a\n"
        assert recv_exactly(a, 13) == b"hello from a\n"  # the sender is subscribed too
        # a publish from the HTTP side reaches both, bytes as they are
        assert srv.get("/publish?ch=raw-chat&msg=%00%01z").status == 200
        assert recv_exactly(a, 3) == b"\x00\x01z"
        assert recv_exactly(b, 3) == b"\x00\x01z"
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("threads", ["1", "4"])
def test_flood_every_byte_back_in_order(run_server, threads):
    """A client that writes 48 MiB as fast as it can while reading: the
    server's input and output backpressure must not lose or reorder a byte,
    with the callbacks on the loop thread or on four application threads."""
    srv = run_server("raw_app", "--max-pending", str(MAX_PENDING_KIB), "-t", threads)
    echo, _ = raw_ports(srv)
    total = 48 * 1024 * 1024
    block = os.urandom(256 * 1024)
    sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()
    got = [0]
    with socket.create_connection(("127.0.0.1", echo), timeout=30) as s:
        def reader():
            while got[0] < total:
                chunk = s.recv(1 << 20)
                if not chunk:
                    return
                got_hash.update(chunk)
                got[0] += len(chunk)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        deadline = time.monotonic() + 60
        for _ in range(total // len(block)):
            assert time.monotonic() < deadline, "flood took over 60 s"
            s.sendall(block)
            sent_hash.update(block)
        t.join(60)
        took = time.monotonic() - (deadline - 60)
    print(f"flood took {took:.2f} s")
    assert got[0] == total, f"echoed {got[0]} of {total} bytes"
    print(f"flood -t {threads}: {total >> 20} MiB echoed intact")
    assert got_hash.digest() == sent_hash.digest()


def test_peer_that_never_reads_is_stalled_and_memory_stays_bounded(run_server):
    """An echo to a peer that sends and never reads: the server stops
    reading from it once its output is over half of --max-pending, so the
    peer's sends block (bounded by kernel buffers) instead of the server's
    queue growing; the server keeps serving others; the idle timeout ends it."""
    srv = run_server("raw_app", "--max-pending", str(MAX_PENDING_KIB), "--ping", "3")
    echo, _ = raw_ports(srv)
    pid = srv.proc.pid
    before = rss_kib(pid)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.connect(("127.0.0.1", echo))
    s.setblocking(False)
    block = b"z" * 65536
    sent = 0
    stalled_since = None
    deadline = time.monotonic() + 30
    limit = 512 * 1024 * 1024  # what an unbounded server would swallow
    while sent < limit and time.monotonic() < deadline:
        try:
            sent += s.send(block)
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 1.0:
                break  # the server stopped reading us
            time.sleep(0.01)
    peak = rss_kib(pid)
    print(f"never-reading peer: server took {sent} bytes, RSS +{peak - before} KiB")
    # The server took at most ~half of max-pending plus one read beyond what
    # the kernel's buffers hold; 64 MiB is far below the 512 MiB unbounded.
    assert sent < 64 * 1024 * 1024, f"server swallowed {sent} bytes from a peer that never reads"
    assert peak - before < 48 * 1024, f"RSS grew {peak - before} KiB"
    # others are still served meanwhile
    with socket.create_connection(("127.0.0.1", echo), timeout=10) as other:
        other.sendall(b"still here")
        assert recv_exactly(other, 10) == b"still here"
    # and the stalled connection ends at the idle limit (no progress either way)
    wait_line(srv, "echo", "close", "idle timeout", timeout=30)
    s.close()


def test_idle_timeout_closes_a_silent_connection(run_server):
    srv = run_server("raw_app", "--ping", "1")
    echo, _ = raw_ports(srv)
    with socket.create_connection(("127.0.0.1", echo), timeout=10) as s:
        t0 = time.monotonic()
        assert recv_until_eof(s, timeout=15) == b""
        took = time.monotonic() - t0
    assert 0.5 < took < 10, took
    wait_line(srv, "echo", "close", "idle timeout")


def test_listen_refuses_an_unknown_service():
    from iodine_py import Iodine
    from iodine_py.config import ConfigError

    with pytest.raises(ConfigError):
        Iodine.listen(object, port=0, service="gopher")


RAW_ONLY = '''
from iodine_py import Iodine

class Upper:
    def on_message(self, client, data):
        client.write(data.upper())

Iodine.listen(Upper, port=0, address="127.0.0.1", service="raw")
'''


def test_cli_serves_a_file_with_raw_services_only(tmp_path):
    app = tmp_path / "upper_only.py"
    app.write_text(RAW_ONLY)
    srv = ServerProcess([*server_cmd(), str(app)], env=base_env())
    try:
        m = srv.wait_for_stderr(re.compile(r"Listening on tcp://127\.0\.0\.1:(\d+)"), timeout=10)
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10) as s:
            s.sendall(b"shout")
            assert recv_exactly(s, 5) == b"SHOUT"
        assert srv.stop() == 0
    finally:
        srv.kill()
    assert not srv.problems(check_exit=False), srv.stderr


def test_cli_still_refuses_a_file_without_app_or_listeners(tmp_path):
    app = tmp_path / "nothing.py"
    app.write_text("x = 1\n")
    from tests.server import run_cli

    r = run_cli(str(app))
    assert r.returncode == 2
    assert b"has no attribute 'app'" in r.stderr
