"""The ``Iodine`` facade and the runtime that turns C events into app calls.

Threads. With ``threads == 1`` the C loop calls ``iodine_py_run_events`` at
the end of each turn (one GIL acquisition per batch) and the app runs on the
loop thread: no hand-off at all. With ``threads > 1`` that many Python
threads wait in ``dsp_next(1)`` (outside the GIL) and the loop thread never
runs Python. Either way the core guarantees one event at a time per
connection.
"""
from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Union

from . import __version__
from ._native import ffi, lib
from .config import Config, ConfigError, Listener, cpu_count
from . import client as _client
from . import connect as _connect
from . import hooks as _hooks
from . import pubsub as _pubsub
from . import redis_engine as _redis
from .accesslog import AccessLog
from .client import Client
from .wsgi import Response, WSGIApp, _log_exception, base_environ, compact_environ, make_input

# The environ keys whose values open every request's blob, in order (http.h).
ENV_FIXED = tuple(ffi.string(lib.http_env_fixed()).decode().split())

BATCH = 64  # events per loop turn in inline mode, so I/O is never starved

# Event kinds, read from the C headers by cffi (plain ints: compared per event).
HTTP_REQUEST = lib.DSP_HTTP_REQUEST
HTTP_DRAIN = lib.DSP_HTTP_DRAIN
TASK = lib.DSP_TASK
TASK_END = lib.DSP_TASK_END
PUBSUB = lib.DSP_PUBSUB
PS_CHANNEL = lib.DSP_PS_CHANNEL
STOPPING = lib.DSP_STOPPING
LOG = lib.DSP_LOG
RD_REPLY = lib.DSP_RD_REPLY
RD_LOG = lib.DSP_RD_LOG
NULL = ffi.NULL
REQ_T = ffi.typeof("http_req *")

# Timer tasks by id: the core only knows the number.
_tasks: Dict[int, Callable[[], Any]] = {}
_task_ids = itertools.count(1)


class Timer:
    """What run_after / run_every return: ``cancel()`` stops it (any thread)."""

    __slots__ = ("_id", "task")

    def __init__(self, timer_id: int, task: int) -> None:
        self._id = timer_id
        self.task = task

    def cancel(self) -> None:
        lib.srv_timer_cancel(self._id)

    @property
    def active(self) -> bool:
        return self.task in _tasks


def _run_task(kind: int, task: int) -> None:
    if kind == TASK_END:
        _tasks.pop(task, None)
        return
    fn = _tasks.get(task)
    if fn is not None:
        try:
            fn()
        except Exception:
            _log_exception("a timer task")

_runtime: Optional["Runtime"] = None


@ffi.def_extern()
def iodine_py_run_events() -> None:
    rt = _runtime
    if rt is None:
        return
    handle = rt.handle
    done_next = lib.dsp_done_next
    ev = NULL
    for _ in range(BATCH):
        # finishing an event (which lets its connection's next one run)
        # and taking the next is one call into C
        ev = done_next(ev, 0)
        if ev == NULL:
            return
        handle(ev)
    # budget spent: finish this connection's run of events first, so its
    # answers still leave together at the end of the turn
    done_same = lib.dsp_done_same
    while True:
        ev = done_same(ev)
        if ev == NULL:
            return
        handle(ev)


