"""The Redis pub/sub engine: a typed face on ext/redis.c.

``Iodine.PubSub.default = Iodine.PubSub.Redis("redis://:secret@host:6379/0")``
or ``iodine app.py -r redis://host:6379/0``. Every process of every server
sharing the Redis server then sees every message, once, in order.

The engine lives in the C loop (SPEC-PubSub.md section 7): each serving
process holds two connections, one for commands (XADD, PING, ``cmd``) and
one reading the deployment's stream. Every publish is one stream entry;
every process reads the whole stream from its own position and delivers
each entry to its own subscribers, from C. Nothing here blocks: ``publish``
enqueues and returns, ``subscribe``/``unsubscribe`` need no Redis command
(the stream carries every channel), and ``cmd`` hands its reply to a
callback on the loop. Why RESP from C and not redis-py: no blocking call on
the loop thread, no Python per message, and 100,000+ messages per second
from one worker.

Message types: the stream entry records whether a message was published as
``str`` or ``bytes``, and it is delivered as it was published.

Forked workers: the engine is configured once (in the master, before
forking); each worker starts with a fresh publisher token and its own
connections. A cluster's master holds no Redis connection: publishing
through the engine from the master process returns False.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import unquote, urlsplit

from . import cluster as _cluster
from ._native import ffi, lib
from .config import DEFAULT_REDIS_PING, ConfigError
from .log import logger
from .engines import Engine, Message

#: The engine sequences every message through one Redis stream (SPEC-PubSub
#: section 7.2), so messages carry the stream entry id deployment-wide.
STREAM_ENGINE = True

Reply = Any  # str | bytes | int | None | list | RedisError

_rd_publish = lib.rd_publish
_callbacks: Dict[int, Callable[[Reply], Any]] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


class RedisError(Exception):
    """An error reply from Redis (or from the engine: "ERR iodine: ...")."""


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, (bytearray, memoryview)):
        return bytes(a)
    if isinstance(a, str):
        return a.encode("utf-8")
    if isinstance(a, bool):
        return b"1" if a else b"0"
    if isinstance(a, (int, float)):
        return repr(a).encode("ascii")
    raise TypeError(f"a Redis argument must be str, bytes or a number, not {type(a).__name__}")


def _convert(reply: Any) -> Reply:
    """The nodes of a parsed reply (pre-order) as Python values."""
    nodes = reply.nodes
    count = reply.n
    pos = 0

    def one() -> Reply:
        nonlocal pos
        nd = nodes[pos]
        pos += 1
        t = nd.type
        if t == 43:  # '+'
            return ffi.unpack(nd.str, nd.len).decode("utf-8", "replace")
        if t == 45:  # '-'
            return RedisError(ffi.unpack(nd.str, nd.len).decode("utf-8", "replace"))
        if t == 58:  # ':'
            return int(nd.n)
        if t == 36:  # '$'
            return None if nd.n < 0 else ffi.unpack(nd.str, nd.len)
        if nd.n < 0:  # '*' nil
            return None
        return [one() for _ in range(nd.n)]

    out = one() if count else None
    return out


def _parse_url(url: str) -> Dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        db = 0
        for kv in parts.query.split("&"):
            if kv.startswith("db="):
                db = int(kv[3:])
        return {"host": "unix:" + parts.path, "port": 0, "user": None,
                "password": unquote(parts.password) if parts.password else None, "db": db}
    if parts.scheme != "redis":
        raise ConfigError(f"the Redis engine speaks redis:// and unix:// URLs, not {url!r}"
                         + (" (TLS to Redis is not supported)" if parts.scheme == "rediss" else ""))
    path = parts.path.strip("/")
    return {"host": parts.hostname or "localhost", "port": parts.port or 6379,
            "user": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password is not None else None,
            "db": int(path) if path else 0}


class RedisEngine(Engine):
    """A pub/sub engine backed by a Redis server (one per process: a new one
    replaces the last). Every option is also a documented limit in
    LIMITS.md ("Redis engine")."""

    def __init__(self, url: str = "redis://localhost:6379/0", ping: float = DEFAULT_REDIS_PING,
                 queue_size: int = 10000, backoff_max: float = 5.0,
                 timeout: Optional[float] = None, queue_bytes: int = 64 << 20,
                 stream: str = "iodine:pubsub", stream_max: int = 100000,
                 backoff_min: float = 0.05, block: float = 1.0) -> None:
        where = _parse_url(url)
        if ping <= 0 or queue_size < 1 or queue_bytes < 1024 or stream_max < 1:
            raise ConfigError("ping, queue_size, queue_bytes and stream_max must be positive")
        self.url = url
        self.ping = float(ping)
        self.timeout = float(timeout) if timeout is not None else min(self.ping, 5.0)
        self.queue_size = int(queue_size)
        self.queue_bytes = int(queue_bytes)
        self.backoff_max = float(backoff_max)
        self.stream = stream
        self.stream_max = int(stream_max)
        self._where = f"{where['host']}:{where['port']}/{where['db']}"
        keep: List[Any] = []

        def cstr(s: Optional[str]) -> Any:
            if s is None:
                return ffi.NULL
            b = ffi.new("char[]", s.encode("utf-8"))
            keep.append(b)
            return b

        s = ffi.new("rd_settings *")
        s.host = cstr(where["host"])
        s.port = where["port"]
        s.user = cstr(where["user"])
        s.password = cstr(where["password"])
        s.db = where["db"]
        s.stream = cstr(stream)
        s.stream_max = self.stream_max
        s.ping_ms = max(1, int(self.ping * 1000))
        s.timeout_ms = max(1, int(self.timeout * 1000))
        s.backoff_min_ms = max(1, int(backoff_min * 1000))
        s.backoff_max_ms = max(1, int(self.backoff_max * 1000))
        s.block_ms = max(1, int(block * 1000))
        s.queue_max = self.queue_size
        s.queue_bytes = self.queue_bytes
        lib.srv_init()
        rc = lib.rd_configure(s)
        if rc < 0:
            raise ConfigError(f"cannot use Redis at {url!r}: the host does not resolve")
        self._master_said = False

    # -- the engine interface (called by the server) ----------------------------------
    def subscribe(self, channel: str, pattern: bool = False) -> bool:
        """Nothing to do: the stream carries every channel, and each process
        delivers to its own subscribers. Returns at once."""
        return True

    def unsubscribe(self, channel: str, pattern: bool = False) -> bool:
        return True

    def publish(self, channel: str, message: Message) -> bool:
        """Queue the message for Redis and return at once (any thread). False
        when the queue is full (Redis away too long) or in a cluster's
        master, which holds no Redis connection."""
        if _cluster.role == "master":
            if not self._master_said:
                self._master_said = True
                logger.warning("redis: a publish in the master process is not sent "
                               "(only workers hold Redis connections)")
            return False
        # the hot path (one call per message): plain type checks, one call into C
        name = channel.encode("utf-8", "surrogateescape") if isinstance(channel, str) \
            else bytes(channel)
        if type(message) is str:
            data = message.encode("utf-8")
            return bool(_rd_publish(name, len(name), data, len(data), 1) == 0)
        if isinstance(message, (bytes, bytearray, memoryview)):
            data = bytes(message)
            return bool(_rd_publish(name, len(name), data, len(data), 0) == 0)
        raise TypeError(f"message must be str or bytes, not {type(message).__name__}")

    # -- commands ------------------------------------------------------------------------
    @staticmethod
    def _argv(args: Any) -> Any:
        if not args:
            raise ValueError("a Redis command needs at least its name")
        raw = [_arg(a) for a in args]
        bufs = [ffi.new("char[]", r) for r in raw]
        argv = ffi.new("char *[]", bufs)
        lens = ffi.new("size_t[]", [len(r) for r in raw])
        return raw, bufs, argv, lens

    def cmd(self, *args: Any, callback: Optional[Callable[[Reply], Any]] = None) -> bool:
        """Send a command on the engine's command connection and return at
        once. ``callback(reply)`` (if given) runs on the loop with the reply:
        str (status), bytes (bulk), int, None, list, or a RedisError. False
        when the command queue is full."""
        raw, bufs, argv, lens = self._argv(args)
        cid = 0
        if callback is not None:
            if not callable(callback):
                raise TypeError("callback must be callable")
            cid = next(_ids)
            with _lock:
                _callbacks[cid] = callback
        rc = lib.rd_cmd(len(raw), argv, lens, cid)
        if rc < 0 and cid:
            with _lock:
                _callbacks.pop(cid, None)
        return bool(rc == 0)

    def cmd_wait(self, *args: Any, timeout: float = 5.0) -> Reply:
        """Send a command and wait (at most ``timeout`` seconds) for its
        reply. For application threads only: on the loop thread (``-t 1``)
        it raises RuntimeError, since waiting there would stall the server.
        An error reply raises RedisError; no reply in time raises
        TimeoutError."""
        if lib.rx_in_loop_thread():
            raise RuntimeError("cmd_wait() would block the server's loop: use "
                               "cmd(..., callback=...) there (or run with -t 2 or more)")
        raw, bufs, argv, lens = self._argv(args)
        err = ffi.new("int *")
        r = lib.rd_cmd_wait(len(raw), argv, lens, max(0, int(timeout * 1000)), err)
        if r == ffi.NULL:
            if err[0] == -3:
                raise TimeoutError(f"no reply from Redis within {timeout} s")
            if err[0] == -4:
                raise RuntimeError("cmd_wait() would block the server's loop")
            raise RedisError("ERR iodine: the command queue is full or the engine is gone")
        try:
            out = _convert(r)
        finally:
            lib.rd_reply_free(r)
        if isinstance(out, RedisError):
            raise out
        return out

    # -- state ---------------------------------------------------------------------------
    def stats(self) -> Dict[str, int]:
        st = ffi.new("rd_stats *")
        lib.rd_get_stats(st)
        return {k: int(getattr(st, k)) for k in ("configured", "connected", "queued",
                                                 "queued_bytes", "refused", "delivered",
                                                 "duplicates", "reconnects")}

    @property
    def connected(self) -> bool:
        return bool(self.stats()["connected"])

    @property
    def queued(self) -> int:
        return self.stats()["queued"]

    def close(self) -> None:
        """Drop the connections and everything queued."""
        lib.rd_unconfigure()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<iodine PubSub.Redis {self._where} {state}>"


# -- events from the core --------------------------------------------------------

def on_reply(ptr: Any, callback_id: int) -> None:
    r = ffi.cast("rd_reply *", ptr)
    try:
        value = _convert(r)
    finally:
        lib.rd_reply_free(r)
    with _lock:
        cb = _callbacks.pop(callback_id, None)
    if cb is not None:
        cb(value)


def on_log(ptr: Any, length: int, warning: int) -> None:
    line = ffi.cast("char *", ptr)
    try:
        text = ffi.unpack(line, length).decode("utf-8", "replace")
    finally:
        lib.rd_log_free(line)
    (logger.warning if warning else logger.info)(text)


__all__ = ["RedisEngine", "RedisError", "Reply"]
