"""A tiny, strict HTTP/1.1 client over raw sockets, for tests.

It exists so that tests can send exactly the bytes they mean (malformed
requests, pipelined requests, bodies trickled one byte at a time) and read
exactly what the server sent back, framing included.  Every read has a
deadline; nothing here ever blocks without one.

Response framing follows RFC 9112 section 6.3 (message body length):
  1. responses to HEAD, and 1xx / 204 / 304 responses, have no body;
  2. ``Transfer-Encoding: chunked`` -> decode chunks (trailers kept apart);
  3. ``Content-Length`` -> exactly that many bytes;
  4. otherwise the body is delimited by the server closing the connection.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Union

DEFAULT_TIMEOUT = 5.0

HeaderList = Sequence[tuple[str, str]]


class ConnectionClosed(AssertionError):
    """The peer closed (or reset) the connection before a full message."""

    def __init__(self, msg: str, partial: bytes = b""):
        super().__init__(msg)
        self.partial = partial


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw_head: bytes = b""
    chunked: bool = False
    chunks: list[bytes] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = True
    close_delimited: bool = False

    def header(self, name: str) -> Optional[str]:
        """The value of the header (repeated ones joined with ', '), or None."""
        values = self.header_values(name)
        return ", ".join(values) if values else None

    def header_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for (n, v) in self.headers if n.lower() == lname]

    def has_token(self, name: str, token: str) -> bool:
        """True when the comma-separated header `name` lists `token`."""
        value = self.header(name) or ""
        return token.lower() in [t.strip().lower() for t in value.split(",")]

    def __repr__(self) -> str:  # keep assertion messages readable
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return (f"Response({self.version} {self.status} {self.reason!r}, "
                f"headers={self.headers!r}, body={body!r}, complete={self.complete})")


def build_request(method: str, target: str, headers: Union[HeaderList, dict, None] = None,
                  body: bytes = b"", version: str = "HTTP/1.1",
                  host: Optional[str] = None, content_length: bool = True) -> bytes:
    """Serialize a request.  `host` (if not None) becomes the first header.

    A Content-Length is added for a non-empty body unless the caller gave a
    Content-Length or Transfer-Encoding header, or content_length=False.
    """
    if headers is None:
        headers = []
    elif isinstance(headers, dict):
        headers = list(headers.items())
    else:
        headers = list(headers)
    names = {n.lower() for n, _ in headers}
    lines = [f"{method} {target} {version}"]
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    for n, v in headers:
        lines.append(f"{n}: {v}")
    if (body and content_length and "content-length" not in names
            and "transfer-encoding" not in names):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


def chunked(parts: Iterable[bytes], extensions: Optional[Sequence[str]] = None,
            trailers: HeaderList = ()) -> bytes:
    """Encode `parts` with the chunked transfer coding (RFC 9112 7.1).

    extensions[i] (e.g. ';name=value') is appended to the i-th size line.
    Empty parts are skipped (an empty chunk would end the body)."""
    out = bytearray()
    for i, part in enumerate(parts):
        if not part:
            continue
        ext = extensions[i] if extensions and i < len(extensions) else ""
        out += f"{len(part):x}{ext}\r\n".encode("latin-1") + part + b"\r\n"
    out += b"0\r\n"
    for n, v in trailers:
        out += f"{n}: {v}\r\n".encode("latin-1")
    out += b"\r\n"
    return bytes(out)


class Connection:
    """One client connection with a read buffer shared across responses."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- sending ---------------------------------------------------------
    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, target: str, headers=None, body: bytes = b"",
                version: str = "HTTP/1.1", host: Union[str, None, bool] = True,
                **kw) -> None:
        """Send one request; host=True means 'Host: <this connection's authority>'."""
        if host is True:
            host = self.authority
        elif host is False:
            host = None
        self.send(build_request(method, target, headers, body, version, host, **kw))

    def send_slowly(self, data: bytes, pause: float = 0.002, step: int = 1) -> None:
        """Send `step` bytes at a time with a small pause (pacing, not sync)."""
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])
            time.sleep(pause)

    # -- low-level reading ----------------------------------------------
    def _deadline(self, timeout: Optional[float]) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _fill(self, deadline: float) -> bool:
        """Receive more bytes into the buffer.  False on EOF/reset.
        Raises TimeoutError when the deadline passes first."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data from the server "
                               f"(have {len(self.buf)} unread bytes: {bytes(self.buf[:200])!r})")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data from the server "
                               f"(have {len(self.buf)} unread bytes: {bytes(self.buf[:200])!r})")
        except (ConnectionResetError, BrokenPipeError):
            self.eof = True
            self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readable(self, timeout: float = 0.0) -> bool:
        """True when bytes (or EOF) are waiting to be read within `timeout`."""
        if self.buf or self.eof:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def read_line(self, timeout: Optional[float] = None, deadline: Optional[float] = None) -> bytes:
        """One CRLF-terminated line, without the CRLF."""
        deadline = deadline or self._deadline(timeout)
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if not self._fill(deadline):
                raise ConnectionClosed("connection closed in the middle of a line",
                                       bytes(self.buf))

    def read_exact(self, n: int, timeout: Optional[float] = None,
                   deadline: Optional[float] = None) -> bytes:
        deadline = deadline or self._deadline(timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed(f"connection closed after {len(self.buf)} of "
                                       f"{n} expected bytes", bytes(self.buf))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_some(self, timeout: Optional[float] = None) -> bytes:
        """Whatever is available (at least one byte), or b'' on EOF."""
        deadline = self._deadline(timeout)
        if not self.buf:
            if not self._fill(deadline):
                return b""
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_until_close(self, timeout: Optional[float] = None) -> bytes:
        """Everything until the server closes; TimeoutError if it never does."""
        deadline = self._deadline(timeout)
        while self._fill(deadline):
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def wait_closed(self, timeout: float = 3.0) -> bool:
        """Wait for EOF or reset, discarding any data.  True if the server
        closed the connection within `timeout`, False if it was still open."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                self.buf.clear()
        except TimeoutError:
            return False
        self.buf.clear()
        return True

    # -- HTTP messages ---------------------------------------------------
    def read_head(self, timeout: Optional[float] = None,
                  deadline: Optional[float] = None) -> Response:
        """Status line and headers; the body is left unread."""
        deadline = deadline or self._deadline(timeout)
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if not self._fill(deadline):
                what = "reset" if self.reset else "closed"
                raise ConnectionClosed(
                    f"connection {what} before a complete response head "
                    f"(got {bytes(self.buf[:300])!r})", bytes(self.buf))
        raw = bytes(self.buf[:i + 4])
        del self.buf[:i + 4]
        lines = raw[:-4].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/"), \
            f"malformed status line {status_line!r}"
        assert len(parts[1]) == 3 and parts[1].isdigit(), f"malformed status code in {status_line!r}"
        headers = []
        for line in lines[1:]:
            assert b":" in line, f"malformed response header line {line!r}"
            name, _, value = line.partition(b":")
            assert name == name.strip() and name, f"malformed header name in {line!r}"
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        return Response(version=parts[0], status=int(parts[1]),
                        reason=parts[2] if len(parts) > 2 else "",
                        headers=headers, raw_head=raw)

    def read_chunk(self, timeout: Optional[float] = None,
                   deadline: Optional[float] = None) -> Optional[bytes]:
        """The next chunk's data of a chunked body; None after the last chunk
        (whose trailers are consumed and discarded)."""
        deadline = deadline or self._deadline(timeout)
        size_line = self.read_line(deadline=deadline)
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise AssertionError(f"malformed chunk size line {size_line!r}")
        if size == 0:
            while self.read_line(deadline=deadline) != b"":
                pass
            return None
        data = self.read_exact(size, deadline=deadline)
        crlf = self.read_exact(2, deadline=deadline)
        assert crlf == b"\r\n", f"chunk data not followed by CRLF: {crlf!r}"
        return data

    def read_body(self, resp: Response, method: str = "GET",
                  timeout: Optional[float] = None, allow_incomplete: bool = False) -> Response:
        deadline = self._deadline(timeout)
        if method.upper() == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
            return resp
        te = resp.header("Transfer-Encoding")
        try:
            if te is not None:
                codings = [c.strip().lower() for c in te.split(",")]
                assert codings[-1] == "chunked", f"unexpected Transfer-Encoding {te!r}"
                resp.chunked = True
                while True:
                    data = self.read_chunk(deadline=deadline)
                    if data is None:
                        break
                    resp.chunks.append(data)
                resp.body = b"".join(resp.chunks)
            elif resp.header("Content-Length") is not None:
                values = {v.strip() for v in resp.header("Content-Length").split(",")}
                assert len(values) == 1, f"conflicting Content-Length {values}"
                resp.body = self.read_exact(int(values.pop()), deadline=deadline)
            else:
                resp.close_delimited = True
                while self._fill(deadline):
                    pass
                resp.body = bytes(self.buf)
                self.buf.clear()
        except ConnectionClosed as e:
            if not allow_incomplete:
                raise
            resp.complete = False
            resp.body = b"".join(resp.chunks) + e.partial if resp.chunked else e.partial
            self.buf.clear()
        return resp

    def read_response(self, method: str = "GET", timeout: Optional[float] = None,
                      allow_incomplete: bool = False) -> Response:
        """Read one full response (a 1xx is returned on its own)."""
        deadline = self._deadline(timeout)
        resp = self.read_head(deadline=deadline)
        return self.read_body(resp, method, timeout=max(0.0, deadline - time.monotonic()),
                              allow_incomplete=allow_incomplete)

    def read_final_response(self, method: str = "GET", timeout: Optional[float] = None,
                            **kw) -> Response:
        """Read responses, skipping interim 1xx ones, up to the final one."""
        deadline = self._deadline(timeout)
        while True:
            resp = self.read_response(method, timeout=max(0.0, deadline - time.monotonic()), **kw)
            if resp.status >= 200:
                return resp


class BackgroundSender:
    """Send a sequence of byte blocks from a thread, stopping quietly when the
    peer closes or resets (used to push a body the server may refuse mid-way
    while the test reads the response concurrently)."""

    def __init__(self, conn: Connection, blocks: Iterable[bytes], timeout: float = 10.0):
        # A dup'd socket object has its own timeout, so the reader's short
        # per-read timeouts never cut a long sendall short.
        self.sock = conn.sock.dup()
        self.sock.settimeout(timeout)
        self.blocks = blocks
        self.sent = 0
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for block in self.blocks:
                self.sock.sendall(block)
                self.sent += len(block)
        except (OSError, ValueError) as e:  # EPIPE / ECONNRESET / closed socket
            self.error = e
        finally:
            self.sock.close()

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
