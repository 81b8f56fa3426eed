"""A million tiny pipelined requests.

Sent over a few connections as fast as the socket takes them, each with a
reader thread; every request is answered, in order (each answer carries its
request's number), within a time bound, with bounded server memory: the
server reads a connection's next request only once the previous answer is
queued, and stops reading while a slow answer is pending, so a pipeline is
bounded by the head limit, not by how much the client sends.
"""

from __future__ import annotations

import re
import socket
import threading
import time

from tests.hostile.common import MiB, RssWatch, raw_socket

TOTAL_REQUESTS = 1_000_000
CONNECTIONS = 4
# Measured on the shared 2-core development machine (a fuzzer running
# alongside): a million in ~12 s with -t 1 (~80k answers/s), the Python
# reader thread being the slower side. 60 s leaves room for a loaded CI box.
TIME_LIMIT = 60.0
# The server holds at most one read buffer (<= -maxhd, 32 KiB) and one
# answer queue per connection; pipelining must not make it buffer the
# client's backlog. 64 MiB is what 4 connections could never legitimately
# need.
PIPELINE_RSS_CEILING = 64 * MiB

ANSWER = re.compile(rb"HTTP/1\.1 200 OK\r\n(?:[^\r\n]+\r\n)*?\r\n(\d+)\n")


class Pipe:
    def __init__(self, srv, first: int, count: int):
        self.sock = raw_socket(srv, timeout=30)
        self.first, self.count = first, count
        self.answered = 0
        self.error = None
        self.bad = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.writer = threading.Thread(target=self._write, daemon=True)

    def start(self):
        self.reader.start()
        self.writer.start()

    def _write(self):
        try:
            step = 5000
            for lo in range(self.first, self.first + self.count, step):
                hi = min(lo + step, self.first + self.count)
                self.sock.sendall(b"".join(b"GET /n/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
                                           for i in range(lo, hi)))
        except OSError as e:
            self.error = f"send: {e!r}"

    def _read(self):
        buf = b""
        want = self.first
        end = self.first + self.count
        try:
            while want < end:
                data = self.sock.recv(1 << 20)
                if not data:
                    self.error = f"closed after {want - self.first} answers"
                    return
                buf += data
                pos = 0
                for m in ANSWER.finditer(buf):
                    if m.start() != pos:  # something that is not an answer
                        self.bad = buf[pos:pos + 200]
                        return
                    n = int(m.group(1))
                    if n != want:
                        self.bad = b"answer %d where %d was due" % (n, want)
                        return
                    want += 1
                    pos = m.end()
                buf = buf[pos:]
                self.answered = want - self.first
            if buf:
                self.bad = b"extra bytes: " + buf[:200]
        except OSError as e:
            self.error = f"recv: {e!r}"


def test_a_million_pipelined_requests_all_answered_in_order(run_server):
    srv = run_server("hostile_app")
    rss = RssWatch(srv)
    per = TOTAL_REQUESTS // CONNECTIONS
    pipes = [Pipe(srv, k * per, per) for k in range(CONNECTIONS)]
    started = time.monotonic()
    try:
        for p in pipes:
            p.start()
        deadline = started + TIME_LIMIT
        while any(p.reader.is_alive() for p in pipes) and time.monotonic() < deadline:
            rss.sample()
            time.sleep(0.5)
        took = time.monotonic() - started
        for p in pipes:
            assert p.bad is None, f"connection {p.first}: {p.bad!r}"
            assert p.error is None, f"connection {p.first}: {p.error}"
        answered = sum(p.answered for p in pipes)
        assert answered == TOTAL_REQUESTS, \
            f"{answered} of {TOTAL_REQUESTS} answered in {took:.0f} s (limit {TIME_LIMIT:.0f} s)"
        print(f"[pipeline] {TOTAL_REQUESTS} requests in {took:.1f} s "
              f"({TOTAL_REQUESTS / took:.0f}/s)")
        rss.assert_growth_under(PIPELINE_RSS_CEILING, "a million pipelined ")
    finally:
        for p in pipes:
            try:
                p.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            p.sock.close()
    srv.assert_alive()
