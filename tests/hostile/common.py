"""Helpers for the hostile-client suite: server memory, sockets in bulk.

Every test here ends the same way: the hostile client got the right answer
or was disconnected, the server's resident memory grew by less than a
ceiling the test states (a named constant with its reasoning), and
srv.assert_alive() still gets a normal answer on a new connection.
"""

from __future__ import annotations

import socket
import time
from typing import Iterable, Optional

KiB = 1024
MiB = 1024 * 1024


def proc_status_kib(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM`-style field of /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def rss_kib(srv) -> int:
    return proc_status_kib(srv.proc.pid, "VmRSS")


class RssWatch:
    """RSS at the start, sampled peak while the test runs (call sample()),
    and the end. VmHWM is not used: it includes the start-up peak."""

    def __init__(self, srv):
        self.srv = srv
        self.before = self.peak = rss_kib(srv)

    def sample(self) -> int:
        now = rss_kib(self.srv)
        self.peak = max(self.peak, now)
        return now

    def assert_growth_under(self, ceiling_bytes: int, what: str = "") -> None:
        now = self.sample()
        grew = (self.peak - self.before) * KiB
        print(f"[rss] {what or 'test'}: {self.report()}")  # shown with pytest -s
        assert grew < ceiling_bytes, (
            f"server RSS grew by {grew / MiB:.1f} MiB at its peak {what}(ceiling "
            f"{ceiling_bytes / MiB:.0f} MiB; before {self.before // 1024} MiB, "
            f"now {now // 1024} MiB)")

    def report(self) -> str:
        return (f"RSS before {self.before / 1024:.1f} MiB, peak {self.peak / 1024:.1f} MiB "
                f"(+{(self.peak - self.before) / 1024:.1f})")


def raw_socket(srv, timeout: float = 10.0, rcvbuf: Optional[int] = None) -> socket.socket:
    """A plain connected socket (rcvbuf set before connecting, so it shapes
    the TCP window)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((srv.host, srv.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        s.close()
        raise
    return s


def drain_until_closed(s: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """Read until EOF or reset; (closed, what arrived). closed is False when
    the deadline passed first."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, bytes(got)
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except socket.timeout:
            return False, bytes(got)
        except (ConnectionResetError, BrokenPipeError):
            return True, bytes(got)
        if not data:
            return True, bytes(got)
        got += data


def close_all(socks: Iterable) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
