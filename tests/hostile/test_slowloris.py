"""Slowloris: many connections that trickle a request head or a body.

(tests/production/test_connection_limits.py covers one trickling head;
here hundreds do it at once while a normal client is served alongside.)
"""

from __future__ import annotations

import select
import time


from tests.hostile.common import MiB, RssWatch, close_all, raw_socket

SLOW_CLIENTS = 300
HEADER_TIMEOUT = 2.0
# Each trickling head holds at most a few hundred bytes here (the read
# buffer starts at 4 KiB and grows only to -maxhd, 32 KiB): 300 of them
# cost a few MiB. 32 MiB leaves room for the allocator and Python.
SLOWLORIS_RSS_CEILING = 32 * MiB
# How much a normal request may wait while the slow ones are connected: the
# loop serves them all from one thread, so this is generous for a loaded
# 2-core machine yet far below the header timeout.
NORMAL_LATENCY_CEILING = 1.5


class SlowSet:
    """Open sockets that each send a prefix, then a byte now and then. Tracks
    when each one was closed by the server and what it said first."""

    def __init__(self, srv, prefixes: list[bytes]):
        self.socks = []
        self.started = {}
        self.closed_at = {}
        self.answer = {}
        for prefix in prefixes:
            s = raw_socket(srv, timeout=5)
            s.sendall(prefix)
            self.started[s] = time.monotonic()
            self.answer[s] = b""
            self.socks.append(s)

    @property
    def open(self):
        return [s for s in self.socks if s not in self.closed_at]

    def _closed(self, s):
        self.closed_at.setdefault(s, time.monotonic())

    def trickle(self, byte: bytes = b"a") -> None:
        for s in self.open:
            try:
                s.send(byte)
            except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
                self._closed(s)

    def poll(self) -> None:
        """Collect answers and EOFs without blocking."""
        live = self.open
        while live:
            ready, _, _ = select.select(live, [], [], 0)
            if not ready:
                return
            for s in ready:
                try:
                    data = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if data:
                    self.answer[s] += data
                else:
                    self._closed(s)
            live = [s for s in ready if s not in self.closed_at]

    def close(self):
        close_all(self.socks)


def serve_alongside(srv, latencies: list[float]) -> None:
    t = time.monotonic()
    resp = srv.get("/", timeout=5)
    latencies.append(time.monotonic() - t)
    assert resp.status == 200 and resp.body == b"ok"


def test_many_trickling_heads_are_cut_by_the_header_timeout(run_server):
    """300 connections each trickle one header byte every 0.25 s: the
    idle timer (-k 30) alone would never fire. Each is answered 408 or
    closed once its head is --header-timeout (2 s) old; a normal client is
    served promptly the whole time."""
    srv = run_server("hostile_app", "--header-timeout", str(HEADER_TIMEOUT), "-k", "30")
    rss = RssWatch(srv)
    slow = SlowSet(srv, [b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i
                         for i in range(SLOW_CLIENTS)])
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + HEADER_TIMEOUT + 8
        while slow.open and time.monotonic() < deadline:
            slow.trickle()
            slow.poll()
            serve_alongside(srv, latencies)
            rss.sample()
            time.sleep(0.25)
        still = len(slow.open)
        assert still == 0, f"{still} of {SLOW_CLIENTS} trickling heads still open " \
                           f"{HEADER_TIMEOUT + 8:.0f} s after they began"
        lived = [slow.closed_at[s] - slow.started[s] for s in slow.socks]
        # Not cut before the deadline (a little slack: our clock starts
        # after connect), and not long after it (checked as bytes arrive).
        assert min(lived) >= HEADER_TIMEOUT * 0.8, f"one cut after {min(lived):.2f} s"
        assert max(lived) <= HEADER_TIMEOUT + 4, f"one lived {max(lived):.2f} s"
        for s in slow.socks:
            a = slow.answer[s]
            assert a == b"" or a.startswith(b"HTTP/1.1 408 "), a[:80]
        assert sum(1 for a in slow.answer.values() if a) > 0, "no 408 seen at all"
        assert max(latencies) < NORMAL_LATENCY_CEILING, \
            f"a normal request waited {max(latencies):.2f} s among the slow ones"
        rss.assert_growth_under(SLOWLORIS_RSS_CEILING, "300 trickling heads ")
    finally:
        slow.close()
    srv.assert_alive()


