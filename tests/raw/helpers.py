"""Shared bits for tests/raw: finding the raw listeners' ports, waiting for
the app's log lines (tests/apps/raw_app.py), reading a process's RSS."""
from __future__ import annotations

import re
import socket
import time
from typing import List

from tests.hostile.common import proc_status_kib

RAW_RE = re.compile(r"Listening on (?:tcp|tls)://127\.0\.0\.1:(\d+)")


def raw_ports(srv) -> List[int]:
    """The raw listeners' ports, in the order the app declared them."""
    srv.wait_listening()
    return [int(m.group(1)) for line in srv.stderr_lines if (m := RAW_RE.search(line))]


def wait_line(srv, name: str, event: str, detail: str = ".*", timeout: float = 15.0,
              start: int = 0) -> re.Match:
    return srv.wait_for_stderr(re.compile(rf"^raw {re.escape(name)} {event} ({detail})$"),
                               timeout=timeout, start=start)


def rss_kib(pid: int) -> int:
    return proc_status_kib(pid, "VmRSS")


def recv_exactly(sock: socket.socket, n: int, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    out = bytearray()
    while len(out) < n:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def recv_until_eof(sock: socket.socket, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    out = bytearray()
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no EOF within {timeout}s (got {len(out)} bytes)"
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk
