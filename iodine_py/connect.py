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

import ipaddress
import itertools
import socket
import threading
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

from ._native import ffi, lib
from .client import Client, log_callback_error, resolve_handler

BIND, DATA = lib.DSP_RAW_BIND, lib.DSP_RAW_DATA
RAW_CLOSE, FAILED = lib.DSP_RAW_CLOSE, lib.DSP_RAW_FAILED
KINDS = frozenset((BIND, DATA, RAW_CLOSE, FAILED))

# Tokens below this are listener tags; connects count up from it.
TOKEN_BASE = 1 << 32
_tokens = itertools.count(TOKEN_BASE)
_pending: Dict[int, Any] = {}  # token -> handler, until DSP_RAW_BIND/FAILED
_lock = threading.Lock()
_tls_ctxs: Dict[Tuple[Optional[str], bool], Any] = {}


def _is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def parse_url(url: str) -> Tuple[str, str, int]:
    """(scheme, host or unix:/path, port) for tcp://host:port, tls://host:port
    and unix:/path. ValueError for anything else."""
    if url.startswith("unix:"):
        path = url[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"{url!r}: unix: needs a path")
        return "unix", "unix:" + path, 0
    parts = urlsplit(url)
    if parts.scheme not in ("tcp", "tls"):
        raise ValueError(f"{url!r}: expected tcp://host:port, tls://host:port or unix:/path")
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r}: needs a host and a port")
    return parts.scheme, parts.hostname, parts.port


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
            tls_verify: bool = True, tls_ca: Optional[str] = None) -> None:
    """See Iodine.connect."""
    scheme, host, port = parse_url(url)
    tls = _tls_ctx(tls_ca, tls_verify) if scheme == "tls" else ffi.NULL
    rc = lib.srv_init()  # idempotent: the loop must exist to hold the socket
    if rc < 0:
        raise OSError(-rc, "cannot start the core")
    settings = ffi.new("http_settings *", {
        "max_pending": max_pending, "ping_ms": int(idle * 1000), "ws_max_msg": 0})
    token = next(_tokens)
    with _lock:
        _pending[token] = handler
    timeout_ms = max(0, int(timeout * 1000))
    servername = host.encode() if scheme == "tls" else ffi.NULL

    def go(addr: str) -> None:
        lib.raw_connect(addr.encode(), port, settings, tls, servername, timeout_ms, token)

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


def dispatch(runtime: Any, kind: int, conn: int, ptr: Any, arg: int) -> None:
    """Run one raw-connection event (the core orders a connection's events)."""
    if kind == DATA:
        msg = ffi.cast("raw_msg *", ptr)
        data = ffi.unpack(msg.data, msg.len)
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
        if arg >= TOKEN_BASE:
            with _lock:
                handler = _pending.pop(arg, None)
        else:
            handler = runtime.listeners[arg].app
        if handler is None:
            return
        try:
            handler = resolve_handler(handler)
        except Exception:
            log_callback_error("the raw service's factory")
            lib.up_close(conn, 1000)
            return
        runtime.clients[conn] = Client(conn, {}, handler, "raw")
        return
    text = ffi.cast("char *", ptr)
    reason = ffi.string(text).decode("utf-8", "replace") if text != ffi.NULL else "closed"
    lib.raw_str_free(text)
    if kind == RAW_CLOSE:
        client = runtime.clients.get(conn)
        if client is not None:
            client.close_reason = reason
        from .client import CLOSE, dispatch as client_dispatch

        client_dispatch(runtime, CLOSE, conn, ffi.NULL)
        return
    # FAILED: no socket ever existed; on_close alone
    with _lock:
        handler = _pending.pop(arg, None)
    if handler is None:
        return
    try:
        client = Client(0, {}, resolve_handler(handler), "raw")
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
