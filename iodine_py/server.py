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
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Union

from . import __version__
from ._native import ffi, lib
from .config import Config, ConfigError, Listener, cpu_count
from . import client as _client
from . import cluster as _cluster
from . import connect as _connect
from . import hooks as _hooks
from . import pubsub as _pubsub
from . import redis_engine as _redis
from .accesslog import AccessLog, clf_to_json
from .client import Client
from .importer import ASGI_ERROR, describe_error, is_asgi, load_app
from .log import log_exception, logger, set_level
from .reloader import Reloader
from .wsgi import (EMPTY_INPUT, Response, WSGIApp, base_environ, compact_environ, roomy,
                   make_input)

# The environ keys whose values open every request's blob, in order (http.h).
ENV_FIXED = tuple(ffi.string(lib.http_env_fixed()).decode().split())

BATCH = 64  # events per loop turn in inline mode, so I/O is never starved

# Event kinds, read from the C headers by cffi (plain ints: compared per event).
HTTP_REQUEST = lib.DSP_HTTP_REQUEST
HTTP_DRAIN = lib.DSP_HTTP_DRAIN
HTTP_SENT = lib.DSP_HTTP_SENT
TASK = lib.DSP_TASK
TASK_END = lib.DSP_TASK_END
PUBSUB = lib.DSP_PUBSUB
PS_CHANNEL = lib.DSP_PS_CHANNEL
STOPPING = lib.DSP_STOPPING
RELOAD = lib.DSP_RELOAD
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
            log_exception("a timer task")

_runtime: Optional["Runtime"] = None


def _install_fast() -> Any:
    """iodine_py._fast: events taken through the C API (iodine_py/_fast.c)."""
    if lib.iodine_py_fast_install() != 0:
        raise ImportError("iodine_py._fast could not be installed")
    return sys.modules["iodine_py._fast"]


# next(token, mode) finishes an event and takes the next, building a
# request's environ in C: one C-API call per event instead of three cffi
# calls (each releasing and retaking the GIL) and the blob split in Python.
_fast = _install_fast()
EV_T = ffi.typeof("dsp_event *")
FAST_RESUME = -1  # _fast.next's own kinds (iodine_py/_fast.c)
FAST_BUDGET = -2
FAST_WS_MESSAGE = -3


@ffi.def_extern()
def iodine_py_run_events() -> None:
    rt = _runtime
    if rt is None:
        return
    take = rt.take
    nxt = _fast.next
    tok = 0
    left = BATCH
    while left > 0:
        # finishing an event (which lets its connection's next one run)
        # and taking the next is one call into C, which answers plain
        # requests itself and counts them against the budget
        t = nxt(tok, 0, left)
        if t is None:
            return
        tok = t[1]
        left = t[-1] - 1
        take(t)
    # budget spent: finish this connection's run of events first, so its
    # answers still leave together at the end of the turn
    while True:
        t = nxt(tok, 2, 0)
        if t is None:
            return
        tok = t[1]
        take(t)


# A process whose application calls have not returned this long after the
# grace period is ended (Python cannot kill a thread): server.c's timer.
EXIT_MARGIN = 0.5