class Runtime:
    def __init__(self, config: Config, listeners: List[Listener]) -> None:
        self.config = config
        self.listeners = listeners
        self.apps: List[Any] = []
        self.suspended: Dict[int, Response] = {}
        self.clients: Dict[int, Client] = {}
        self.access_log = config.log and not config.quiet
        self.log: Optional[AccessLog] = None
        multithread = config.threads > 1
        multiprocess = config.workers > 1
        for lst in listeners:
            self.apps.append((lst.app, base_environ(lst, multithread, multiprocess)))

    # -- events ----------------------------------------------------------------
    def handle(self, ev: Any) -> None:
        """Run one event. The caller passes it to dsp_done afterwards: only
        then may the same connection's next event run (ordering)."""
        kind = ev.kind
        try:
            if kind == HTTP_REQUEST:
                self.on_request(ffi.cast(REQ_T, ev.ptr))
            elif kind == HTTP_DRAIN:
                resp = self.suspended.pop(ev.conn, None)
                if resp is not None:
                    resp.pump()
            elif kind == TASK or kind == TASK_END:
                _run_task(kind, ev.arg)
            elif kind == PUBSUB:
                _pubsub.on_message(self, ev.conn, ev.ptr, ev.arg)
            elif kind == PS_CHANNEL:
                _pubsub.on_channel(ev.ptr, ev.arg)
            elif kind == RD_REPLY:  # a Redis command's reply, for its callback
                _redis.on_reply(ev.ptr, ev.arg)
            elif kind == RD_LOG:  # one line per Redis episode
                _redis.on_log(ev.ptr, ev.arg, ev.conn)
            elif kind == STOPPING:
                _hooks.fire("start_shutdown")
            elif kind == LOG:  # a line for an answer the core gave itself
                line = ffi.cast("char *", ev.ptr)
                if self.log is not None:
                    self.log.write(ffi.unpack(line, ev.arg).decode("latin-1"))
                lib.al_free(line)
            elif kind in _connect.KINDS:  # raw services and client connections
                _connect.dispatch(self, kind, ev.conn, ev.ptr, ev.arg)
            else:
                _client.dispatch(self, kind, ev.conn, ev.ptr, ev.arg)
        except BaseException:
            _log_exception("the server's event handler")

    def on_request(self, req: Any) -> None:
        try:
            app, base = self.apps[req.tag]
            env = base.copy()
            parts = iter(ffi.unpack(req.env, req.env_len).decode("latin-1").split("\0"))
            env.update(zip(ENV_FIXED, parts))  # seven values, then pairs
            env.update(zip(parts, parts))
            env["wsgi.input"] = make_input(req)
            conn = req.conn
            upgrade = req.upgrade
            if upgrade:
                env["rack.upgrade?"] = "websocket" if upgrade == lib.UP_WEBSOCKET else "sse"
        finally:
            lib.http_req_free(req)
        resp = Response(self, conn, env, upgrade)
        if self.access_log:
            resp.started = time.perf_counter()
        resp.run(app)

    def new_client(self, conn: int, env: Dict[str, Any], handler: Any, kind: int) -> None:
        compact_environ(env)
        self.clients[conn] = Client(conn, env, handler, "websocket" if kind == lib.UP_WEBSOCKET else "sse")

    def on_client_closed(self, client: Client) -> None:
        _pubsub.forget_client(client)  # the core already dropped them

    def log_access(self, resp: Response) -> None:
        log = self.log
        if log is None:
            return
        env = resp.env
        took = (time.perf_counter() - resp.started) * 1000.0
        status = (resp.status or "-").split(" ", 1)[0]
        log.write(
            f'{env.get("REMOTE_ADDR", "-")} - - [{log.stamp()}] "{env.get("REQUEST_METHOD")} '
            f'{env.get("REQUEST_URI")} {env.get("SERVER_PROTOCOL")}" {status} '
            f'{resp.bytes_out} {took:.3f}ms\n')

    # -- running -----------------------------------------------------------------
    def serve(self) -> None:
        global _runtime
        _runtime = self
        if self.access_log:
            self.log = AccessLog()
        lib.al_enable(1 if self.access_log else 0)
        grace_ms = int(self.config.grace * 1000)
        threads = self.config.threads
        try:
            if threads <= 1:
                lib.srv_run(lib.iodine_py_run_events, grace_ms)
            else:
                pool = [threading.Thread(target=self._worker, name=f"iodine-app-{i}",
                                         daemon=True) for i in range(threads)]
                for t in pool:
                    t.start()
                lib.srv_run(ffi.NULL, grace_ms)  # returns after dsp_stop()
                for t in pool:
                    t.join(timeout=self.config.grace + 5)
        finally:
            _runtime = None
            if self.log is not None:
                self.log.close()

    def _worker(self) -> None:
        done_next = lib.dsp_done_next
        handle = self.handle
        ev = NULL
        while True:
            ev = done_next(ev, 1)
            if ev == NULL:
                return
            handle(ev)


def _ignore_usr1() -> Any:
    """SIGUSR1 restarts workers; with none, it must not kill the server.
    Returns the handler it replaced (None: signals are not ours to set)."""
    try:
        return signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        return None


