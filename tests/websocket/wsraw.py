"""A raw WebSocket client (RFC 6455) over tests.rawhttp.Connection.

It sends exactly the frames a test builds -- masked or not, fragmented,
with reserved bits, with non-minimal lengths -- and parses the server's
frames strictly: a server frame must be unmasked (5.1), must not set RSV
bits (5.2, no extension is negotiated) and must use a known opcode.

Every read has a deadline (the Connection's, a few seconds); nothing here
blocks without one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Optional, Sequence

from tests.rawhttp import Connection, ConnectionClosed, Response

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
KNOWN_OPCODES = {OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG}

# RFC 6455 1.3's worked example.
RFC_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def new_key() -> str:
    """A fresh Sec-WebSocket-Key: 16 random bytes, base64 (4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    """Sec-WebSocket-Accept for `key` (4.2.2 step 5.4)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake_headers(key: Optional[str] = None, version: Optional[str] = "13",
                      extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    if key is not None:
        headers.append(("Sec-WebSocket-Key", key))
    if version is not None:
        headers.append(("Sec-WebSocket-Version", version))
    return headers + list(extra)


def build_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
                mask: bool = True, mask_key: Optional[bytes] = None,
                length_form: Optional[int] = None) -> bytes:
    """One frame as a client would send it (5.2).

    rsv: the three RSV bits as a number 0..7 (4 = RSV1).
    length_form: force the 7-bit (None/7), 16-bit (16) or 64-bit (64) form.
    """
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if length_form == 64 or (length_form is None and n > 0xFFFF):
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    elif length_form == 16 or (length_form is None and n > 125):
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        assert n <= 125, "the 7-bit form holds at most 125"
        head = bytes([b0, mbit | n])
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + apply_mask(payload, key)


def apply_mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    reps = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(reps, "big")).to_bytes(n, "big")


def close_payload(code: Optional[int], reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> Optional[int]:
        assert self.opcode == OP_CLOSE, f"not a Close frame: {self!r}"
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self) -> bytes:
        return self.payload[2:]

    def __repr__(self) -> str:
        p = self.payload if len(self.payload) <= 60 else self.payload[:60] + b"..."
        return f"Frame(fin={self.fin}, rsv={self.rsv}, opcode={self.opcode:#x}, payload={p!r})"


class RawWebSocket:
    """A connection that has completed (or attempted) the opening handshake."""

    def __init__(self, conn: Connection, response: Response, key: str):
        self.conn = conn
        self.response = response
        self.key = key
        # permessage-deflate agreed: RSV1 is then legal on the first frame
        # of a data message (RFC 7692 6.1); the caller inflates
        ext = (response.header("Sec-WebSocket-Extensions") or "").lower()
        self.deflate = ext.startswith("permessage-deflate")

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self) -> "RawWebSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def close_socket(self) -> None:
        self.conn.close()

    def reset(self) -> None:
        """Abort the TCP connection with an RST (SO_LINGER 0), no Close frame."""
        try:
            self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.conn.close()

    # -- sending -----------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.conn.send(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **kw) -> None:
        self.conn.send(build_frame(opcode, payload, **kw))

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self.send_frame(OP_BINARY, data)

    def send_close(self, code: Optional[int] = 1000, reason: bytes = b"") -> None:
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    # -- receiving ---------------------------------------------------------
    def recv_frame(self, timeout: Optional[float] = None) -> Frame:
        """The next frame from the server, checked against 5.1/5.2."""
        deadline = time.monotonic() + (self.conn.timeout if timeout is None else timeout)
        b0, b1 = self.conn.read_exact(2, deadline=deadline)
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
        assert not (b1 & 0x80), "RFC 6455 5.1: a server must not mask its frames"
        if self.deflate and rsv == 4:
            assert opcode in (OP_TEXT, OP_BINARY), \
                f"RFC 7692 6.1: RSV1 on a frame with opcode {opcode:#x}"
        else:
            assert rsv == 0, f"server frame sets RSV bits {rsv:#b} with no extension agreed"
        assert opcode in KNOWN_OPCODES, f"server frame uses reserved opcode {opcode:#x}"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.conn.read_exact(2, deadline=deadline))[0]
            assert n > 125, f"5.2: length {n} sent in the 16-bit form (minimal encoding)"
        elif n == 127:
            n = struct.unpack("!Q", self.conn.read_exact(8, deadline=deadline))[0]
            assert n < 2 ** 63, "64-bit length with the top bit set"
            assert n > 0xFFFF, f"5.2: length {n} sent in the 64-bit form (minimal encoding)"
        if opcode >= OP_CLOSE:
            assert fin, "server sent a fragmented control frame"
            assert n <= 125, f"server control frame with a {n}-byte payload"
        payload = self.conn.read_exact(n, deadline=deadline) if n else b""
        return Frame(fin, rsv, opcode, payload)

    def recv_message(self, timeout: Optional[float] = None,
                     skip_control: bool = True) -> tuple[int, bytes]:
        """(opcode, payload) of the next complete data message. Control
        frames in between are skipped (a Close fails the read)."""
        deadline = time.monotonic() + (self.conn.timeout if timeout is None else timeout)
        opcode, parts = None, []
        while True:
            f = self.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                raise AssertionError(f"expected a message, got a Close frame: code "
                                     f"{f.close_code} reason {f.close_reason!r}")
            if f.opcode in (OP_PING, OP_PONG):
                if skip_control:
                    continue
                return f.opcode, f.payload
            if opcode is None:
                assert f.opcode != OP_CONT, "server sent a continuation without a start"
                opcode = f.opcode
            else:
                assert f.opcode == OP_CONT, "server interleaved a new message in a fragmented one"
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def recv_text(self, timeout: Optional[float] = None) -> str:
        op, data = self.recv_message(timeout)
        assert op == OP_TEXT, f"expected a text message, got opcode {op:#x}: {data[:80]!r}"
        return data.decode("utf-8")

    def recv_close(self, timeout: Optional[float] = None) -> Frame:
        """The next frame, which must be a Close frame (a data frame
        first fails the test)."""
        f = self.recv_frame(timeout)
        assert f.opcode == OP_CLOSE, f"expected a Close frame, got {f!r}"
        return f

    def expect_close(self, code: Optional[int], timeout: float = 5.0) -> Frame:
        """The server's next frame is a Close with `code`, and then the
        server closes the TCP connection (RFC 6455 7.1.1: the server
        should close the TCP connection first)."""
        try:
            f = self.recv_close(timeout)
        except ConnectionClosed as e:
            raise AssertionError(f"the server closed the TCP connection without a Close "
                                 f"frame (expected code {code}); got {e.partial!r}")
        assert f.close_code == code, \
            f"Close frame code {f.close_code} (reason {f.close_reason!r}), expected {code}"
        self.expect_tcp_close()
        return f

    def expect_tcp_close(self, timeout: float = 3.0) -> None:
        """The server closes the TCP connection within `timeout`, sending
        nothing more than (possibly) the rest of what it had queued."""
        deadline = time.monotonic() + timeout
        try:
            while self.conn._fill(deadline):
                pass
        except TimeoutError:
            raise AssertionError(f"server did not close the TCP connection within {timeout}s "
                                 f"(unread: {bytes(self.conn.buf[:100])!r})")
        extra = bytes(self.conn.buf)
        self.conn.buf.clear()
        assert extra == b"", f"server sent bytes after its Close frame: {extra[:100]!r}"


class _PreparedConnection(Connection):
    """A Connection whose socket options are set before connect() (a
    receive buffer size, for one, only shapes the TCP window then)."""

    def __init__(self, host: str, port: int, timeout: float, sock_opts: Sequence[tuple]):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            for level, opt, value in sock_opts:
                sock.setsockopt(level, opt, value)
            sock.settimeout(timeout)
            sock.connect((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.reset = False


def connect(host: str, port: int, path: str = "/", key: Optional[str] = None,
            extra_headers: Sequence[tuple[str, str]] = (), timeout: float = 5.0,
            expect_status: Optional[int] = 101, sock_opts: Sequence[tuple] = ()
            ) -> RawWebSocket:
    """Open a TCP connection and perform the opening handshake (4.1).

    With expect_status=101 the 101 response is checked (Upgrade,
    Connection, Sec-WebSocket-Accept); otherwise the response head is
    returned as is (its body, if any, left unread). sock_opts are
    (level, option, value) set before connecting."""
    key = key or new_key()
    if sock_opts:
        conn = _PreparedConnection(host, port, timeout, sock_opts)
    else:
        conn = Connection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, handshake_headers(key, extra=extra_headers))
        resp = conn.read_head()
        if expect_status is not None:
            assert resp.status == expect_status, f"handshake answered {resp!r}"
        if resp.status == 101:
            assert resp.has_token("Upgrade", "websocket"), resp
            assert resp.has_token("Connection", "upgrade"), resp
            assert resp.header("Sec-WebSocket-Accept") == accept_for(key), resp
    except BaseException:
        conn.close()
        raise
    return RawWebSocket(conn, resp, key)


def connect_srv(srv, path: str = "/", **kw) -> RawWebSocket:
    return connect(srv.host, srv.port, path, **kw)


def url(srv, path: str = "/") -> str:
    return f"ws://{srv.host}:{srv.port}{path}"


def assert_echo_works(srv, path: str = "/", text: str = "still-serving") -> None:
    """A new connection still completes a handshake and an echo round trip."""
    with connect_srv(srv, path) as ws:
        ws.send_text(text)
        assert ws.recv_text() == text
