"""The client object an upgraded connection (WebSocket or SSE) hands to its
callback object. Every method is a thin call into the C core, by
connection id: the client never holds a socket, so a stale client is
harmless (its writes return False).

Callbacks (any subset): on_open, on_message, on_drained, on_shutdown,
on_close, each taking the client (on_message also the data). The core runs a
connection's callbacks one at a time, in order; on_close runs exactly once,
last.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Protocol, Tuple, Union

from ._native import ffi, lib
from .log import log_exception
from .pubsub import EngineArg, Resume, client_subscribe, client_unsubscribe, publish

# The largest SSE retry= (ms): about 24.8 days, what a signed 32-bit
# millisecond timer holds (browsers clamp to that or less).
SSE_MAX_RETRY = 2**31 - 1

_CALLBACKS = ("on_open", "on_message", "on_drained", "on_shutdown", "on_close")

# Event kinds of upgraded connections, read from the C headers by cffi.
OPEN, MESSAGE, DRAINED = lib.DSP_OPEN, lib.DSP_MESSAGE, lib.DSP_DRAINED
SHUTDOWN, CLOSE, FAIL = lib.DSP_SHUTDOWN, lib.DSP_CLOSE, lib.DSP_FAIL


# Close codes an application may send (RFC 6455 7.4.1 and 7.4.2): the rest
# of 1000-2999 describe protocol failures the server detects itself, or are
# reserved and must never be sent (1004-1006, 1015).
_APP_CLOSE_CODES = frozenset((1000, 1001, 1008, 1011))


def check_close(code: Any, reason: Any) -> bytes:
    """The reason as UTF-8 bytes, or ValueError for a code or reason a
    Close frame cannot carry."""
    # any int (an IntEnum too), but not a bool
    if not isinstance(code, int) or isinstance(code, bool) or \
            not (int(code) in _APP_CLOSE_CODES or 3000 <= int(code) <= 4999):
        raise ValueError(f"close code must be 1000, 1001, 1008, 1011 or 3000-4999, not {code!r}")
    if not isinstance(reason, str):
        raise ValueError(f"close reason must be a str, not {type(reason).__name__}")
    raw = reason.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
    if len(raw) > 123:
        raise ValueError(f"close reason must be at most 123 bytes of UTF-8, not {len(raw)}")
    return raw


def resolve_handler(handler: Any) -> Any:
    """A class is instantiated once per connection; an instance or a module
    is used as it is."""
    if isinstance(handler, type):
        return handler()
    return handler


def log_callback_error(name: str) -> None:
    log_exception(f"the callback {name}")


class Client:
    """``client`` in ``on_open(client)`` and friends."""

    __slots__ = ("conn", "_env", "protocol", "_handler", "_cb", "_open", "__weakref__",
                 "subscriptions", "close_code", "close_reason", "_via_raw")

    def __init__(self, conn: int, env: Dict[str, Any], handler: Any, protocol: str) -> None:
        self.conn = conn
        self._env = env
        self.protocol = protocol  # 'websocket' or 'sse', as rack.upgrade? said; or 'raw'
        self._open = True
        # The peer's Close frame, once one came (read them in on_close):
        # its code (1005 when it carried none) and reason; None before that,
        # and when the connection ended without one (network error, timeout,
        # our own close, a protocol error). A raw or client connection
        # (iodine_py/connect.py) says in close_reason why it ended.
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        # a raw.c connection (raw service, Iodine.connect): writes go there
        self._via_raw = protocol == "raw"
        self.subscriptions: Dict[Tuple[str, bool], int] = {}
        self._cb: Tuple[Optional[Callable[..., Any]], ...] = (None,) * 5
        self._set_handler(handler)

    def _set_handler(self, handler: Any) -> None:
        handler = resolve_handler(handler)
        self._handler = handler
        self._cb = tuple(getattr(handler, name, None) for name in _CALLBACKS)
        lib.up_want_drained(self.conn, self._cb[2] is not None)

    # -- the spec's methods ----------------------------------------------------
    @property
    def env(self) -> Dict[str, Any]:
        """The environ of the request that upgraded."""
        return self._env

    def write(self, data: Union[str, bytes], event: Optional[str] = None,
              id: Optional[Union[str, int]] = None, retry: Optional[int] = None) -> bool:
        """Queue data. WebSocket: str goes as a text message, bytes as binary.
        SSE: one event, with optional event name, id and retry (the
        client's reconnection delay, whole milliseconds 0..2**31-1). An
        event stream is UTF-8: bytes must be valid UTF-8 (ValueError
        otherwise). Returns False once the connection is closed (or
        closing)."""
        if self._via_raw:  # raw bytes (str: UTF-8), or a WebSocket client's message
            text = type(data) is str
            raw = data.encode("utf-8") if text else bytes(data)  # type: ignore[union-attr,arg-type]
            ws_text = int(text and self.protocol == "websocket")
            return bool(lib.raw_send(self.conn, raw, len(raw), ws_text) == 0)
        if self.protocol == "websocket":
            rc: int
            if type(data) is str:
                raw = data.encode("utf-8")
                rc = lib.ws_write(self.conn, raw, len(raw), 1)
                return rc == 0
            if not isinstance(data, bytes):
                data = bytes(data)  # type: ignore[arg-type]  # bytearray, memoryview
            rc = lib.ws_write(self.conn, data, len(data), 0)
            return rc == 0
        if type(data) is str:
            raw = data.encode("utf-8")
        else:
            raw = bytes(data)  # type: ignore[arg-type]  # bytes, bytearray, memoryview
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"SSE data must be UTF-8 text (an event stream is UTF-8); "
                                 f"these bytes are not ({e.reason} at {e.start}): encode "
                                 f"them, e.g. base64") from None
        if retry is None:
            ms = -1
        elif type(retry) is not int or not 0 <= retry <= SSE_MAX_RETRY:
            raise ValueError(f"SSE retry must be whole milliseconds 0..{SSE_MAX_RETRY}, "
                             f"not {retry!r}")
        else:
            ms = retry
        ev = event.encode("utf-8") if event is not None else ffi.NULL
        ident = str(id).encode("utf-8") if id is not None else ffi.NULL
        r: int = lib.sse_write(self.conn, raw, len(raw), ev, len(ev) if event is not None else 0,
                               ident, len(ident) if id is not None else 0, ms)
        if r == -2:
            raise ValueError("SSE event names and ids cannot contain line breaks")
        return r == 0

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close once queued data is sent (WebSocket: a Close frame with
        `code` and `reason`). The code must be one an application may send:
        1000 (normal), 1001 (going away), 1008 (policy violation), 1011
        (internal error) or 3000-4999; the reason at most 123 bytes of
        UTF-8. Anything else raises ValueError. SSE ignores both."""
        raw = check_close(code, reason)
        if self._via_raw:
            # a raw connection, or a WebSocket client (Iodine.connect): raw.c
            # sends the Close with the code (its reason is not carried yet)
            lib.up_close(self.conn, int(code))
        elif self.protocol == "websocket":
            lib.ws_close(self.conn, int(code), raw, len(raw))
        else:
            lib.up_close(self.conn, int(code))

    def is_open(self) -> bool:
        return self._open and bool(lib.up_is_open(self.conn))

    def pending(self) -> int:
        """Writes still queued; -1 once closed. When this was above 0,
        on_drained runs as it reaches 0."""
        if not self._open:
            return -1
        return int(lib.up_pending(self.conn))

    @property
    def handler(self) -> Any:
        return self._handler

    @handler.setter
    def handler(self, new: Any) -> None:
        """Replace the callback object: the old one's on_close runs, then the
        new one's on_open (call it from one of this connection's callbacks,
        so the order holds)."""
        old_close = self._cb[4]
        if old_close is not None:
            try:
                old_close(self)
            except Exception:
                log_callback_error("on_close")
        self._set_handler(new)
        self._env["rack.upgrade"] = self._handler
        if self._cb[0] is not None and self._open:
            try:
                self._cb[0](self)
            except Exception:
                log_callback_error("on_open")

    @property
    def timeout(self) -> float:
        """Seconds of silence before a ping (WebSocket; a second silent
        period closes) or a keep-alive comment (SSE)."""
        ms = lib.up_timeout(self.conn, -1)
        return ms / 1000.0 if ms >= 0 else 0.0

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        lib.up_timeout(self.conn, int(max(0.0, float(seconds)) * 1000))

    # -- pub/sub ----------------------------------------------------------------
    def subscribe(self, channel: Union[str, bytes],
                  callback: Optional[Callable[..., Any]] = None,
                  pattern: bool = False, *, since: Optional[str] = None,
                  as_binary: Optional[bool] = None,
                  with_id: bool = False) -> Union[bool, Resume, None]:
        """Subscribe this connection. Without a callback each message goes
        straight to the peer from C (WebSocket: text for str, binary for
        bytes, or as `as_binary` says: True always binary, False text when
        the bytes are UTF-8; SSE: an event with ``id:``). With one,
        callback(client, channel, message) runs instead (with `with_id`,
        also id="ms-seq"). Subscribing again to the same channel replaces
        the old subscription; all end with the connection.

        `since` (a message id "ms-seq"; an SSE client's Last-Event-ID by
        default): first every kept message after it (``history``), in
        order, then the live ones, none twice. Returns a truthy
        ``Resume(replayed, complete)`` then, True otherwise; None when
        closed. Not for patterns (ValueError)."""
        return client_subscribe(self, channel, callback, pattern, since, as_binary, with_id)

    def unsubscribe(self, channel: Union[str, bytes], pattern: bool = False) -> bool:
        return client_unsubscribe(self, channel, pattern)

    def publish(self, channel: Union[str, bytes], message: Union[str, bytes],
                engine: EngineArg = None) -> bool:
        return publish(channel, message, engine)

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<iodine Client {self.protocol} #{self.conn:x} {state}>"


class ClientRuntime(Protocol):
    """What dispatch needs of the runtime (server.Runtime is one): the open
    clients by connection, and the news that one closed."""

    @property
    def clients(self) -> Dict[int, Client]: ...

    def on_client_closed(self, client: Client) -> None: ...


def on_message(runtime: ClientRuntime, conn: int, data: Union[str, bytes]) -> None:
    """A WebSocket message for conn's on_message (str: text, bytes: binary)."""
    client = runtime.clients.get(conn)
    if client is None or client._cb[1] is None:
        return
    try:
        client._cb[1](client, data)
    except Exception:
        log_callback_error("on_message")


def dispatch(runtime: ClientRuntime, kind: int, conn: int, ptr: Any, ptr_arg: int = 0) -> None:
    """Run one upgraded-connection event (the core orders them)."""
    client = runtime.clients.get(conn)
    if kind == MESSAGE:  # (the C event path delivers most: on_message below)
        msg = ffi.cast("ws_msg *", ptr)
        data = ffi.unpack(msg.data, msg.len)
        text = msg.text
        lib.ws_msg_done(msg)  # reading may resume before the app is done
        on_message(runtime, conn, data.decode("utf-8") if text else data)
        return
    if kind == FAIL:  # earlier messages are handled; now the Close
        if ptr == ffi.NULL:  # a protocol error: our code, nothing from the peer
            lib.up_close(conn, int(ptr_arg))
            return
        # the peer's Close: keep its code and reason for on_close, echo both
        msg = ffi.cast("ws_msg *", ptr)
        reason = ffi.unpack(msg.data, msg.len)
        lib.ws_msg_done(msg)
        if client is not None:
            client.close_code = int(ptr_arg) or 1005  # 1005: it had no code
            client.close_reason = reason.decode("utf-8")  # checked by the core
        lib.ws_close(conn, int(ptr_arg), reason, len(reason))
        return
    if client is None:
        return
    if kind == CLOSE:
        client._open = False
        runtime.clients.pop(conn, None)
        runtime.on_client_closed(client)
        cb = client._cb[4]
        name = "on_close"
    elif kind == OPEN:
        cb, name = client._cb[0], "on_open"
        if client._via_raw and client.protocol == "websocket":  # Iodine.connect("ws://...")
            buf = ffi.new("char[]", 128)
            if lib.raw_subprotocol(conn, buf, 128) > 0:
                client._env["subprotocol"] = ffi.string(buf).decode("latin-1")
    elif kind == DRAINED:
        cb, name = client._cb[2], "on_drained"
    elif kind == SHUTDOWN:
        cb, name = client._cb[3], "on_shutdown"
    else:
        return
    if cb is not None:
        try:
            cb(client)
        except Exception:
            log_callback_error(name)
    if kind == SHUTDOWN:
        lib.up_close(conn, 1001)  # going away, after on_shutdown had its say