def _tls_ctx(lst: Listener) -> Any:
    """The listener's TLS context for the core (NULL: plain TCP)."""
    if not lst.tls:
        return ffi.NULL
    if not lib.tls_available():
        raise ConfigError("TLS is not available: this build lacked the OpenSSL headers "
                          "(or had IODINE_NO_TLS=1); install libssl-dev, then rebuild")
    err = ffi.new("char[512]")
    cert = os.fsencode(lst.tls_cert) if lst.tls_cert else ffi.NULL
    key = os.fsencode(lst.tls_key) if lst.tls_key else ffi.NULL
    ctx = lib.tls_ctx_new(cert, key, err, len(err))
    if ctx == ffi.NULL:
        raise ConfigError("TLS: " + ffi.string(err).decode("utf-8", "replace"))
    return ctx


_trusts: Dict[str, Any] = {}


def _trust(spec: str) -> Any:
    """The C form of a trust_proxy setting (kept for the process's life:
    every connection of the listener points at it)."""
    spec = (spec or "").strip()
    if not spec:
        return ffi.NULL
    if spec not in _trusts:
        err = ffi.new("char[]", 128)
        t = lib.px_parse(spec.encode("latin-1", "replace"), err, 128)
        if t == ffi.NULL:
            raise ConfigError(f"trust_proxy: {ffi.string(err).decode()}")
        _trusts[spec] = t
    return _trusts[spec]


_public_roots: Dict[str, Any] = {}


def _public_root(folder: Optional[str]) -> Any:
    """The C form of a public folder: its realpath (static.c checks every
    file against it), kept for the process's life like _trusts."""
    if folder is None:
        return ffi.NULL
    real = os.path.realpath(folder)
    if real not in _public_roots:
        _public_roots[real] = ffi.new("char[]", os.fsencode(real))
    return _public_roots[real]


