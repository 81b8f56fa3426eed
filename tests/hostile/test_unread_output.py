"""Clients that ask for megabytes and never read them.

A streamed response pauses the application's iterator once 256 KiB are
queued (iodine_py/wsgi.py HIGH_WATER); a connection whose output makes no
progress for the idle timeout (-k) is closed and the iterable's close() is
called. (The WebSocket/SSE equivalent, --max-pending, is covered by
tests/websocket/test_backpressure.py.)
"""

from __future__ import annotations

import re
import time

import pytest

from tests.hostile.common import MiB, RssWatch, close_all, drain_until_closed, raw_socket

NON_READERS = 8
FLOOD_MIB = 256  # what each asks for: 2 GiB in all, were it buffered
IDLE = 3
# Per stalled response: up to 256 KiB queued in the server plus one 64 KiB
# chunk in Python; the kernel holds the rest (socket buffers are not RSS).
# 8 of them are ~3 MiB; 64 MiB is far below the 2 GiB an unbounded queue
# would reach, with room for threads and the allocator.
UNREAD_RSS_CEILING = 64 * MiB
# What the app may have handed over before being paused: the queue bound
# plus whatever the kernel's send and receive buffers absorbed (a few MiB
# on loopback).
HANDED_OVER_CEILING = 16 * MiB


@pytest.mark.parametrize("threads", ["1", "4"])
def test_non_reading_clients_are_bounded_then_cut(run_server, threads):
    srv = run_server("hostile_app", "-k", str(IDLE), "-t", threads)
    rss = RssWatch(srv)
    mark = srv.stderr_mark()
    socks = []
    try:
        for i in range(NON_READERS):
            s = raw_socket(srv, rcvbuf=16 * 1024)
            s.sendall(b"GET /flood?mb=%d&tag=u%d HTTP/1.1\r\nHost: x\r\n\r\n" % (FLOOD_MIB, i))
            socks.append(s)
        # Nobody reads. Meanwhile the server answers others promptly and
        # its memory stays flat.
        until = time.monotonic() + 2
        while time.monotonic() < until:
            t = time.monotonic()
            assert srv.get("/", timeout=5).status == 200
            assert time.monotonic() - t < 1.5
            rss.sample()
            time.sleep(0.1)
        rss.assert_growth_under(UNREAD_RSS_CEILING, "with 8 non-readers ")

        # No output progress for -k seconds: each is closed, its iterable
        # closed, having handed over only a bounded prefix.
        sent = {}
        for i in range(NON_READERS):
            m = srv.wait_for_stderr(re.compile(rf"hostile-flood u{i} closed sent=(\d+)"),
                                    timeout=IDLE + 10, start=mark)
            sent[i] = int(m.group(1))
        assert max(sent.values()) < HANDED_OVER_CEILING, sent
        for s in socks:
            closed, _ = drain_until_closed(s, timeout=10)
            assert closed, "a cut connection still delivers data after 10 s"
        rss.assert_growth_under(UNREAD_RSS_CEILING, "after the cut ")
    finally:
        close_all(socks)
    srv.assert_alive()