STALLED_BODIES = 200
# A stalled body holds what arrived (1000 bytes each here); bodies larger
# than --body-spill go to a temp file anyway. 32 MiB: see above.
STALLED_BODY_RSS_CEILING = 32 * MiB


def test_many_stalled_bodies_get_408_after_the_idle_timeout(run_server):
    """200 POSTs announce 1 MiB, send 1000 bytes and go quiet. After -k 2 of
    silence each gets 408 and is closed (RFC 9110 15.5.9); memory holds only
    what arrived; others are served meanwhile."""
    idle = 2
    srv = run_server("hostile_app", "-k", str(idle))
    rss = RssWatch(srv)
    head = b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % MiB
    slow = SlowSet(srv, [head + b"b" * 1000 for _ in range(STALLED_BODIES)])
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + idle + 8
        while slow.open and time.monotonic() < deadline:
            slow.poll()
            serve_alongside(srv, latencies)
            rss.sample()
            time.sleep(0.2)
        assert not slow.open, f"{len(slow.open)} stalled bodies still open"
        lived = [slow.closed_at[s] - slow.started[s] for s in slow.socks]
        assert min(lived) >= idle * 0.8 and max(lived) <= idle + 4, (min(lived), max(lived))
        for s in slow.socks:
            a = slow.answer[s]
            assert a == b"" or a.startswith(b"HTTP/1.1 408 "), a[:80]
        assert max(latencies) < NORMAL_LATENCY_CEILING
        rss.assert_growth_under(STALLED_BODY_RSS_CEILING, "200 stalled bodies ")
    finally:
        slow.close()
    srv.assert_alive()


def test_trickling_body_is_eventually_cut(run_server):
    """A body trickled at one byte every 0.3 s under -k 1 and
    --header-timeout 1: each byte resets the idle clock, so nothing ends
    it; --min-body-rate (240 B/s by default, after the header timeout's
    grace) cuts it (408) within a few seconds, as a trickling head is.
    (The test stops after 6 s either way.)"""
    srv = run_server("hostile_app", "-k", "1", "--header-timeout", "1")
    slow = SlowSet(srv, [b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"])
    try:
        deadline = time.monotonic() + 6
        while slow.open and time.monotonic() < deadline:
            slow.trickle(b"b")
            slow.poll()
            time.sleep(0.3)
        assert not slow.open, "a trickling body was still open after 6 s"
    finally:
        slow.close()
    srv.assert_alive()


def test_a_slow_but_steady_body_is_not_cut(run_server):
    """The rate is an average over the body: 2 KiB a second (well above the
    240 B/s floor) for 3 s with a 1 s grace is served, however many idle
    timeouts (-k 2) the whole upload spans."""
    srv = run_server("basic", "-k", "2", "--header-timeout", "1")
    body = b"x" * 6000
    with srv.connect(timeout=10) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 200):
            c.send(body[i:i + 200])
            time.sleep(0.1)  # pacing the upload (the thing under test), not waiting on the server
        resp = c.read_response(timeout=10)
    assert resp.status == 200 and resp.body == body


def test_min_body_rate_zero_turns_it_off(run_server):
    srv = run_server("basic", "-k", "5", "--header-timeout", "1", "--min-body-rate", "0")
    with srv.connect(timeout=10) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        for ch in b"0123456789":
            c.send(bytes([ch]))
            time.sleep(0.25)  # 4 B/s for 2.5 s: far under the default floor
        resp = c.read_response(timeout=10)
    assert resp.status == 200 and resp.body == b"0123456789"