class Runtime:
    """One process's serving: the apps (imported here, after any fork,
    unless they were given as objects), the event handlers, the watchdog.

    The modules it calls with itself say what they use of it, each with a
    Protocol that mypy checks this class against (client.ClientRuntime,
    connect.RawRuntime, pubsub.SubscriberRuntime, wsgi.ResponseRuntime,
    cluster.WorkerRuntime): none of them imports this module."""

    def __init__(self, config: Config, listeners: List[Listener]) -> None:
        self.config = config
        self.listeners = listeners
        self.apps: List[Any] = []
        self.suspended: Dict[int, Response] = {}
        # responses waiting for their last byte to leave (DSP_HTTP_SENT),
        # oldest first, per connection
        self.sent_wait: Dict[int, Deque[Response]] = {}
        self.clients: Dict[int, Client] = {}
        self.access_log = config.log and not config.quiet
        self.log: Optional[AccessLog] = None
        self.json_log = config.access_log_format == "json"
        self.root = config.root_path
        self.max_requests = 0  # a worker's recycling point (cluster.py sets it)
        self.requests = 0
        self.recycled = False
        multithread = config.threads > 1
        multiprocess = config.workers > 1
        for lst in listeners:
            self.apps.append((_resolve(lst.app), base_environ(lst, multithread, multiprocess)))
        # read after the apps are imported: their modules may set them
        self.req_start = _hooks.request_start
        self.req_finish = _hooks.request_finish

    def reload_apps(self) -> None:
        """SIGHUP/SIGUSR1 without workers: import the apps named by a target
        again, in place; a failure keeps the running ones."""
        named = [(i, lst.target or lst.app) for i, lst in enumerate(self.listeners)
                 if isinstance(lst.target or lst.app, str)]
        if not named:
            logger.info("reload: the application was given as an object; nothing to reload "
                        "(name it on the command line, or run workers)")
            return
        for i, target in named:
            try:
                app = load_app(target, fresh=True)
            except Exception as exc:
                logger.error(f"reload failed, the running code stays: {describe_error(exc)}")
                return
            self.apps[i] = (app, self.apps[i][1])
        self.install_fast()  # C calls the apps it was given: give it the new ones
        logger.info("reload: application imported again")

    def install_fast(self) -> None:
        """Hand the apps to the C fast path (iodine_py/_fast.c): at start,
        and again after a reload replaced them."""
        _fast.setup(tuple(roomy(base) for _, base in self.apps), EMPTY_INPUT, ENV_FIXED,
                    self._response_for_write, self.config.threads > 1,
                    tuple(app for app, _ in self.apps),
                    # C answers plain requests itself unless something must
                    # see each one in Python (access log, recycling, root
                    # path, per-request hooks)
                    not (self.access_log or self.max_requests or self.root or
                         self.req_start or self.req_finish))

    # -- events ----------------------------------------------------------------
    def take(self, t: Any) -> None:
        """Run one event as _fast.next returned it (iodine_py/_fast.c says
        the shapes). The caller passes the token back to _fast.next
        afterwards (ordering, as for handle)."""
        kind = t[0]
        if kind == HTTP_REQUEST and len(t) == 8:
            try:
                self.on_env(t[2], t[3], t[4], t[5], t[6])
            except BaseException:
                log_exception("the server's event handler")
        elif kind == FAST_WS_MESSAGE:
            try:
                _client.on_message(self, t[2], t[3])
            except BaseException:
                log_exception("the server's event handler")
        elif kind == FAST_RESUME:
            try:
                self._resume(t)
            except BaseException:
                log_exception("the server's event handler")
        elif kind != FAST_BUDGET:
            self.handle(ffi.cast(EV_T, t[1]))

    def on_env(self, conn: int, tag: int, upgrade: int, env: Dict[str, Any], req: int) -> None:
        """A request whose environ C has built; req is its http_req when it
        has a body (ours to read, then free), else 0 (already freed)."""
        if self.max_requests:
            self.count_request()
        if self.root:
            _root_path(env, self.root)
        if req:
            r = ffi.cast(REQ_T, req)
            try:
                env["wsgi.input"] = make_input(r)
            finally:
                lib.http_req_free(r)
        if upgrade or self.access_log or self.req_start or self.req_finish:
            if upgrade:
                env["rack.upgrade?"] = "websocket" if upgrade == lib.UP_WEBSOCKET else "sse"
            resp = Response(self, conn, env, upgrade)
            if self.access_log:
                resp.started = time.perf_counter()
            resp.run(self.apps[tag][0])
            return
        # the app called from C; the common answer (one bytes body) is sent
        # there too, anything else comes back to finish here as before
        r = _fast.call(self.apps[tag][0], env, conn)
        if r is not None:  # (status, headers, result, resp, exc)
            self._resume((FAST_RESUME, 0, conn, r[3], r[4], r[2], 0))

    def _resume(self, t: Any) -> None:
        """Finish what _fast did not: t = (FAST_RESUME, token, conn, resp,
        exc, result, left); resp holds the status and headers already."""
        resp, exc = t[3], t[4]
        if exc is not None:
            try:
                raise exc
            except BaseException:
                resp.fail("the application")
            return
        resp.resume(t[5])

    def _response_for_write(self, conn: int, env: Dict[str, Any], status: str,
                            headers: List[Any]) -> Response:
        """The Response that finishes what _fast.call did not (made at the
        app's first write(), or when it returned): from then on it does
        everything, and the app's start_response hands it every call."""
        resp = Response(self, conn, env, 0)
        resp.status, resp.headers = status, headers
        return resp

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
            elif kind == HTTP_SENT:
                self.on_sent(ev.conn, ev.arg)
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
            elif kind == RELOAD:
                if lib.srv_take_reloads() and cluster_role() == "single":
                    self.reload_apps()
            elif kind == LOG:  # a line for an answer the core gave itself
                line = ffi.cast("char *", ev.ptr)
                if self.log is not None:
                    text = ffi.unpack(line, ev.arg).decode("latin-1")
                    self.log.write(clf_to_json(text) if self.json_log else text)
                lib.al_free(line)
            elif kind in _connect.KINDS:  # raw services and client connections
                _connect.dispatch(self, kind, ev.conn, ev.ptr, ev.arg)
            else:
                _client.dispatch(self, kind, ev.conn, ev.ptr, ev.arg)
        except BaseException:
            log_exception("the server's event handler")

    def wait_sent(self, resp: Response) -> None:
        q = self.sent_wait.get(resp.conn)
        if q is None:
            q = self.sent_wait[resp.conn] = deque()
        q.append(resp)

    def on_sent(self, conn: int, n: int) -> None:
        """n finished responses of conn have left whole (or died with it)."""
        q = self.sent_wait.get(conn)
        while q and n > 0:
            n -= 1
            q.popleft().closed()
        if q is not None and not q:
            del self.sent_wait[conn]

    def count_request(self) -> None:
        """--max-requests: this worker stops gracefully after its share."""
        self.requests += 1
        if self.requests == self.max_requests:
            self.recycled = True
            logger.info(f"worker (pid {os.getpid()}) recycling after {self.requests} requests")
            lib.srv_stop()  # graceful: this one is still answered

    def on_request(self, req: Any) -> None:
        if self.max_requests:
            self.count_request()
        try:
            app, base = self.apps[req.tag]
            env = base.copy()
            parts = iter(ffi.unpack(req.env, req.env_len).decode("latin-1").split("\0"))
            env.update(zip(ENV_FIXED, parts))  # seven values, then pairs
            env.update(zip(parts, parts))
            # body_size is 0 exactly when there is no body (in memory or spilled)
            env["wsgi.input"] = (make_input(req) if req.body_size or req.body_stream
                                 else EMPTY_INPUT)
            if self.root:
                _root_path(env, self.root)
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
        if self.json_log:
            log.write(json_line(env.get("REMOTE_ADDR", "-"), env.get("REQUEST_METHOD"),
                                env.get("REQUEST_URI"), env.get("SERVER_PROTOCOL"), status,
                                resp.bytes_out, took))
            return
        log.write(
            f'{env.get("REMOTE_ADDR", "-")} - - [{log.stamp()}] "{env.get("REQUEST_METHOD")} '
            f'{env.get("REQUEST_URI")} {env.get("SERVER_PROTOCOL")}" {status} '
            f'{resp.bytes_out} {took:.3f}ms\n')

    # -- running -----------------------------------------------------------------
    def serve(self) -> None:
        global _runtime
        _runtime = self
        if self.access_log:
            self.log = AccessLog(json_form=self.json_log)
        lib.al_enable(1 if self.access_log else 0)
        self.install_fast()
        grace_ms = int(self.config.grace * 1000)
        lib.srv_set_drain_ms(int(self.config.drain * 1000))
        threads = self.config.threads
        # the bound on a stop, kept by a timer in C (server.c "overdue")
        margin = self.config.grace + EXIT_MARGIN
        lib.srv_set_exit_after(int(margin * 1000), int((margin + self.config.drain) * 1000))
        stuck = 0
        try:
            if threads <= 1:
                lib.srv_run(lib.iodine_py_run_events, grace_ms)
            else:
                pool = [threading.Thread(target=self._worker, name=f"iodine-app-{i}",
                                         daemon=True) for i in range(threads)]
                for t in pool:
                    t.start()
                lib.srv_run(ffi.NULL, grace_ms)  # returns after dsp_stop()
                # The loop ran the grace period out already: a thread still
                # in the application now is stuck there.
                until = time.monotonic() + EXIT_MARGIN
                for t in pool:
                    t.join(timeout=max(0.0, until - time.monotonic()))
                stuck = sum(t.is_alive() for t in pool)
        finally:
            _runtime = None
            if self.log is not None:
                self.log.close()
        if stuck:
            _exit_now(f"{stuck} application thread(s) still busy after the "
                      f"{self.config.grace:g}s grace period; exiting without them")

    def _worker(self) -> None:
        nxt = _fast.next
        take = self.take
        tok = 0
        while True:
            t = nxt(tok, 1, 0)  # blocks with the GIL released
            if t is None:
                return
            tok = t[1]
            take(t)


