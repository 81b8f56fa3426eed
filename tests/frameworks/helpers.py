"""Small clients shared by tests/frameworks and tests/examples: whether the
server's Python can import a framework, a multipart body builder, and an
EventSource-style reader over tests.rawhttp.Connection."""

from __future__ import annotations

import functools
import json
import subprocess
import time
from typing import Optional, Sequence

import pytest

from tests.rawhttp import Connection, Response
from tests.server import PYTHON, base_env

SSE_ACCEPT = [("Accept", "text/event-stream")]


@functools.lru_cache(maxsize=None)
def _importable(module: str) -> bool:
    try:
        r = subprocess.run([PYTHON, "-c", f"import {module}"], env=base_env(),
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def needs(module: str, extra: str = "test"):
    """A skipif mark: `module` must be importable by the server's Python."""
    return pytest.mark.skipif(
        not _importable(module),
        reason=f"{module} is not importable by the server's python ({PYTHON}); "
               f"install the project's [{extra}] extras")


def multipart(fields: Sequence[tuple[str, str]] = (),
              files: Sequence[tuple[str, str, bytes]] = (),
              boundary: str = "----iodine-frameworks-boundary") -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request."""
    parts = []
    for name, value in fields:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                     .encode() + value.encode() + b"\r\n")
    for name, filename, data in files:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                     f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                     .encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def json_body(resp: Response):
    ctype = resp.header("Content-Type") or ""
    assert ctype.startswith("application/json"), resp
    return json.loads(resp.body)


class EventStream:
    """An SSE request on its own connection, read event by event (the
    subset of the EventSource parsing rules this server's output needs:
    data, event, id, comments)."""

    def __init__(self, srv, path: str, headers: Sequence[tuple[str, str]] = (),
                 timeout: float = 5.0):
        self.conn: Connection = srv.connect(timeout=timeout)
        self.conn.request("GET", path, SSE_ACCEPT + list(headers))
        self.head: Response = self.conn.read_head()
        self.last_id = ""

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _block(self, deadline: float) -> Optional[bytes]:
        c = self.conn
        while b"\n\n" not in c.buf:
            if not c._fill(deadline):
                return None
        i = c.buf.index(b"\n\n") + 2
        block = bytes(c.buf[:i])
        del c.buf[:i]
        return block

    def next_event(self, timeout: float = 5.0) -> Optional[dict]:
        """The next event as {"type", "data", "id"}, skipping comment-only
        blocks; None when the stream ends first."""
        deadline = time.monotonic() + timeout
        while True:
            block = self._block(deadline)
            if block is None:
                return None
            data: list[str] = []
            kind = ""
            for line in block.decode("utf-8").split("\n"):
                if not line or line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    data.append(value)
                elif field == "event":
                    kind = value
                elif field == "id":
                    self.last_id = value
            if data:
                return {"type": kind or "message", "data": "\n".join(data), "id": self.last_id}

    def ended(self, timeout: float = 5.0) -> bool:
        """True once the server closed the stream (within `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self.conn._fill(deadline):
                    return True
            except TimeoutError:
                return False

