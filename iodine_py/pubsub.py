"""Pub/sub: the Python face of ext/pubsub.c, and the management of engines
(the engines themselves are in iodine_py/engines.py and redis_engine.py).

Subscriptions and fan-out live in C. A subscription without a callback
sends each message straight to its connection from C (framed once, shared
by every recipient); with a callback, C posts an event and the callback runs
here. Channel names are str (bytes are accepted and decoded as UTF-8 with
surrogateescape, so any bytes round-trip). Messages keep their type: a str
published goes out as a WebSocket text frame, bytes as binary.

Every message a sequencer numbers gets an id in Redis stream id form
"ms-seq" (SPEC-PubSub.md, "Message ids, history and resume"): SSE events
carry it as ``id:``, callbacks subscribed ``with_id=True`` get it, and with
``history`` on, the last messages of each channel are kept so a subscriber
can resume (``client.subscribe(channel, since=id)``; an SSE client's
Last-Event-ID does it by default). Messages published with
``engine=False`` (this process only) have no id and are not kept.

Engines carry messages beyond this process (``Iodine.PubSub.attach``). An
engine is any object with ``subscribe(channel, pattern)``,
``unsubscribe(channel, pattern)`` and ``publish(channel, message)``; the
server calls ``subscribe`` once per channel per *process* when its first
subscriber appears (and ``unsubscribe`` when its last one leaves), however
many clients share it. An engine delivers what it receives with
``Iodine.publish(channel, message, engine=False)`` (this process only).
"""
from __future__ import annotations

import itertools
import threading
from typing import (Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Protocol,
                    Set, Tuple, Union)

from ._native import ffi, lib

from .engines import (ClusterEngine, Engine, EngineArg, EngineLike, Message, ProcessEngine,
                      _name, format_id, parse_id, publish_local)
from .log import log_exception
from .redis_engine import RedisEngine

__all__ = ["ClusterEngine", "Engine", "EngineArg", "EngineLike", "Message", "ProcessEngine",
           "PubSub", "Resume", "format_id", "parse_id", "publish", "publish_local", "subscribe",
           "unsubscribe"]

_callbacks: Dict[int, Callable[..., Any]] = {}
_with_id: Set[int] = set()  # callbacks that take the message id (id=...)
_ids = itertools.count(1)
_global: Dict[Tuple[str, bool], int] = {}
_lock = threading.Lock()
# Channels and patterns with subscribers in this process, as the core
# announced them: what a newly attached engine must learn.
_live: Set[Tuple[str, bool]] = set()


def _register(callback: Optional[Callable[..., Any]], with_id: bool = False) -> int:
    if callback is None:
        return 0
    if not callable(callback):
        raise TypeError("callback must be callable")
    cid = next(_ids)
    _callbacks[cid] = callback
    if with_id:
        _with_id.add(cid)
    return cid


def _forget(cid: Optional[int]) -> None:
    if cid:
        _callbacks.pop(cid, None)
        _with_id.discard(cid)


class Resume(NamedTuple):
    """What ``subscribe(..., since=...)`` found (truthy, like True):
    `replayed` kept messages went to the subscriber before the live ones;
    `complete` is False when some messages after `since` may be missing
    (history off, or `since` older than what it holds)."""

    replayed: int
    complete: bool