def cluster_role() -> str:
    return _cluster.role


def _exit_now(why: str) -> None:
    """The end of a process Python cannot finish normally: say why, flush
    what is buffered, remove what we made, and _exit(0)."""
    logger.warning(why)
    rt = _runtime
    if rt is not None and rt.log is not None:
        rt.log.close(0.2)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    if cluster_role() != "worker":
        lib.srv_unlink_unix_sockets()
        _remove_pid_file()
    os._exit(0)


_pid_file: Optional[str] = None


def _remove_pid_file() -> None:
    global _pid_file
    if _pid_file is not None:
        try:
            os.unlink(_pid_file)
        except OSError:
            pass
        _pid_file = None


def _describe_fd(lst: Listener) -> None:
    """An inherited socket's address, for the banner."""
    assert lst.fd is not None
    with socket.socket(fileno=os.dup(lst.fd)) as sock:
        name = sock.getsockname()
    if isinstance(name, tuple):
        lst.address = name[0]
    else:
        lst.address = "unix:" + (name.decode() if isinstance(name, bytes) else name)


def _write_pid_file(path: str) -> None:
    global _pid_file
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)  # whole or not at all: a reader never sees it half written
    _pid_file = path


def _resolve(app: Any) -> Any:
    """A listener's app: the object itself, or imported from its target."""
    return load_app(app, fresh=True) if isinstance(app, str) else app


