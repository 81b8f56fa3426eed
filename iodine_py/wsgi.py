"""WSGI (PEP 3333) on top of the C core: environ in, response out.

The C core has already parsed and validated the request and flattened the
per-request environ into one ``KEY\\0value`` blob; here we only split it,
call the application, and hand its status, headers and body chunks back to C.
Nothing here touches a socket.

A response is a small resumable machine: ``pump`` iterates the app's body
and stops when the connection's output queue passes the high-water mark; the
core posts a drain event when the peer has caught up, and ``pump`` resumes.
That is how a slow reader pauses a streaming app without any thread
blocking and without unbounded buffering.
"""
from __future__ import annotations

import io
import os
import stat
import sys
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Tuple

from ._native import ffi, lib
from .log import log_exception

#: A WSGI application (PEP 3333): app(environ, start_response) -> body chunks.
#: (wsgiref.types.WSGIApplication says the same, from Python 3.11 on.)
WSGIApp = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Stop iterating the app's body past this many queued bytes (per connection).
HIGH_WATER = 256 * 1024
# The legacy write() callable cannot pause; past this it gives up.
WRITE_CAP = 64 * 1024 * 1024

_ERROR_BODY = b"Internal Server Error\n"
_ERROR_HEADERS = b"Content-Type\0text/plain; charset=utf-8"
_STATUS_500 = b"500 Internal Server Error"


