"""Raw connections: raw TCP/Unix/TLS services (``Iodine.listen(factory,
service="raw")``) and outgoing client connections (``Iodine.connect``).

Both hand a callback object the same :class:`~iodine_py.client.Client` as a
WebSocket does (protocol ``"raw"``): on_open, on_message(client, data:
bytes) as bytes arrive (no framing: one call per read), on_drained,
on_shutdown, on_close; write(bytes), close(), pending(), timeout,
subscribe/unsubscribe/publish (a subscription without a callback delivers
each message's bytes as they are). ``client.close_reason`` says why the
connection ended ("peer closed", "connect: Connection refused", "connect
timeout", "idle timeout", "dns: ...", "tls: certificate verify failed: ...").

The C core (ext/raw.c) owns every socket. Python only resolves host names,
off the loop thread (a short-lived thread per connect to a name; numeric
addresses and Unix paths go straight to C), and turns the core's events
into calls: DSP_RAW_BIND names the callback object (a listener's factory
by its tag, or the handler a connect registered under a token), then
DSP_OPEN, DSP_RAW_DATA..., DSP_RAW_CLOSE last; a connect that failed
before it had a socket (a name that did not resolve) is one
DSP_RAW_FAILED, which runs on_close alone.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import itertools
import os
import socket
import threading
from typing import Any, Dict, Iterable, Optional, Protocol, Sequence, Tuple
from urllib.parse import urlsplit

from ._native import ffi, lib
from .config import Listener
from .client import CLOSE, Client, ClientRuntime, log_callback_error, resolve_handler
from .client import dispatch as client_dispatch

BIND, DATA = lib.DSP_RAW_BIND, lib.DSP_RAW_DATA
RAW_CLOSE, FAILED = lib.DSP_RAW_CLOSE, lib.DSP_RAW_FAILED
KINDS = frozenset((BIND, DATA, RAW_CLOSE, FAILED))

# Tokens below this are listener tags; connects count up from it.
TOKEN_BASE = 1 << 32
_tokens = itertools.count(TOKEN_BASE)
_pending: Dict[int, Tuple[Any, str]] = {}  # token -> (handler, protocol), until BIND/FAILED
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_lock = threading.Lock()
_tls_ctxs: Dict[Tuple[Optional[str], bool], Any] = {}


def _is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def parse_url(url: str) -> Tuple[str, str, int, str]:
    """(scheme, host or unix:/path, port, request target) for
    tcp://host:port, tls://host:port, unix:/path, ws://host[:port][/path]
    and wss://... ValueError for anything else."""
    if url.startswith("unix:"):
        path = url[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"{url!r}: unix: needs a path")
        return "unix", "unix:" + path, 0, ""
    parts = urlsplit(url)
    if parts.scheme not in ("tcp", "tls", "ws", "wss"):
        raise ValueError(f"{url!r}: expected tcp://host:port, tls://host:port, unix:/path, "
                         "ws://host/path or wss://host/path")
    port = parts.port
    if port is None and parts.scheme in ("ws", "wss"):
        port = 80 if parts.scheme == "ws" else 443
    if not parts.hostname or port is None:
        raise ValueError(f"{url!r}: needs a host and a port")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, target


def _token(value: str, what: str) -> str:
    if not value or any(c in value for c in "\r\n\0") or not value.isprintable():
        raise ValueError(f"bad {what}: {value!r}")
    return value