def _root_path(env: Dict[str, Any], root: str) -> None:
    """--root-path / $SCRIPT_NAME: the app is mounted under `root`; a path
    under it moves that prefix from PATH_INFO to SCRIPT_NAME."""
    path = env.get("PATH_INFO", "")
    if path == root or path.startswith(root + "/"):
        env["PATH_INFO"] = path[len(root):]
    env["SCRIPT_NAME"] = root


def json_line(addr: Any, method: Any, uri: Any, proto: Any, status: str, size: int,
              took_ms: float) -> str:
    return json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "remote_addr": addr,
                       "method": method, "path": uri, "protocol": proto,
                       "status": int(status) if status.isdigit() else None,
                       "bytes": size, "duration_ms": round(took_ms, 3)}) + "\n"


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
    lib.tls_set_key_password(_tls_pass.encode() if _tls_pass else ffi.NULL)
    cert = os.fsencode(lst.tls_cert) if lst.tls_cert else ffi.NULL
    key = os.fsencode(lst.tls_key) if lst.tls_key else ffi.NULL
    ctx = lib.tls_ctx_new(cert, key, err, len(err))
    if ctx == ffi.NULL:
        raise ConfigError("TLS: " + ffi.string(err).decode("utf-8", "replace"))
    return ctx


_tls_pass: Optional[str] = None  # Config.tls_pass, set by start()

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
        self._running = False

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
    def subscribe(channel: Union[str, bytes], callback: Callable[..., Any],
                  pattern: bool = False, with_id: bool = False) -> bool:
        """callback(channel, message) for every message published to
        `channel` (a glob pattern when pattern=True); with `with_id`,
        callback(channel, message, id="ms-seq")."""
        return _pubsub.subscribe(channel, callback, pattern, with_id)

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

    @staticmethod
    def on_request(start: Optional[Callable[[Dict[str, Any]], object]] = None,
                   finish: Optional[Callable[[Dict[str, Any]], object]] = None) -> None:
        """A per-request pair (a database connection's checkout/checkin,
        say): start(environ) runs before the app, finish(environ) once the
        response's last byte has been written to the socket, or the
        connection died first (the moment the iterable's close() runs).
        finish runs for every request whose start returned. Set before
        start(); None clears. While set, every request is run from Python
        (the C fast path steps aside)."""
        _hooks.on_request(start, finish)

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

    def listen(self, app: Union[WSGIApp, str], port: Optional[int] = None,
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
        raw = limits.get("service") == "raw"
        if isinstance(app, str):
            pass  # a target ("app.py", "pkg.mod:attr"): imported by each worker
        elif not callable(app):
            raise TypeError("app must be a WSGI callable (or, with service='raw', "
                            "a callback class)")
        elif not raw and is_asgi(app):
            raise ConfigError(f"{getattr(app, '__name__', type(app).__name__)} {ASGI_ERROR}")
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
        global _pid_file
        cfg = self.config.validate()
        if not self._listeners:
            raise RuntimeError("nothing to serve: call Iodine.listen(app, ...) first")
        set_level("error" if cfg.quiet and cfg.log_level == "info" else cfg.log_level)
        rc = lib.srv_init()
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        if cfg.workers == 0:
            cfg.workers = cpu_count()
        # A master looks after the workers: with -w > 1, and also for one
        # worker when something must replace it (--reload, --max-requests).
        clustered = cfg.workers > 1 or cfg.reload or cfg.max_requests > 0
        lib.srv_set_reuseport(int(cfg.reuseport and clustered))
        lib.srv_set_max_connections(cfg.max_connections or lib.srv_default_max_connections())
        lib.srv_set_backlog(cfg.backlog)
        global _tls_pass
        _tls_pass = cfg.tls_pass
        lib.srv_set_unix_mode(-1 if cfg.unix_mode is None else cfg.unix_mode)
        lib.ps_history_configure(cfg.history, cfg.history_channels, cfg.history_bytes)
        # From here a SIGINT/SIGTERM means "stop gracefully", even if it
        # lands before the loop runs (it is remembered).
        lib.srv_arm_signals()
        listeners = self._listeners
        runtime: Optional[Runtime] = None
        try:
            for tag, lst in enumerate(listeners):
                self._bind(tag, lst, cfg.threads > 1)
            if not clustered:
                runtime = Runtime(cfg, listeners)  # imports the app (a target) now
            elif cfg.preload:  # once, here: the workers share its memory
                for lst in listeners:
                    lst.app = _resolve(lst.app)
        except BaseException:
            lib.srv_disarm_signals()
            lib.srv_close_listeners()
            lib.srv_unlink_unix_sockets()
            self._listeners = []
            raise
        if cfg.redis:
            self.PubSub.default = self.PubSub.Redis(cfg.redis, ping=cfg.redis_ping)
        # Until a master installs its handlers, SIGUSR1 must not kill the
        # server; without workers it asks for a reload, like SIGHUP.
        usr1 = _ignore_usr1()
        if usr1 is not None and not clustered:
            lib.srv_catch_usr1()
        if cfg.pid:
            _write_pid_file(cfg.pid)
            lib.srv_set_pid_file(os.fsencode(os.path.abspath(cfg.pid)))
        self._banner()
        self._running = True
        try:
            _hooks.fire("pre_start")
            if clustered:
                master = _cluster.Master(cfg, lambda: Runtime(cfg, listeners), _hooks.fire)
                if cfg.reload:
                    master.reloader = Reloader(listeners, cfg.reload_dirs).changed
                master.run()
            else:
                assert runtime is not None
                _hooks.fire("enter_master")
                _hooks.fire("enter_child")
                runtime.serve()
            _hooks.fire("on_finish")
        finally:
            lib.srv_disarm_exit()
            self._running = False
            self._listeners = []
            lib.srv_close_listeners()
            lib.srv_unlink_unix_sockets()
            _remove_pid_file()
            if usr1 is not None:  # the process's own handling, as it was
                signal.signal(signal.SIGUSR1, usr1)
        if not cfg.quiet:
            logger.info("stopped")

    def running(self) -> bool:
        """True while start() serves (in this process)."""
        return self._running

    @staticmethod
    def master() -> bool:
        """True in the process that looks after the workers (and in a single
        process, which is its own master)."""
        return cluster_role() in ("master", "single")

    @staticmethod
    def worker() -> bool:
        """True in a process that serves requests: a worker, or a single
        process (which is its own worker)."""
        return cluster_role() in ("worker", "single")

    def on_idle(self, fn: Callable[[], Any]) -> Timer:
        """Call fn once, the next time the event loop has nothing else to
        do (after the events already queued)."""
        return self.run_every(0, fn, repetitions=1)

    @staticmethod
    def _bind(tag: int, lst: Listener, stream: bool) -> None:
        addr = lst.address.encode()
        settings = ffi.new("http_settings *", {
            "max_head": lst.max_head, "max_line": lst.max_header_line,
            "max_headers": lst.max_headers, "max_body": lst.max_body,
            "spill": lst.body_spill, "keepalive_ms": int(lst.keepalive * 1000),
            "tag": tag, "ws_max_msg": 0 if lst.service == "raw" else lst.ws_max_msg,
            "ping_ms": int(lst.ping * 1000), "max_pending": lst.max_pending,
            "header_timeout_ms": int(lst.header_timeout * 1000),
            "min_body_rate": lst.min_body_rate,
            "ws_deflate": int(bool(lst.ws_deflate)), "ws_deflate_bits": lst.ws_deflate_bits,
            "ws_deflate_min": lst.ws_deflate_min, "ws_deflate_mem": lst.ws_deflate_mem,
            "service": 1 if lst.service == "raw" else 0,
            "trust": _trust(lst.trust_proxy), "tls": _tls_ctx(lst),
            "public_root": _public_root(lst.public),
            # bodies as they arrive when the app runs on its own threads
            # (with -t 1 it runs on the loop, which must never wait for one)
            "stream_body": int(stream)})
        if lst.fd is not None:
            rc = lib.srv_listen_fd(lst.fd, settings)
            if rc >= 0:
                _describe_fd(lst)
        else:
            rc = lib.srv_listen(addr, lst.port, settings)
        if rc < 0:
            lib.tls_ctx_free(settings.tls)
            where = (f"descriptor {lst.fd}" if lst.fd is not None else lst.address
                     if lst.address.startswith("unix:") else f"{lst.address}:{lst.port}")
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
