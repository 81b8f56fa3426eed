"""Fan-out: one publish, 2,000 WebSocket subscribers.

The subscribers are raw non-blocking sockets driven by one selector in the
test process (no thread per client). Each connects to ps_app with
`sub=fan&ready=1`: on_open subscribes it (direct delivery, from C) and then
writes "ready", so "ready" proves the subscription exists.

1. A 1 KiB message reaches every subscriber exactly once (followed by an
   "end" marker, nothing in between).
2. Sharing, not copying: 50 distinct 64 KiB messages are published to all
   2,000 while they do not read. A copy per recipient would be
   2,000 x 50 x 64 KiB = 6.4 GB; the server's RSS may grow by < 200 MiB
   (kernel socket buffers are not RSS; the clients' receive buffers are kept
   small so that most of the backlog really waits in the server).
   Then a sample of subscribers drains everything and checks it.
"""

from __future__ import annotations

import base64
import os
import resource
import selectors
import socket
import struct
import time

import pytest

from tests.pubsub.pslib import http_json, publish, q

N = 2000
BIG_N, BIG_SIZE = 50, 64 * 1024
RSS_LIMIT = 200 * 1024 * 1024
TIME_LIMIT = 30.0
RCVBUF = 32 * 1024


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Sub:
    __slots__ = ("i", "sock", "out", "buf", "state", "msgs")

    def __init__(self, i, sock, request):
        self.i = i
        self.sock = sock
        self.out = request
        self.buf = bytearray()
        self.state = "connecting"  # -> "head" -> "open"
        self.msgs: list[tuple[int, bytes]] = []

    def parse(self) -> None:
        if self.state == "head":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[:end + 4]
            assert head.startswith(b"HTTP/1.1 101"), f"sub {self.i}: {head[:200]!r}"
            self.state = "open"
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, off = struct.unpack_from("!H", self.buf, 2)[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, off = struct.unpack_from("!Q", self.buf, 2)[0], 10
            if len(self.buf) < off + n:
                return
            assert b0 & 0x80, f"sub {self.i}: a fragmented frame"
            self.msgs.append((b0 & 0x0F, bytes(self.buf[off:off + n])))
            del self.buf[:off + n]


class Swarm:
    def __init__(self, host: str, port: int, deadline: float):
        self.host, self.port, self.deadline = host, port, deadline
        self.sel = selectors.DefaultSelector()
        self.subs: list[Sub] = []

    def close(self) -> None:
        for s in self.subs:
            try:
                self.sel.unregister(s.sock)
            except (KeyError, ValueError):
                pass
            s.sock.close()
        self.sel.close()

    def _request(self, i: int) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        return (f"GET {q('/ws', name=f'f{i}', sub='fan', ready='1')} HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def _open(self, i: int) -> Sub:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setblocking(False)
        sock.connect_ex((self.host, self.port))
        s = Sub(i, sock, self._request(i))
        self.subs.append(s)
        self.sel.register(sock, selectors.EVENT_WRITE, s)
        return s

    def _step(self, timeout: float) -> None:
        assert time.monotonic() < self.deadline, "fan-out test ran out of time"
        for key, ev in self.sel.select(timeout):
            s: Sub = key.data
            if ev & selectors.EVENT_WRITE:
                err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                assert err == 0, f"sub {s.i}: connect failed: {os.strerror(err)}"
                sent = s.sock.send(s.out)
                s.out = s.out[sent:]
                if not s.out:
                    s.state = "head"
                    self.sel.modify(s.sock, selectors.EVENT_READ, s)
            elif ev & selectors.EVENT_READ:
                data = s.sock.recv(1 << 16)
                assert data, f"sub {s.i}: the server closed the connection ({s.msgs[-3:]!r})"
                s.buf += data
                s.parse()

    def open_all(self, n: int, in_flight: int = 200) -> None:
        """Connect n subscribers, at most `in_flight` handshakes at a time,
        until each has read its "ready"."""
        started = 0
        while True:
            pending = [s for s in self.subs if not s.msgs]
            if started == n and not pending:
                break
            while started < n and len(pending) < in_flight:
                pending.append(self._open(started))
                started += 1
            self._step(0.5)
        for s in self.subs:
            assert s.msgs[0] == (0x1, b"ready"), f"sub {s.i}: {s.msgs[:2]!r}"
            s.msgs.clear()

    def wait_each(self, subs, count: int) -> None:
        """Read until every sub in `subs` has `count` messages."""
        while any(len(s.msgs) < count for s in subs):
            self._step(0.5)

    def pause_reading(self, subs) -> None:
        for s in subs:
            self.sel.unregister(s.sock)

    def resume_reading(self, subs) -> None:
        for s in subs:
            self.sel.register(s.sock, selectors.EVENT_READ, s)


@pytest.fixture
def nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * N + 512  # this process's sockets; the server inherits it too
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_fanout_to_2000_subscribers(nofile, run_server):
    t0 = time.monotonic()
    srv = run_server("ps_app", "-q")
    swarm = Swarm(srv.host, srv.port, t0 + TIME_LIMIT)
    try:
        swarm.open_all(N)
        assert http_json(srv, "GET", "/stats")["subs"] == N

        # 1. one 1 KiB message: every subscriber gets exactly it, once
        msg = ("0123456789abcdef" * 64)[:1024]
        assert publish(srv, "fan", msg) is True
        assert publish(srv, "fan", "end") is True
        swarm.wait_each(swarm.subs, 2)
        for s in swarm.subs:
            assert s.msgs == [(0x1, msg.encode()), (0x1, b"end")], \
                f"sub {s.i} got {[(op, d[:20], len(d)) for op, d in s.msgs]!r}"
            s.msgs.clear()
        t1 = time.monotonic()

        # 2. 50 x 64 KiB to all 2,000, nobody reading: shared, not copied
        swarm.pause_reading(swarm.subs)
        pid = srv.proc.pid
        before = vm_rss(pid)
        t2 = time.monotonic()
        r = http_json(srv, "GET", q("/publish-many", ch="fan", n=BIG_N, size=BIG_SIZE),
                      timeout=20)
        assert r == {"r": BIG_N}
        after = vm_rss(pid)
        t3 = time.monotonic()
        growth = after - before
        copies = N * BIG_N * BIG_SIZE
        assert growth < RSS_LIMIT, (
            f"server RSS grew by {growth / 2**20:.1f} MiB for {BIG_N} x {BIG_SIZE // 1024} KiB "
            f"to {N} subscribers (a copy per recipient would be {copies / 2**30:.1f} GiB); "
            f"limit {RSS_LIMIT / 2**20:.0f} MiB")
        # a sample drains everything, in order, intact
        sample = swarm.subs[:: N // 10]
        swarm.resume_reading(sample)
        swarm.wait_each(sample, BIG_N)
        for s in sample:
            assert len(s.msgs) == BIG_N, f"sub {s.i}: {len(s.msgs)} messages"
            for k, (op, data) in enumerate(s.msgs):
                assert op == 0x2 and data == bytes([k % 256]) * BIG_SIZE, \
                    f"sub {s.i}: message {k} is {op:#x} {data[:8]!r}.. ({len(data)} bytes)"
        print(f"\nfan-out: {N} subscribers; handshakes + 1 KiB round {t1 - t0:.1f}s; "
              f"RSS before {before / 2**20:.1f} MiB, growth {growth / 2**20:.1f} MiB "
              f"for {copies / 2**30:.1f} GiB of deliveries; publish {t3 - t2:.1f}s, "
              f"drain {time.monotonic() - t3:.1f}s")
    finally:
        swarm.close()
    # the server noticed: every subscription is gone (bounded wait on its stats)
    deadline = time.monotonic() + 10
    while http_json(srv, "GET", "/stats")["subs"] != 0:
        assert time.monotonic() < deadline, "subscriptions left after every client closed"
        time.sleep(0.05)
    assert time.monotonic() - t0 < TIME_LIMIT + 10
