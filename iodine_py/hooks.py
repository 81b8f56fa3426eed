"""Lifecycle hooks: ``Iodine.on_state(event, fn)``.

Order, with workers (``-w N``, N > 1)::

    master: pre_start, (before_fork, after_fork) for each worker, enter_master,
            ... serving ...  start_shutdown, on_finish
    worker: after_fork, enter_child, ... serving ...  start_shutdown, on_finish

A worker restarted by the master (a crash, or a rolling restart) runs the
worker's list again, and the master runs before_fork/after_fork around it.
A worker fires its after_fork once it has imported the application (hooks
the app's module adds at import see it); the master only has the hooks
added before start (a -C config file, or the app's with --preload).

Without workers the one process is both master and child::

    pre_start, enter_master, enter_child, ... serving ...  start_shutdown, on_finish

``pre_start`` runs once the listening sockets are bound (ports are known)
and before any fork; ``start_shutdown`` when a graceful stop begins (in-flight
requests are still finishing); ``on_finish`` when the process is done
serving, just before ``Iodine.start()`` returns or the worker exits.
Hooks for one event run in the order they were added; an exception is
logged and the next hook runs.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, TypeVar

from .log import log_exception

STATES = ("pre_start", "before_fork", "after_fork", "enter_child",
          "enter_master", "start_shutdown", "on_finish")

F = TypeVar("F", bound=Callable[[], object])

_hooks: Dict[str, List[Callable[[], object]]] = {s: [] for s in STATES}
_lock = threading.Lock()


def on_state(event: str, fn: F) -> F:
    """Run ``fn()`` at ``event`` (one of STATES). Returns fn. Any thread."""
    if event not in _hooks:
        raise ValueError(f"unknown state {event!r}; expected one of {', '.join(STATES)}")
    if not callable(fn):
        raise TypeError("fn must be callable")
    with _lock:
        _hooks[event].append(fn)
    return fn


def fire(event: str) -> None:
    with _lock:
        fns = list(_hooks[event])
    for fn in fns:
        try:
            fn()
        except Exception:
            log_exception(f"an on_state({event!r}) hook")


# Per-request hooks (Iodine.on_request): start(environ) before the app,
# finish(environ) once the response's last byte has left (or the connection
# died). Set before the server starts; read by the runtime at serve().
request_start: Optional[Callable[[Dict[str, Any]], object]] = None
request_finish: Optional[Callable[[Dict[str, Any]], object]] = None


def on_request(start: Optional[Callable[[Dict[str, Any]], object]] = None,
               finish: Optional[Callable[[Dict[str, Any]], object]] = None) -> None:
    """Set (or, with None, clear) the per-request pair."""
    global request_start, request_finish
    for fn in (start, finish):
        if fn is not None and not callable(fn):
            raise TypeError("on_request hooks must be callable or None")
    request_start, request_finish = start, finish


def clear() -> None:
    """Forget every hook (tests, and a second start in one process)."""
    global request_start, request_finish
    with _lock:
        for fns in _hooks.values():
            fns.clear()
        request_start = request_finish = None
