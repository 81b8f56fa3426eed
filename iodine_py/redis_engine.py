"""The Redis pub/sub engine (redis-py).

``Iodine.PubSub.default = Iodine.PubSub.Redis("redis://:secret@host:6379/0")``
or ``iodine app.py -r redis://host:6379/0``. Every process of every server
sharing the Redis server then sees every message.

How it works. One background thread per process owns the subscription
connection: it applies SUBSCRIBE/PSUBSCRIBE requests queued by the server
(the server asks once per channel per process, when the first subscriber
appears), reads messages and delivers each to this process's subscribers
with ``Iodine.publish(channel, message, engine=False)``. Publishing uses a
second connection from the calling thread.

When Redis goes away the thread reconnects on its own, with exponential
back-off (never a busy loop), re-subscribes every live channel and pattern,
and then sends the messages that were published during the outage, which
wait meanwhile in a bounded queue (``queue_size``); when that is full,
``publish`` returns False and logs. A PING every ``ping`` seconds (redis-py's
health check) notices a connection that died silently.

Message types: Redis carries bytes. A message that is valid UTF-8 is
delivered as ``str`` (a WebSocket text frame), anything else as ``bytes``
(binary); so what was published as str arrives as str.

Forked workers: each process gets its own connections and thread, made on
first use after the fork (a connection is never shared across processes).
"""
from __future__ import annotations

import collections
import os
import sys
import threading
import time
from typing import Any, Deque, Dict, Optional, Set, Tuple, Union

from .pubsub import Engine, Message

try:  # redis-py is a dependency of the Redis engine only
    import redis
except ImportError:  # pragma: no cover - exercised only without redis-py
    redis = None  # type: ignore[assignment, unused-ignore]


def _log(text: str) -> None:
    try:
        sys.stderr.write(f"iodine: redis: {text}\n")
        sys.stderr.flush()
    except Exception:
        pass


