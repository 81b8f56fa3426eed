"""Back-pressure on upgraded connections: a client that does not read is
cut off once it owes more than --max-pending, so server memory stays
bounded; a writer that paces itself with pending() / on_drained never is,
and its reader gets every message, in order.

App: tests/apps/ws_flood.py.
"""

from __future__ import annotations

import re
import socket
import struct

import pytest

from tests.websocket import wsraw

MAX_PENDING_KIB = 1024
FLOOD_CLIENTS = 4
CHUNK = 64 * 1024
# The flood bound in the app: 4096 writes of 64 KiB = 256 MiB per client if
# the server never cut it off.
FLOOD_MAX_WRITES = 4096
# Stated ceiling for the server's peak RSS growth while 4 clients refuse to
# read: each may hold up to 1 MiB queued (--max-pending) plus what the
# kernel's socket buffers took; 64 MiB leaves room for the allocator and
# Python, and is a small fraction of the ~1 GiB an unbounded queue reaches.
RSS_GROWTH_CEILING_KIB = 64 * 1024


def proc_status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def wait_log(srv, name: str, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
    return srv.wait_for_stderr(re.compile(rf"^ws-flood {re.escape(name)} {pattern}$"),
                               timeout=timeout, start=start)


def test_client_that_never_reads_is_dropped_and_memory_stays_bounded(run_server):
    srv = run_server("ws_flood", "--max-pending", str(MAX_PENDING_KIB))
    wsraw.assert_echo_works(srv, "/echo")
    pid = srv.proc.pid
    rss_before = proc_status_kib(pid, "VmRSS")

    small_rcvbuf = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)]
    names = [f"flood{i}" for i in range(FLOOD_CLIENTS)]
    clients = [wsraw.connect_srv(srv, f"/flood?name={n}&max={FLOOD_MAX_WRITES}",
                                 sock_opts=small_rcvbuf, timeout=10) for n in names]
    try:
        # None of them reads. Each producer must be refused and its
        # connection closed (on_close), well before the app's own bound.
        refused = {}
        for n in names:
            m = wait_log(srv, n, r"(refused-after|max-reached) (\d+)", timeout=20)
            assert m.group(1) == "refused-after", \
                f"{n}: the server accepted all {FLOOD_MAX_WRITES} writes of 64 KiB"
            refused[n] = int(m.group(2))
            wait_log(srv, n, "close", timeout=10)

        # A well-behaved neighbour was never affected.
        wsraw.assert_echo_works(srv, "/echo")

        peak = proc_status_kib(pid, "VmHWM")
        rss_now = proc_status_kib(pid, "VmRSS")
        assert peak - rss_before < RSS_GROWTH_CEILING_KIB, \
            (f"server peak RSS grew by {(peak - rss_before) // 1024} MiB (ceiling "
             f"{RSS_GROWTH_CEILING_KIB // 1024} MiB); refused after {refused} writes")
        assert rss_now - rss_before < RSS_GROWTH_CEILING_KIB

        # What was accepted is bounded by --max-pending plus socket buffers
        # (a few MiB on loopback), nowhere near the 4096 attempted.
        for n, k in refused.items():
            assert k * CHUNK <= MAX_PENDING_KIB * 1024 + 32 * 1024 * 1024, (n, k)

        # The dropped clients find their connection closed once they read
        # what the kernel had already delivered.
        for ws in clients:
            assert ws.conn.wait_closed(timeout=10), "a dropped client's connection is still open"
    finally:
        for ws in clients:
            ws.close_socket()


@pytest.mark.parametrize("threads", ["1", "4"])
def test_writer_pacing_with_pending_and_on_drained_delivers_everything_in_order(
        run_server, threads):
    """The app writes while pending() <= 8, stops, and resumes in
    on_drained. The reader starts only once the writer has paused (so the
    pause really happened), then receives all 1000 messages of 16 KiB, in
    order, and the connection is never cut off (pacing keeps the queue
    far below --max-pending)."""
    srv = run_server("ws_flood", "--max-pending", str(MAX_PENDING_KIB), "-t", threads)
    name, count, size, high = f"paced{threads}", 1000, 16 * 1024, 8
    mark = srv.stderr_mark()
    with wsraw.connect_srv(srv, f"/paced?name={name}&count={count}&size={size}&high={high}",
                           timeout=10) as ws:
        wait_log(srv, name, r"paused pending=\d+", start=mark)
        for i in range(count):
            opcode, data = ws.recv_message(timeout=10)
            assert opcode == wsraw.OP_BINARY, f"message {i}: opcode {opcode}"
            assert len(data) == size, f"message {i}: {len(data)} bytes"
            assert struct.unpack("!I", data[:4])[0] == i, "messages out of order"
        assert ws.recv_text(timeout=10) == "done"
        m = wait_log(srv, name, r"done sent=(\d+) drained=(\d+) max_pending=(\d+)", start=mark)
        sent, drained, max_pending = map(int, m.groups())
        assert sent == count
        assert drained >= 1, "on_drained never ran although the writer paused"
        assert max_pending <= high + 1, f"pending() reached {max_pending}"
        ws.send_close(1000)
        ws.expect_close(1000, timeout=10)
    wait_log(srv, name, "close", start=mark)


def test_fast_sender_to_a_slow_app_is_paused_not_buffered(run_server):
    """Input back-pressure: a client sends 128 MiB (2048 messages of 64
    KiB) as fast as TCP allows to an app that takes 0.5 ms per message.
    The server stops reading while the app is behind instead of buffering
    the backlog: every message arrives, in order, and the server's peak
    RSS grows by far less than the 128 MiB sent."""
    import threading

    srv = run_server("ws_flood")
    wsraw.assert_echo_works(srv, "/echo")
    pid = srv.proc.pid
    rss_before = proc_status_kib(pid, "VmRSS")
    n, size = 2048, 64 * 1024
    filler = b"s" * (size - 4)
    # An all-zero mask key is a valid mask and spares masking 128 MiB here.
    frames = [wsraw.build_frame(wsraw.OP_BINARY, struct.pack("!I", i) + filler,
                                mask_key=b"\0\0\0\0") for i in range(n)]
    with wsraw.connect_srv(srv, "/slow?delay=0.0005", timeout=60) as ws:
        sender_error = []

        def send_all():
            try:
                sock = ws.conn.sock.dup()
                sock.settimeout(60)
                try:
                    for f in frames:
                        sock.sendall(f)
                finally:
                    sock.close()
            except OSError as e:
                sender_error.append(e)

        t = threading.Thread(target=send_all, daemon=True)
        t.start()
        t.join(60)
        assert not t.is_alive(), "sending 128 MiB did not finish within 60 s"
        assert not sender_error, sender_error
        ws.send_text("end")
        assert ws.recv_text(timeout=30) == f"count={n} in_order=True"
    peak = proc_status_kib(pid, "VmHWM")
    assert peak - rss_before < 48 * 1024, \
        f"server peak RSS grew by {(peak - rss_before) // 1024} MiB while receiving 128 MiB"
