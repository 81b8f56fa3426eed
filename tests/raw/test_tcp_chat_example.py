"""examples/tcp_chat.py: a TCP client (a plain socket, line by line) and a
WebSocket client (the websocket-client library) in one room, each seeing
the other's messages."""
from __future__ import annotations

import socket
import time

import pytest

from tests.raw.helpers import raw_ports

websocket = pytest.importorskip("websocket")  # websocket-client


class Lines:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def next(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no line within {timeout}s (have {self.buf!r})"
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            assert chunk, f"connection closed (have {self.buf!r})"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8")

    def until(self, want: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            line = self.next(max(0.1, deadline - time.monotonic()))
            if line == want:
                return
            seen.append(line)
            assert time.monotonic() < deadline, f"{want!r} not among {seen}"


def ws_until(ws, want: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        msg = ws.recv()
        if msg == want:
            return
        seen.append(msg)
        assert time.monotonic() < deadline, f"{want!r} not among {seen}"


def test_tcp_and_websocket_members_see_each_other(run_server):
    srv = run_server("examples/tcp_chat.py", env={"CHAT_TCP_PORT": "0"})
    (tcp_port,) = raw_ports(srv)
    ws = websocket.create_connection(f"ws://{srv.host}:{srv.port}/ws?name=web", timeout=10)
    try:
        ws_until(ws, "web joined")
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=10) as s:
            tcp = Lines(s)
            assert tcp.next().startswith("welcome, tcp-")
            s.sendall(b"/nick terminal\n")
            # the rename reaches both sides
            ws_msgs = []
            deadline = time.monotonic() + 10
            while not any(m.endswith(" is now terminal") for m in ws_msgs):
                assert time.monotonic() < deadline, ws_msgs
                ws.settimeout(max(0.1, deadline - time.monotonic()))
                ws_msgs.append(ws.recv())
            # a line typed on TCP reaches the browser, in pieces too
            s.sendall(b"hello ")
            s.sendall(b"from tcp\n")
            ws_until(ws, "terminal: hello from tcp")
            tcp.until("terminal: hello from tcp")
            # and a browser message reaches the TCP client as a line
            ws.send("hi from the browser")
            tcp.until("web: hi from the browser")
        ws_until(ws, "terminal left")
    finally:
        ws.close()