class _EmptyInput:
    """wsgi.input for requests without a body: stateless, so shared."""

    __slots__ = ()

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> List[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


EMPTY_INPUT = _EmptyInput()


class FileWrapper:
    """wsgi.file_wrapper: a regular file is sent by the core with sendfile();
    anything else is read in blocks like a normal iterable."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def _sendfile_span(self) -> Optional[Tuple[int, int, int]]:
        """(fd, offset, length) when the core can send this file itself."""
        try:
            fd = self.filelike.fileno()
            st = os.fstat(fd)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            offset = self.filelike.tell()
        except (AttributeError, OSError):
            offset = 0
        return fd, offset, max(0, st.st_size - offset)


class _BodyStream(io.RawIOBase):
    """A request body read as it arrives (-t > 1): http_body_read waits
    (outside the GIL) for bytes the server has not received yet."""

    def __init__(self, conn: int) -> None:
        super().__init__()
        self._conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = len(b)
        if not n:
            return 0
        r = int(lib.http_body_read(self._conn, ffi.from_buffer(b), n))
        if r < 0:
            raise OSError("the request body ended early (client gone, or a limit broken)")
        return r


def make_input(req: Any) -> Any:
    if req.body_stream:
        # read(n) waits for n bytes (or the end), read1(n) returns what has
        # arrived; readline and iteration work as on a file
        return io.BufferedReader(_BodyStream(req.conn), 65536)
    if req.body_fd >= 0:
        fd = req.body_fd
        req.body_fd = -1  # ours now: closed with the file object
        return open(fd, "rb", closefd=True)
    if req.body_len:
        return io.BytesIO(ffi.unpack(req.body, req.body_len))
    return EMPTY_INPUT


def base_environ(listener: Any, multithread: bool, multiprocess: bool) -> Dict[str, Any]:
    """What every request of one listener shares; copied per request."""
    address = listener.address
    if address.startswith("unix:"):
        name, port = "localhost", ""
    else:
        name = address if address not in ("", "0.0.0.0", "::") else "localhost"
        port = str(listener.bound_port)
    return {
        "SCRIPT_NAME": "",
        "SERVER_NAME": name,
        "SERVER_PORT": port,
        "SERVER_SOFTWARE": "iodine-py",
        "wsgi.version": (1, 0),
        # a trusted proxy's X-Forwarded-Proto still overrides it (per request)
        "wsgi.url_scheme": "https" if getattr(listener, "tls", False) else "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
        "rack.upgrade?": None,
    }


# Spare keys added to (and popped from) a base environ: its 13 keys and
# these pass the 21 a 32-slot table holds, so the table grows to 64 slots
# and every copy has room for 19 more keys without growing (a request adds
# 10 fixed ones and one per header). More spares than 29 pass 42 and double
# it again: a bigger copy for nothing. tests/test_env_room.py checks both.
ENV_ROOM = 10


def roomy(base: Dict[str, Any], room: int = ENV_ROOM) -> Dict[str, Any]:
    """The same dict (same keys, same order), whose copies have room to grow.

    Every request copies its listener's base and adds ten to thirty keys;
    a copy as tight as the base (CPython clones the table) grows once per
    request. Spare keys added and popped again leave a larger table that
    the copies inherit. On a Python where this does not hold the copies
    just grow, as before: nothing depends on it."""
    wide = dict(base)
    spare = [f"\0spare{i}" for i in range(room)]  # str: the table stays str-keyed
    for key in spare:
        wide[key] = None
    for _ in spare:
        wide.popitem()
    return wide


# A WebSocket or SSE client keeps its environ for the connection's life.
# Its header names, and the values of the headers below, are the same on
# most connections, so one shared copy of each string can serve them all
# (10,000 subscribers kept ~1 KiB of duplicate strings each). The table
# is bounded: once full, new strings are simply not shared.
_SHARED: Dict[str, str] = {}
_SHARED_MAX = 4096
_SHARED_LEN = 256
_SHARED_VALUES = frozenset((
    "REQUEST_METHOD", "SERVER_PROTOCOL", "PATH_INFO", "REMOTE_ADDR", "HTTP_HOST",
    "HTTP_ORIGIN", "HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_USER_AGENT", "HTTP_ACCEPT",
    "HTTP_ACCEPT_ENCODING", "HTTP_ACCEPT_LANGUAGE", "HTTP_CACHE_CONTROL", "HTTP_PRAGMA",
    "HTTP_SEC_WEBSOCKET_VERSION", "HTTP_SEC_WEBSOCKET_EXTENSIONS", "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_SITE", "HTTP_SEC_FETCH_DEST",
))


def _shared(text: str) -> str:
    known = _SHARED.get(text)
    if known is not None:
        return known
    if len(_SHARED) < _SHARED_MAX and len(text) <= _SHARED_LEN:
        _SHARED[text] = text
    return text


def compact_environ(env: Dict[str, Any]) -> None:
    """Swap a long-lived environ's repeated strings for shared copies, in
    place: the dict stays the one the application saw and keeps its order."""
    items = []
    for key, value in env.items():
        if type(key) is str:
            if type(value) is str and key in _SHARED_VALUES:
                value = _shared(value)
            key = _shared(key)
        items.append((key, value))
    env.clear()
    env.update(items)


RequestHook = Callable[[Dict[str, Any]], object]  # Iodine.on_request's start / finish


class ResponseRuntime(Protocol):
    """What a Response needs of the runtime (server.Runtime is one)."""

    @property
    def req_start(self) -> Optional[RequestHook]: ...

    @property
    def req_finish(self) -> Optional[RequestHook]: ...

    @property
    def access_log(self) -> bool: ...

    @property
    def suspended(self) -> Dict[int, Response]: ...  # waiting for a drain

    def new_client(self, conn: int, env: Dict[str, Any], handler: Any, kind: int) -> None: ...

    def wait_sent(self, resp: Response) -> None: ...

    def log_access(self, resp: Response) -> None: ...


class Response:
    """One request's response, from app call to the last byte."""

    __slots__ = ("conn", "env", "status", "headers", "sent", "it", "result",
                 "runtime", "done", "started", "bytes_out", "upgrade", "armed", "hooked",
                 "ended")

    def __init__(self, runtime: ResponseRuntime, conn: int, env: Dict[str, Any],
                 upgrade: int = 0) -> None:
        self.runtime = runtime
        self.upgrade = upgrade
        self.conn = conn
        self.env = env
        self.status: Optional[str] = None
        self.headers: Optional[List[Tuple[str, str]]] = None
        self.sent = False
        self.it: Any = None
        self.result: Any = None
        self.done = False
        self.started = 0.0
        self.bytes_out = 0
        self.armed = False   # closed() waits for DSP_HTTP_SENT
        self.hooked = False  # the request hook's start ran: finish owed
        self.ended = False   # finish() ran

    # -- the WSGI callables --------------------------------------------------
    def start_response(self, status: str, headers: List[Tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called again without exc_info")
        if type(status) is not str:
            raise TypeError(f"status must be str, not {type(status).__name__}")
        if type(headers) is not list:
            raise TypeError(f"headers must be a list, not {type(headers).__name__}")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's legacy write(): sends at once, cannot pause."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if type(data) is not bytes:
            data = bytes(data)
        if not self.sent:
            self._head(data, False)
            return
        if data:
            self.bytes_out += len(data)
            queued = lib.http_write(self.conn, data, len(data))
            if queued < 0:
                raise OSError("client disconnected")
            if queued > WRITE_CAP:
                lib.http_abort(self.conn)
                raise OSError("client is not reading; response dropped")

    # -- driving ---------------------------------------------------------------
    def _head(self, body: bytes, finish: bool) -> None:
        status = self.status
        if status is None:
            raise AssertionError("the application returned without calling start_response()")
        # set together with status by start_response()
        headers: List[Tuple[str, str]] = self.headers  # type: ignore[assignment]
        # map() over the pairs: no comprehension frame per response
        flat = "\0".join(map("\0".join, headers)).encode("latin-1")
        s = status.encode("latin-1")
        self.bytes_out += len(body)
        if finish:
            self._arm()
        respond = lib.http_respond if finish else lib.http_respond_begin
        r = respond(self.conn, s, len(s), flat, len(flat), len(headers), body, len(body))
        if r == -2:
            raise ValueError(f"malformed status or header in response: {status!r} {headers!r}")
        if r == 1:  # X-Sendfile named no file: the core answered 404 instead
            self.status = "404 Not Found"
        self.sent = True
        if finish:
            self.done = True

    def run(self, app: WSGIApp) -> None:
        try:
            start = self.runtime.req_start
            if start is not None:
                start(self.env)
            self.hooked = True
            result = app(self.env, self.start_response)
        except BaseException:
            self.fail("the application")
            return
        self.resume(result)

    def resume(self, result: Any) -> None:
        """Everything after the app returned `result` (server.py enters
        here when iodine_py._fast called the app and left the rest)."""
        self.result = result
        try:
            if self.upgrade and self.env.get("rack.upgrade") is not None and not self.sent:
                if self._switch():
                    return
            if type(result) is list and len(result) == 1 and self.status is not None:
                body = result[0]
                if type(body) is not bytes:
                    raise TypeError(f"body chunks must be bytes, not {type(body).__name__}")
                if not self.sent:
                    self._head(body, True)
                    self.finish()
                    return
            if isinstance(result, FileWrapper):
                span = result._sendfile_span()
                if span is not None:
                    self.sendfile(*span)
                    return
            self.it = iter(result)
        except BaseException:
            self.fail("the application's response")
            return
        self.pump()

    def _switch(self) -> bool:
        """Hand the connection to the callback object in rack.upgrade,
        unless the app answered with a status >= 300 (then the upgrade is
        off and the response goes out as usual). The body is never sent."""
        status = self.status
        if status is not None and int(status[:3]) >= 300:
            return False
        headers = self.headers or []
        flat = "\0".join([x for pair in headers for x in pair]).encode("latin-1")
        r = lib.http_upgrade(self.conn, flat, len(flat), len(headers))
        if r == -2:
            raise ValueError(f"malformed header in upgrade response: {headers!r}")
        if r == 0:
            self.status = status or ("101 Switching Protocols"
                                     if self.upgrade == lib.UP_WEBSOCKET else "200 OK")
            self.runtime.new_client(self.conn, self.env, self.env["rack.upgrade"], self.upgrade)
        self.sent = True
        self.finish()
        return True

    def pump(self) -> None:
        """Send body chunks until the app is done or the peer falls behind."""
        conn = self.conn
        try:
            for chunk in self.it:
                if type(chunk) is not bytes:
                    if not isinstance(chunk, (bytes, bytearray, memoryview)):
                        raise TypeError(f"body chunks must be bytes, not {type(chunk).__name__}")
                    chunk = bytes(chunk)
                if not chunk:
                    continue
                if not self.sent:
                    self._head(chunk, False)
                    queued = lib.http_queued(conn)
                else:
                    self.bytes_out += len(chunk)
                    queued = lib.http_write(conn, chunk, len(chunk))
                if queued < 0:
                    self.finish(aborted=True)  # the client went away
                    return
                if queued > HIGH_WATER:
                    state = lib.http_await_drain(conn)
                    if state == 0:
                        self.runtime.suspended[conn] = self
                        return
                    if state < 0:
                        self.finish(aborted=True)
                        return
            if not self.sent:
                self._head(b"", True)
            else:
                self._arm()
                lib.http_finish(conn)
            self.finish()
        except BaseException:
            self.fail("the application's response")

    def sendfile(self, fd: int, offset: int, length: int) -> None:
        if not any(k.lower() == "content-length" for k, _ in self.headers or ()):
            self.headers = list(self.headers or ()) + [("Content-Length", str(length))]
        self._head(b"", False)
        self.bytes_out += length
        lib.http_sendfile(self.conn, os.dup(fd), offset, length)
        self._arm()
        lib.http_finish(self.conn)
        self.finish()

    def fail(self, where: str) -> None:
        log_exception(where)
        if not self.sent:
            self.status = "500 Internal Server Error"
            self.sent = True
            self.bytes_out = len(_ERROR_BODY)  # what the access log shows
            self._arm()
            lib.http_respond(self.conn, _STATUS_500, len(_STATUS_500), _ERROR_HEADERS,
                             len(_ERROR_HEADERS), 1, _ERROR_BODY, len(_ERROR_BODY))
            self.finish()
        else:
            self.finish(aborted=True)  # mid-body: dropping it is the only honest signal

    def _arm(self) -> None:
        """Before the call that completes the response: when something must
        run once its last byte has left (the iterable's close(), the finish
        hook), ask the core for DSP_HTTP_SENT and wait for it (closed())."""
        if self.armed:
            return
        result = self.result
        if self.runtime.req_finish is None and (
                result is None or type(result) is list or getattr(result, "close", None) is None):
            return
        if lib.http_want_sent(self.conn) == 0:
            self.armed = True
            self.runtime.wait_sent(self)

    def finish(self, aborted: bool = False) -> None:
        """Always runs once: log the line, and close() the iterable (PEP
        3333) now, or when the last byte has left (closed())."""
        if self.ended:
            return
        self.ended = self.done = True
        if aborted:
            lib.http_abort(self.conn)  # an armed wait ends with the connection
        if self.runtime.access_log:
            self.runtime.log_access(self)
        if not self.armed:
            self.closed()

    def closed(self) -> None:
        """The response has left whole, or its connection died: close() the
        iterable, then the request's finish hook. Runs once."""
        result, self.result, self.it = self.result, None, None
        hooked, self.hooked = self.hooked, False
        # a list (the common body) has no close(): skip the failed lookup
        close = getattr(result, "close", None) if type(result) is not list else None
        if close is not None:
            try:
                close()
            except BaseException:
                log_exception("the iterable's close()")
        fin = self.runtime.req_finish
        if hooked and fin is not None:
            try:
                fin(self.env)
            except BaseException:
                log_exception("the on_request finish hook")