class RedisEngine(Engine):
    """A pub/sub engine backed by a Redis server."""

    def __init__(self, url: str = "redis://localhost:6379/0", ping: float = 30.0,
                 queue_size: int = 10000, backoff_max: float = 5.0) -> None:
        if redis is None:
            raise RuntimeError("the Redis engine needs redis-py: pip install redis")
        self.url = url
        self.ping = float(ping)
        self.queue_size = int(queue_size)
        self.backoff_max = float(backoff_max)
        self._pid = -1
        self._lock = threading.Lock()
        self._wanted: Set[Tuple[str, bool]] = set()  # what should be subscribed
        self._backlog: Deque[Tuple[str, Message]] = collections.deque()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._pub: Any = None
        self._ps: Any = None  # the live subscription connection, if any
        self._confirm: Dict[Tuple[str, bool], threading.Event] = {}
        self.confirm_timeout = 2.0
        # Fail fast on a malformed URL, in the caller's thread.
        redis.connection.parse_url(url)

    # -- per process ---------------------------------------------------------------
    def _ensure(self) -> None:
        """Connections and the listener thread, made once per process."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._connected = threading.Event()
            self._ps = None
            self._pub = redis.Redis.from_url(
                self.url, health_check_interval=self.ping, socket_timeout=max(self.ping, 5.0),
                socket_connect_timeout=5.0)
            self._thread = threading.Thread(target=self._listen, name="iodine-redis",
                                            daemon=True)
            self._thread.start()

    # -- the engine interface (called by the server) ----------------------------------
    def subscribe(self, channel: str, pattern: bool = False) -> bool:
        """Called when this process's first subscriber to `channel` appears.
        Sends SUBSCRIBE now and waits (bounded) for Redis to confirm it, so a
        message published right after is not missed. While Redis is away it
        returns at once: the reconnect subscribes everything wanted."""
        key = (channel, bool(pattern))
        with self._lock:
            self._wanted.add(key)
        self._ensure()
        ps = self._ps
        if ps is None or not self._connected.is_set():
            return True
        done = self._confirm.setdefault(key, threading.Event())
        try:
            (ps.psubscribe if pattern else ps.subscribe)(channel)
        except (redis.RedisError, OSError, AttributeError):
            return True  # the listener reconnects and subscribes it
        done.wait(self.confirm_timeout)
        return True

    def unsubscribe(self, channel: str, pattern: bool = False) -> bool:
        key = (channel, bool(pattern))
        with self._lock:
            self._wanted.discard(key)
        self._ensure()
        ps = self._ps
        if ps is not None and self._connected.is_set():
            try:
                (ps.punsubscribe if pattern else ps.unsubscribe)(channel)
            except (redis.RedisError, OSError, AttributeError):
                pass
        return True

    def publish(self, channel: str, message: Message) -> bool:
        """Send to Redis; every subscribed process (this one included) gets
        it back through its subscription. During an outage the message
        waits in the bounded queue; False when that is full."""
        self._ensure()
        if isinstance(message, memoryview):
            message = bytes(message)
        if self._connected.is_set() and not self._backlog:
            try:
                self._pub.publish(channel, message)
                return True
            except redis.RedisError:
                self._connected.clear()
        with self._lock:
            if len(self._backlog) >= self.queue_size:
                _log(f"outage queue full ({self.queue_size}); message to {channel!r} dropped")
                return False
            self._backlog.append((channel, message))
        return True

    def cmd(self, *args: Any) -> Any:
        """Run an ordinary Redis command on the engine's own connection."""
        self._ensure()
        return self._pub.execute_command(*args)

    def close(self) -> None:
        """Stop the listener thread (tests; the process exit does it too)."""
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout=5)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queued(self) -> int:
        return len(self._backlog)

    # -- the listener thread -----------------------------------------------------------
    def _listen(self) -> None:
        delay = 0.05
        last_said = -60.0  # when a failure was last logged: every 10 s at most
        while not self._stop.is_set():
            client = redis.Redis.from_url(self.url, health_check_interval=self.ping,
                                          socket_connect_timeout=5.0)
            ps = client.pubsub()
            try:
                ps.ping()  # connect now, and authenticate (AUTH from the URL)
                # Visible first, then the snapshot: a subscribe() that came
                # before this point is in the snapshot, one after it sends
                # its own SUBSCRIBE (twice is harmless; never is not).
                self._ps = ps
                self._connected.set()
                self._resubscribe(ps)
                self._flush()  # only once Redis confirmed the subscriptions
                delay = 0.05
                _log(f"connected to {self._where()}")
                self._pump(ps)
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                now = time.monotonic()
                if self._connected.is_set():
                    _log(f"connection lost ({exc}); reconnecting")
                    last_said = now
                elif now - last_said >= 10.0:
                    # the first failure, and then a reminder: a wrong
                    # password must not look like a quiet success
                    _log(f"cannot connect to {self._where()}: {exc}; retrying "
                         f"({len(self._backlog)} message(s) queued)")
                    last_said = now
                self._connected.clear()
                self._ps = None
            finally:
                try:
                    ps.close()
                    client.close()
                except Exception:
                    pass
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.backoff_max)

    def _resubscribe(self, ps: Any) -> None:
        with self._lock:
            wanted = list(self._wanted)
        channels = [c for c, p in wanted if not p]
        patterns = [c for c, p in wanted if p]
        waiting = {}
        for key in wanted:
            waiting[key] = self._confirm.setdefault(key, threading.Event())
        if channels:
            ps.subscribe(*channels)
        if patterns:
            ps.psubscribe(*patterns)
        # Read until Redis confirmed them all (messages meanwhile are
        # delivered), so the outage queue is flushed into live subscriptions.
        deadline = time.monotonic() + self.confirm_timeout
        while any(not e.is_set() for e in waiting.values()) and time.monotonic() < deadline:
            msg = ps.get_message(timeout=0.05)
            if msg is not None:
                self._handle(msg)

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._backlog:
                    return
                channel, message = self._backlog[0]
            self._pub.publish(channel, message)
            with self._lock:
                self._backlog.popleft()

    def _pump(self, ps: Any) -> None:
        while not self._stop.is_set():
            if self._backlog:
                self._flush()
            msg = ps.get_message(timeout=0.05)
            if msg is None:
                if not ps.subscribed:
                    ps.check_health()
                continue
            self._handle(msg)

    def _handle(self, msg: Dict[str, Any]) -> None:
        kind = msg.get("type")
        channel: Any = msg.get("channel")  # str, or bytes decoded just below
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "surrogateescape")
        if kind in ("subscribe", "psubscribe"):
            done = self._confirm.pop((channel, kind == "psubscribe"), None)
            if done is not None:
                done.set()
            return
        if kind not in ("message", "pmessage"):
            return
        data = msg["data"]
        try:
            message: Message = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        if kind == "pmessage":
            pattern = msg["pattern"]
            if isinstance(pattern, bytes):
                pattern = pattern.decode("utf-8", "surrogateescape")
            self.deliver_to(pattern, True, channel, message)
        else:
            self.deliver_to(channel, False, channel, message)

    def _where(self) -> str:
        kw = self._pub.connection_pool.connection_kwargs
        return f"{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<iodine PubSub.Redis {self.url!r} {state}>"