class _Iodine:
    """``from iodine_py import Iodine``: listen, configure, start.

    >>> Iodine.listen(app, port=3000, address="127.0.0.1")
    >>> Iodine.threads = 4
    >>> Iodine.start()   # blocks until SIGINT/SIGTERM
    """

    def __init__(self) -> None:
        self.config = Config()
        self._listeners: List[Listener] = []

    # settings as attributes, all stored on the one Config
    @property
    def threads(self) -> int:
        return self.config.threads

    @threads.setter
    def threads(self, n: int) -> None:
        self.config.threads = int(n)

    @property
    def workers(self) -> int:
        return self.config.workers

    @workers.setter
    def workers(self, n: int) -> None:
        self.config.workers = int(n)

    @property
    def verbose(self) -> bool:
        return self.config.log

    @verbose.setter
    def verbose(self, on: bool) -> None:
        self.config.log = bool(on)

    # -- pub/sub -------------------------------------------------------------
    PubSub = _pubsub.PubSub

    @staticmethod
    def publish(channel: Union[str, bytes], message: _pubsub.Message,
                engine: _pubsub.EngineArg = None) -> bool:
        """Publish to every subscriber (default engine: the whole cluster of
        this server; engine=False: this process only). Any thread."""
        return _pubsub.publish(channel, message, engine)

    @staticmethod
    def subscribe(channel: Union[str, bytes], callback: Callable[[str, _pubsub.Message], Any],
                  pattern: bool = False) -> bool:
        """callback(channel, message) for every message published to
        `channel` (a glob pattern when pattern=True)."""
        return _pubsub.subscribe(channel, callback, pattern)

    @staticmethod
    def unsubscribe(channel: Union[str, bytes], pattern: bool = False) -> bool:
        return _pubsub.unsubscribe(channel, pattern)

    # -- lifecycle -------------------------------------------------------------
    STATES = _hooks.STATES

    @staticmethod
    def on_state(event: str, fn: _hooks.F) -> _hooks.F:
        """Call fn() at a point of the server's life: pre_start,
        before_fork, after_fork, enter_child, enter_master, start_shutdown,
        on_finish (order: see iodine_py/hooks.py and the README)."""
        return _hooks.on_state(event, fn)

    # -- timers and tasks ------------------------------------------------------
    def run_every(self, ms: float, fn: Callable[[], Any], repetitions: int = 0) -> Timer:
        """Call fn every `ms` milliseconds, `repetitions` times (0: until
        cancelled). Any thread; timers run while the server runs. An
        exception is logged and the timer goes on."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        task = next(_task_ids)
        _tasks[task] = fn
        ms = max(0, int(ms))
        timer_id = lib.srv_timer(ms, max(1, ms), max(0, int(repetitions)), task)
        if not timer_id:
            _tasks.pop(task, None)
            raise MemoryError("cannot create a timer")
        return Timer(timer_id, task)

    def run_after(self, ms: float, fn: Callable[[], Any]) -> Timer:
        """Call fn once, `ms` milliseconds from now."""
        return self.run_every(ms, fn, repetitions=1)

    def run(self, fn: Callable[[], Any]) -> Timer:
        """Call fn on the next turn of the event loop."""
        return self.run_every(0, fn, repetitions=1)

    def listen(self, app: WSGIApp, port: Optional[int] = None,
               address: Optional[str] = None, **limits: Any) -> Listener:
        """Serve ``app`` (a WSGI callable) on ``address:port`` once started.

        ``limits`` override the defaults for this listener: max_body,
        max_head, max_header_line, max_headers (bytes or counts), keepalive
        and body_spill (seconds, bytes); public=DIR serves GET/HEAD for files
        under DIR from C before ``app`` is called (README "Static files");
        tls=True serves HTTPS with a self-signed development certificate,
        tls_cert=FILE and tls_key=FILE with yours (README "TLS").

        service="raw" serves a raw byte protocol instead of HTTP: ``app``
        is then the callback object's factory (a class, instantiated per
        connection), with on_open/on_message(client, data: bytes)/
        on_drained/on_shutdown/on_close (docs/raw.md)."""
        if not callable(app):
            raise TypeError("app must be a WSGI callable (or, with service='raw', "
                            "a callback class)")
        lst = self.config.listener(app, port, address, **limits)
        self._listeners.append(lst)
        return lst

    def listening(self) -> bool:
        """True when listen() was called (and start() has not yet run)."""
        return bool(self._listeners)

    def connect(self, url: str, handler: Any, *, headers: Optional[Any] = None,
                subprotocols: Optional[Any] = None, timeout: float = 10.0,
                tls_verify: bool = True, tls_ca: Optional[str] = None,
                idle: Optional[float] = None, max_pending: Optional[int] = None,
                max_msg: Optional[int] = None) -> None:
        """Open a client connection to ``tcp://host:port``, ``unix:/path``,
        ``tls://host:port``, ``ws://host[:port]/path`` or ``wss://...``,
        handled by ``handler`` (a callback object, or a class instantiated
        for it) like a server-side connection: on_open once connected (for
        WebSocket: once the server's 101 was checked), on_message(client,
        data) (bytes as they arrive; WebSocket: whole messages, str for
        text), on_close always (with ``client.close_reason`` when it failed:
        refused, DNS, timeout, TLS verification, handshake). WebSocket only:
        ``headers`` (pairs) and ``subprotocols`` (offered; the chosen one is
        ``client.env['subprotocol']``). TLS verifies the server against the
        system's CA store and the host name unless ``tls_verify=False``
        (development); ``tls_ca=FILE`` trusts that PEM file instead.
        ``timeout`` bounds connect + handshakes; ``idle`` (default: the
        ``ping`` setting) the silence before a connection is given up on (a
        WebSocket is pinged first); ``max_pending`` and ``max_msg`` (default:
        the settings) cap unread output and incoming messages. Any thread,
        any worker, from the app, timers and on_state hooks (from
        enter_child on). Returns at once; raises ValueError for a malformed
        URL, header or subprotocol, or an unusable CA file (docs/raw.md)."""
        _connect.connect(url, handler, timeout=timeout, tls_verify=tls_verify, tls_ca=tls_ca,
                         idle=self.config.ping if idle is None else idle,
                         max_pending=(self.config.max_pending if max_pending is None
                                      else max_pending),
                         max_msg=self.config.ws_max_msg if max_msg is None else max_msg,
                         headers=headers, subprotocols=subprotocols)

    def start(self) -> None:
        """Bind every listener, print where, and serve until stopped."""
        self.config.validate()
        if not self._listeners:
            raise RuntimeError("nothing to serve: call Iodine.listen(app, ...) first")
        rc = lib.srv_init()
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        if self.config.workers == 0:
            self.config.workers = cpu_count()
        lib.srv_set_reuseport(int(self.config.reuseport and self.config.workers > 1))
        lib.srv_set_max_connections(self.config.max_connections
                                    or lib.srv_default_max_connections())
        # From here a SIGINT/SIGTERM means "stop gracefully", even if it
        # lands before the loop runs (it is remembered).
        lib.srv_arm_signals()
        try:
            for tag, lst in enumerate(self._listeners):
                self._bind(tag, lst)
        except BaseException:
            lib.srv_disarm_signals()
            lib.srv_close_listeners()
            self._listeners = []
            raise
        if self.config.redis:
            self.PubSub.default = self.PubSub.Redis(self.config.redis, ping=self.config.redis_ping)
        # Until a master installs its rolling-restart handler (and for good
        # without workers) SIGUSR1 must not kill the server: ignore it
        # before anyone is told we listen.
        usr1 = _ignore_usr1()
        self._banner()
        listeners = self._listeners
        try:
            _hooks.fire("pre_start")
            if self.config.workers > 1:
                from .cluster import Master

                Master(self.config.workers, self.config.grace,
                       lambda: Runtime(self.config, listeners).serve(),
                       _hooks.fire).run()
            else:
                _hooks.fire("enter_master")
                _hooks.fire("enter_child")
                Runtime(self.config, listeners).serve()
            _hooks.fire("on_finish")
        finally:
            self._listeners = []
            if usr1 is not None:  # the process's own handling, as it was
                signal.signal(signal.SIGUSR1, usr1)
        if not self.config.quiet:
            sys.stderr.write("iodine: stopped\n")
            sys.stderr.flush()

    @staticmethod
    def _bind(tag: int, lst: Listener) -> None:
        addr = lst.address.encode()
        settings = ffi.new("http_settings *", {
            "max_head": lst.max_head, "max_line": lst.max_header_line,
            "max_headers": lst.max_headers, "max_body": lst.max_body,
            "spill": lst.body_spill, "keepalive_ms": int(lst.keepalive * 1000),
            "tag": tag, "ws_max_msg": 0 if lst.service == "raw" else lst.ws_max_msg,
            "ping_ms": int(lst.ping * 1000), "max_pending": lst.max_pending,
            "header_timeout_ms": int(lst.header_timeout * 1000),
            "min_body_rate": lst.min_body_rate,
            "service": 1 if lst.service == "raw" else 0,
            "trust": _trust(lst.trust_proxy), "tls": _tls_ctx(lst),
            "public_root": _public_root(lst.public)})
        rc = lib.srv_listen(addr, lst.port, settings)
        if rc < 0:
            lib.tls_ctx_free(settings.tls)
            where = lst.address if lst.address.startswith("unix:") else f"{lst.address}:{lst.port}"
            raise OSError(-rc, f"cannot listen on {where}: {os.strerror(-rc)}")
        lst.bound_port = rc

    def stop(self) -> None:
        """Ask a running server to stop gracefully (any thread)."""
        lib.srv_stop()

    def _banner(self) -> None:
        if self.config.quiet:
            for lst in self._listeners:
                sys.stderr.write(f"Listening on {self._url(lst)}\n")
            sys.stderr.flush()
            return
        lines = [f"iodine-py {__version__} (C core, epoll) pid {os.getpid()}"]
        for lst in self._listeners:
            lines.append(f"Listening on {self._url(lst)}")
        lines.append(f"threads: {self.config.threads}, workers: {self.config.workers}")
        if self.config.redis:
            lines.append(f"pub/sub: Redis at {self.config.redis.split('@')[-1]}")
        if any(lst.tls and not lst.tls_cert for lst in self._listeners):
            lines.append("TLS: self-signed certificate for localhost, made at start "
                         "(development only: clients will not trust it)")
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()

    @staticmethod
    def _url(lst: Listener) -> str:
        if lst.address.startswith("unix:"):
            return lst.address
        host = lst.address or "0.0.0.0"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if lst.tls else "http"
        if lst.service == "raw":
            scheme = "tls" if lst.tls else "tcp"
        return f"{scheme}://{host}:{lst.bound_port}"


Iodine = _Iodine()

__all__ = ["Iodine", "ConfigError"]