class _PubSub:
    """``Iodine.PubSub``: engines and their management."""

    Engine = Engine
    PROCESS: ProcessEngine = ProcessEngine()
    CLUSTER: ClusterEngine = ClusterEngine()

    def __init__(self) -> None:
        self._engines: List[EngineLike] = []
        self._default: EngineLike = self.CLUSTER

    @property
    def default(self) -> EngineLike:
        """Where ``publish`` goes when no engine is named."""
        return self._default

    @default.setter
    def default(self, engine: Optional[EngineLike]) -> None:
        if engine is None:
            engine = self.CLUSTER
        if not callable(getattr(engine, "publish", None)):
            raise TypeError("an engine needs a publish(channel, message) method")
        self._default = engine
        if engine not in (self.CLUSTER, self.PROCESS) and engine not in self._engines:
            self.attach(engine)

    def attach(self, engine: EngineLike) -> None:
        """Start telling `engine` about this process's channels (those that
        exist now, and those to come)."""
        for name in ("subscribe", "unsubscribe", "publish"):
            if not callable(getattr(engine, name, None)):
                raise TypeError(f"an engine needs a {name}() method")
        with _lock:
            if engine in self._engines:
                return
            self._engines.append(engine)
            live = list(_live)
        for channel, pattern in live:
            _tell(engine, "subscribe", channel, pattern)

    def detach(self, engine: EngineLike) -> None:
        with _lock:
            if engine in self._engines:
                self._engines.remove(engine)
        if self._default is engine:
            self._default = self.CLUSTER

    def reset(self, engine: EngineLike) -> None:
        """Tell `engine` about every live channel again, as if newly attached
        (an engine that lost its connection calls this after reconnecting)."""
        with _lock:
            live = list(_live)
        for channel, pattern in live:
            _tell(engine, "subscribe", channel, pattern)

    @property
    def engines(self) -> List[EngineLike]:
        return list(self._engines)

    def Redis(self, url: str, **options: Any) -> RedisEngine:
        return RedisEngine(url, **options)


PubSub = _PubSub()


def _tell(engine: EngineLike, what: str, channel: str, pattern: bool) -> None:
    try:
        getattr(engine, what)(channel, pattern)
    except Exception:
        log_exception(f"the pub/sub engine's {what}()")


# -- the application-facing calls --------------------------------------------

def publish(channel: Union[str, bytes], message: Message, engine: EngineArg = None) -> bool:
    """Publish to every subscriber the engine reaches (default: the whole
    cluster of this server). ``engine=False``: this process only."""
    if engine is False:
        return publish_local(channel, message)
    if engine is None:
        engine = PubSub.default
    return bool(engine.publish(channel.decode("utf-8", "surrogateescape")
                               if isinstance(channel, bytes) else channel, message))


def subscribe(channel: Union[str, bytes], callback: Callable[..., Any],
              pattern: bool = False, with_id: bool = False) -> bool:
    """An application-wide subscription: callback(channel, message) runs for
    every message (in publish order, one at a time); with `with_id`,
    callback(channel, message, id=ID) (ID "ms-seq", or None)."""
    if callback is None:
        raise TypeError("a global subscription needs a callback")
    name = _name(channel)
    key = (name.decode("utf-8", "surrogateescape"), bool(pattern))
    cid = _register(callback, with_id)
    lib.srv_init()
    with _lock:
        r = lib.ps_subscribe(0, name, len(name), int(bool(pattern)), cid)
        if r < 0:
            _forget(cid)
            return False
        old = _global.get(key)
        _global[key] = cid
    _forget(old)
    if r == 1:
        _channel_added(*key)
    return True


def unsubscribe(channel: Union[str, bytes], pattern: bool = False) -> bool:
    name = _name(channel)
    key = (name.decode("utf-8", "surrogateescape"), bool(pattern))
    lib.srv_init()
    with _lock:
        found: bool = lib.ps_unsubscribe(0, name, len(name), int(bool(pattern))) >= 0
        cid = _global.pop(key, None)
    _forget(cid)
    return found


_AS = {None: 0, False: 1, True: 2}  # as_binary -> PS_AS_* (ext/pubsub.h)


