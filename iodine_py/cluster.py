"""Workers: a master process and N forked workers (``-w N``).

The master binds the listening sockets, forks the workers (they inherit the
sockets and all accept on them; the kernel spreads connections), and then
only looks after them: it relays pub/sub between workers (in C, over one
Unix socketpair per worker: ext/cluster.c), restarts a worker that dies
(with a back-off against crash loops), and on SIGINT/SIGTERM stops them all
gracefully and exits 0.

SIGUSR1 asks for a rolling restart: each worker in turn is replaced by a
fresh one, and the old one is told to stop gracefully only once its
replacement is serving. The listening sockets are bound once, here, and
shared (not SO_REUSEPORT): the master keeps them open, so a connection that
arrives while workers change places waits in the kernel's backlog and is
never refused.

Forking happens here, in Python, between turns of the master's C loop, so
no other thread holds a lock at that moment; each child starts a fresh loop
(srv_after_fork) before doing anything else.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._native import lib

# A worker that dies sooner than this after starting counts as crashing:
# its restart waits, doubling each time, up to MAX_BACKOFF.
QUICK_DEATH = 2.0
MAX_BACKOFF = 10.0
# A replacement that has not said "serving" by then is given up on (the old
# worker stays) and the rolling restart stops there.
READY_TIMEOUT = 30.0
MAX_RELAYS = 1024  # ext/cluster.c MAX_WORKERS

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
        self.pids: Dict[int, int] = {}        # pid -> slot (the worker's number)
        self.relays: Dict[int, int] = {}      # pid -> its pub/sub relay channel
        self.started: Dict[int, float] = {}   # slot -> when it was forked
        self.backoff: Dict[int, float] = {}   # slot -> current restart delay
        self.due: Dict[int, float] = {}       # slot -> when to restart it
        # rolling restart (SIGUSR1)
        self.retiring: Dict[int, int] = {}    # old pid -> slot, told to stop
        self.queue: List[int] = []            # slots still to replace
        self.waiting: Optional[Tuple[int, int, int, float]] = None  # slot, new pid, ready fd, deadline
        self.restart_asked = False

    # -- forking ----------------------------------------------------------------------
    def spawn(self, slot: int, ready: bool = False) -> Tuple[int, int]:
        """Fork a worker for `slot`. With `ready`, returns a pipe's read end
        that gets one byte when the worker starts serving (else -1)."""
        used = set(self.relays.values())
        relay = next(i for i in range(MAX_RELAYS) if i not in used)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setblocking(False)
        b.setblocking(False)
        mine, theirs = a.detach(), b.detach()
        rfd, wfd = os.pipe() if ready else (-1, -1)
        self.hooks("before_fork")
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                global role
                role = "worker"
                signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the master's signal
                os.close(mine)
                if rfd >= 0:
                    os.close(rfd)
                for fd in self.ready_fds():
                    os.close(fd)
                lib.srv_after_fork()
                lib.srv_balance_join(relay)  # its slot in the accept balance (server.c)
                lib.cl_worker_adopt(theirs)
                self.hooks("after_fork")
                self.hooks("enter_child")
                if wfd >= 0:
                    os.write(wfd, b"1")  # the loop attaches the listeners next
                    os.close(wfd)
                self.serve_worker()
                self.hooks("on_finish")
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
        if wfd >= 0:
            os.close(wfd)
        lib.cl_master_adopt(mine, relay)
        self.pids[pid] = slot
        self.relays[pid] = relay
        self.started[slot] = time.monotonic()
        self.hooks("after_fork")
        _say(f"worker {slot} started (pid {pid})")
        return pid, rfd

    def ready_fds(self) -> List[int]:
        return [self.waiting[2]] if self.waiting else []

    # -- the master's loop --------------------------------------------------------
    def run(self) -> int:
        global role
        role = "master"
        old = signal.signal(signal.SIGUSR1, self._on_usr1)
        # the accept balance's shared page: room for every worker and, during
        # a rolling restart, the old ones still finishing (slots are relay
        # numbers, the lowest free first)
        lib.srv_balance_init(min(MAX_RELAYS, 2 * self.workers + 1))
        try:
            for slot in range(self.workers):
                self.spawn(slot)
            self.hooks("enter_master")
            while not lib.srv_master_turn(50 if self.waiting else 200):
                self.reap(restart=True)
                now = time.monotonic()
                for slot, when in list(self.due.items()):
                    if now >= when:
                        del self.due[slot]
                        self.spawn(slot)
                self.roll()
            self.hooks("start_shutdown")
            return self.stop()
        finally:
            signal.signal(signal.SIGUSR1, old)

    # -- rolling restart (SIGUSR1) -----------------------------------------------
    def _on_usr1(self, signum: int, frame: Any) -> None:
        self.restart_asked = True  # acted on by the loop, not in the handler

    def roll(self) -> None:
        if self.restart_asked:
            self.restart_asked = False
            if self.queue or self.waiting:
                _say("SIGUSR1: a rolling restart is already under way")
            else:
                self.queue = sorted(set(self.pids.values()))
                _say(f"SIGUSR1: rolling restart of {len(self.queue)} workers")
        if self.waiting:
            slot, new_pid, rfd, deadline = self.waiting
            r, _, _ = select.select([rfd], [], [], 0)
            if not r and time.monotonic() < deadline:
                return
            said = os.read(rfd, 1) if r else b""
            os.close(rfd)
            self.waiting = None
            if said != b"1":
                _say(f"worker {slot} (pid {new_pid}) did not start serving; "
                     f"rolling restart stopped, the old worker stays")
                self.queue = []
                return
            for pid, s in list(self.pids.items()):
                if s == slot and pid != new_pid and pid not in self.retiring:
                    self.retiring[pid] = slot
                    try:
                        os.kill(pid, signal.SIGTERM)  # finishes what it has, then exits
                    except ProcessLookupError:
                        pass
        while self.queue and not self.waiting:
            slot = self.queue.pop(0)
            if slot not in self.pids.values():
                continue  # died meanwhile: the crash restart replaces it
            new_pid, rfd = self.spawn(slot, ready=True)
            self.waiting = (slot, new_pid, rfd, time.monotonic() + READY_TIMEOUT)

    def reap(self, restart: bool) -> None:
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.pids.pop(pid, None)
            relay = self.relays.pop(pid, None)
            if relay is not None:
                lib.srv_balance_vacate(relay)  # no one should leave connections to it
            if slot is None:
                continue
            if pid in self.retiring:
                del self.retiring[pid]
                _say(f"worker {slot} (pid {pid}) retired")
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
        if self.waiting:
            os.close(self.waiting[2])
            self.waiting = None
        self.queue = []
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
