"""Workers: a master process and N forked workers (``-w N``).

The master binds the listening sockets, forks the workers (they inherit the
sockets and all accept on them; the kernel spreads connections), and then
only looks after them: it relays pub/sub between workers (in C, over one
Unix socketpair per worker: ext/cluster.c), restarts a worker that dies
(with a back-off against crash loops), and on SIGINT/SIGTERM stops them all
gracefully and exits 0.

Forking happens here, in Python, between turns of the master's C loop, so
no other thread holds a lock at that moment; each child starts a fresh loop
(srv_after_fork) before doing anything else.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from typing import Any, Callable, Dict, List

from ._native import lib

# A worker that dies sooner than this after starting counts as crashing:
# its restart waits, doubling each time, up to MAX_BACKOFF.
QUICK_DEATH = 2.0
MAX_BACKOFF = 10.0

role = "single"  # "master" or "worker" once a cluster runs


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"iodine: {text}\n")
        sys.stderr.flush()
    except Exception:
        pass


class Master:
    def __init__(self, workers: int, grace: float, serve_worker: Callable[[], None],
                 hooks: Callable[[str], None]) -> None:
        self.workers = workers
        self.grace = grace
        self.serve_worker = serve_worker
        self.hooks = hooks
        self.pids: Dict[int, int] = {}        # pid -> slot
        self.started: Dict[int, float] = {}   # slot -> when it was forked
        self.backoff: Dict[int, float] = {}   # slot -> current restart delay
        self.due: Dict[int, float] = {}       # slot -> when to restart it

    # -- forking ----------------------------------------------------------------------
    def spawn(self, slot: int) -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setblocking(False)
        b.setblocking(False)
        mine, theirs = a.detach(), b.detach()
        self.hooks("before_fork")
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                global role
                role = "worker"
                os.close(mine)
                lib.srv_after_fork()
                lib.cl_worker_adopt(theirs)
                self.hooks("after_fork")
                self.hooks("enter_child")
                self.serve_worker()
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        os.close(theirs)
        lib.cl_master_adopt(mine, slot)
        self.pids[pid] = slot
        self.started[slot] = time.monotonic()
        self.hooks("after_fork")
        _say(f"worker {slot} started (pid {pid})")

    # -- the master's loop --------------------------------------------------------
    def run(self) -> int:
        global role
        role = "master"
        for slot in range(self.workers):
            self.spawn(slot)
        self.hooks("enter_master")
        while not lib.srv_master_turn(200):
            self.reap(restart=True)
            now = time.monotonic()
            for slot, when in list(self.due.items()):
                if now >= when:
                    del self.due[slot]
                    self.spawn(slot)
        self.hooks("start_shutdown")
        return self.stop()

    def reap(self, restart: bool) -> None:
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.pids.pop(pid, None)
            if slot is None:
                continue
            if not restart:
                continue
            lived = time.monotonic() - self.started.get(slot, 0.0)
            how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"status {os.WEXITSTATUS(status)}")
            if lived < QUICK_DEATH:
                delay = min(MAX_BACKOFF, max(0.5, self.backoff.get(slot, 0.25) * 2))
            else:
                delay = 0.0
            self.backoff[slot] = delay
            _say(f"worker {slot} (pid {pid}) exited with {how}; "
                 f"restarting{f' in {delay:.1f}s' if delay else ''}")
            self.due[slot] = time.monotonic() + delay

    def stop(self) -> int:
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.grace + 5.0
        while self.pids and time.monotonic() < deadline:
            lib.srv_master_turn(50)  # keep relaying while workers finish
            self.reap(restart=False)
        for pid in list(self.pids):
            _say(f"worker pid {pid} did not stop in time; killing it")
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        return 0