def ws_request(host: str, port: int, default_port: int, target: str,
               headers: Optional[Iterable[Tuple[str, str]]],
               subprotocols: Optional[Sequence[str]]) -> Tuple[bytes, str, str]:
    """The handshake request, the Sec-WebSocket-Accept it must get back, and
    the offered subprotocols (comma-separated)."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest())
    h = f"[{host}]" if ":" in host else host
    if port != default_port:
        h += f":{port}"
    lines = [f"GET {target} HTTP/1.1", f"Host: {h}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    offered = ", ".join(_token(p, "subprotocol") for p in (subprotocols or ()))
    if offered:
        lines.append(f"Sec-WebSocket-Protocol: {offered}")
    for name, value in headers or ():
        lines.append(f"{_token(name, 'header name')}: {_token(value, 'header value')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), accept.decode("ascii"), offered


def _tls_ctx(ca: Optional[str], verify: bool) -> Any:
    key = (ca, verify)
    with _lock:
        ctx = _tls_ctxs.get(key)
        if ctx is None:
            err = ffi.new("char[]", 256)
            ctx = lib.tls_client_ctx_new(ca.encode() if ca else ffi.NULL, int(verify), err, 256)
            if ctx == ffi.NULL:
                raise ValueError(ffi.string(err).decode("utf-8", "replace"))
            _tls_ctxs[key] = ctx  # kept for the process's life: a handful at most
        return ctx


def connect(url: str, handler: Any, *, timeout: float, idle: float, max_pending: int,
            max_msg: int, tls_verify: bool = True, tls_ca: Optional[str] = None,
            headers: Optional[Iterable[Tuple[str, str]]] = None,
            subprotocols: Optional[Sequence[str]] = None) -> None:
    """See Iodine.connect."""
    scheme, host, port, target = parse_url(url)
    ws = scheme in ("ws", "wss")
    if (headers or subprotocols) and not ws:
        raise ValueError("headers and subprotocols are for ws:// and wss:// connections")
    secure = scheme in ("tls", "wss")
    tls = _tls_ctx(tls_ca, tls_verify) if secure else ffi.NULL
    keep = []  # cdata the call below reads (C copies it all)
    opts = ffi.NULL
    if ws:
        request, accept, offered = ws_request(host, port, 443 if secure else 80, target,
                                              headers, subprotocols)
        keep = [ffi.new("char[]", request), ffi.new("char[]", accept.encode()),
                ffi.new("char[]", offered.encode())]
        opts = ffi.new("raw_ws_opts *", {"request": keep[0], "request_len": len(request),
                                         "accept": keep[1], "protocols": keep[2]})
    rc = lib.srv_init()  # idempotent: the loop must exist to hold the socket
    if rc < 0:
        raise OSError(-rc, "cannot start the core")
    settings = ffi.new("http_settings *", {
        "max_pending": max_pending, "ping_ms": int(idle * 1000),
        "ws_max_msg": max_msg if ws else 0})
    token = next(_tokens)
    with _lock:
        _pending[token] = (handler, "websocket" if ws else "raw")
    timeout_ms = max(0, int(timeout * 1000))
    servername = host.encode() if secure else ffi.NULL

    def go(addr: str) -> None:
        lib.raw_connect(addr.encode(), port, settings, tls, servername, timeout_ms, token, opts)
        del keep[:]

    if scheme == "unix" or _is_numeric(host):
        go(host)
        return

    def resolve() -> None:  # off the loop thread: getaddrinfo blocks
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            lib.raw_fail(token, f"dns: {host}: {e.strerror or e}".encode("utf-8", "replace"))
            return
        go(str(infos[0][4][0]))

    threading.Thread(target=resolve, name="iodine-resolve", daemon=True).start()


class RawRuntime(ClientRuntime, Protocol):
    """What dispatch needs of the runtime (server.Runtime is one): a raw
    service's factory is its listener's app, found by the listener's tag."""

    @property
    def listeners(self) -> Sequence[Listener]: ...


def dispatch(runtime: RawRuntime, kind: int, conn: int, ptr: Any, arg: int) -> None:
    """Run one raw-connection event (the core orders a connection's events)."""
    if kind == DATA:
        msg = ffi.cast("raw_msg *", ptr)
        data: Any = ffi.unpack(msg.data, msg.len)
        if msg.text:  # a WebSocket client's text message (checked UTF-8 in C)
            data = data.decode("utf-8")
        client = runtime.clients.get(conn)
        try:
            if client is not None and client._cb[1] is not None:
                client._cb[1](client, data)
        except Exception:
            log_callback_error("on_message")
        finally:
            # after the callback: what it wrote goes out before a half-close
            lib.raw_msg_done(msg)
        return
    if kind == BIND:
        protocol = "raw"
        if arg >= TOKEN_BASE:
            with _lock:
                entry = _pending.pop(arg, None)
            if entry is None:
                return
            handler, protocol = entry
        else:
            handler = runtime.listeners[arg].app
        try:
            handler = resolve_handler(handler)
        except Exception:
            log_callback_error("the raw service's factory")
            lib.up_close(conn, 1000)
            return
        client = Client(conn, {}, handler, protocol)
        client._via_raw = True
        runtime.clients[conn] = client
        return
    text = ffi.cast("char *", ptr)
    reason = ffi.string(text).decode("utf-8", "replace") if text != ffi.NULL else "closed"
    lib.raw_str_free(text)
    if kind == RAW_CLOSE:
        client = runtime.clients.get(conn)
        if client is not None:
            client.close_reason = reason
        client_dispatch(runtime, CLOSE, conn, ffi.NULL)
        return
    # FAILED: no socket ever existed; on_close alone
    with _lock:
        entry = _pending.pop(arg, None)
    if entry is None:
        return
    try:
        client = Client(0, {}, resolve_handler(entry[0]), entry[1])
    except Exception:
        log_callback_error("the connect handler")
        return
    client._open = False
    client.close_reason = reason
    cb = client._cb[4]
    if cb is not None:
        try:
            cb(client)
        except Exception:
            log_callback_error("on_close")