def client_subscribe(client: Any, channel: Union[str, bytes],
                     callback: Optional[Callable[..., Any]], pattern: bool,
                     since: Optional[str] = None, as_binary: Optional[bool] = None,
                     with_id: bool = False) -> Union[bool, Resume, None]:
    name = _name(channel)
    key = (name.decode("utf-8", "surrogateescape"), bool(pattern))
    if as_binary not in _AS:
        raise TypeError("as_binary must be None, True or False")
    sid: Any = ffi.NULL
    if since is not None:
        if pattern:
            raise ValueError("since= needs a channel: history is kept per channel, not pattern")
        sid = parse_id(since)
        if sid is None:
            raise ValueError(f"since= takes a message id 'ms-seq' (decimal), not {since!r}")
    elif client.protocol == "sse" and not pattern:
        # an EventSource reconnecting sends the last id it saw: resume from it
        # (an id the application set itself, not in ms-seq form, is left alone)
        last = client.env.get("HTTP_LAST_EVENT_ID")
        if last:
            sid = parse_id(last) or ffi.NULL
    cid = _register(callback, with_id)
    out = ffi.new("ps_resume *")
    r = lib.ps_subscribe_as(client.conn, name, len(name), int(bool(pattern)), cid,
                            _AS[as_binary], sid, out)
    if r < 0:
        _forget(cid)
        return None  # the connection is closed
    old = client.subscriptions.get(key)
    client.subscriptions[key] = cid
    _forget(old)
    if r == 1:
        _channel_added(*key)
    if sid != ffi.NULL:
        return Resume(int(out.replayed), bool(out.complete))
    return True


def client_unsubscribe(client: Any, channel: Union[str, bytes], pattern: bool) -> bool:
    name = _name(channel)
    key = (name.decode("utf-8", "surrogateescape"), bool(pattern))
    found: bool = lib.ps_unsubscribe(client.conn, name, len(name), int(bool(pattern))) >= 0
    cid = client.subscriptions.pop(key, None)
    _forget(cid)
    return found


def forget_client(client: Any) -> None:
    """The core dropped the connection's subscriptions; drop the callbacks."""
    for cid in client.subscriptions.values():
        _forget(cid)
    client.subscriptions.clear()


# -- events from the core ------------------------------------------------------

class SubscriberRuntime(Protocol):
    """What on_message needs of the runtime (server.Runtime is one): the
    client a connection's callback gets (a client.Client, which imports this
    module: here it is only what the callback is handed)."""

    @property
    def clients(self) -> Mapping[int, object]: ...


def on_message(runtime: SubscriberRuntime, conn: int, ptr: Any, callback_id: int) -> None:
    m = ffi.cast("ps_msg *", ptr)
    try:
        channel = ffi.unpack(m.channel, m.channel_len).decode("utf-8", "surrogateescape")
        data = ffi.unpack(m.message, m.len)
        message: Message = data.decode("utf-8") if m.text else data
        ident = format_id(m.id.ms, m.id.seq) if callback_id in _with_id else None
    finally:
        lib.ps_msg_release(m)
    cb = _callbacks.get(callback_id)
    if cb is None:
        return  # unsubscribed while the message was on its way
    extra = {"id": ident} if callback_id in _with_id else {}
    if conn:
        client = runtime.clients.get(conn)
        if client is None:
            return
        cb(client, channel, message, **extra)
    else:
        cb(channel, message, **extra)


def _channel_added(channel: str, pattern: bool) -> None:
    """A channel's first subscriber: engines learn it now, in the
    subscriber's thread, so a publish right after cannot outrun them."""
    with _lock:
        _live.add((channel, pattern))
        engines = list(PubSub._engines)
    for engine in engines:
        _tell(engine, "subscribe", channel, pattern)


def on_channel(ptr: Any, added: int) -> None:
    """A channel lost its last subscriber (the core posts this)."""
    m = ffi.cast("ps_msg *", ptr)
    try:
        raw = ffi.unpack(m.channel, m.channel_len)
        pattern = bool(m.pattern)
    finally:
        lib.ps_msg_release(m)
    if lib.ps_exists(raw, len(raw), int(pattern)):
        return  # subscribed again since: engines were told then
    channel = raw.decode("utf-8", "surrogateescape")
    with _lock:
        _live.discard((channel, pattern))
        engines = list(PubSub._engines)
    for engine in engines:
        _tell(engine, "unsubscribe", channel, pattern)
