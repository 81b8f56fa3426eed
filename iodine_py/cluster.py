"""Workers: a master process and N forked workers (``-w N``).

The master binds the listening sockets, forks the workers (they inherit the
sockets and all accept on them; the kernel spreads connections), and then
only looks after them: it relays pub/sub between workers (in C, over one
Unix socketpair per worker: ext/cluster.c), restarts a worker that dies
(with a back-off against crash loops), and on SIGINT/SIGTERM stops them all
gracefully and exits 0.

Each worker imports the application itself, after the fork (unless
``--preload``: then the master imported it once, before forking), so a
rolling restart runs the code as it is on disk now. A worker tells the
master it is ready (one byte on a pipe) only once the import worked; one
whose import fails logs the reason in one line and exits with BOOT_ERROR.

Signals (the master's; gunicorn's arbiter is the model):

    SIGHUP, SIGUSR1   rolling restart: each worker in turn is replaced by a
                      fresh one, and the old one retires (SIGUSR2: it stops
                      accepting, spreads its connections' on_shutdown over
                      the drain period, then has the grace period) only
                      once its replacement is ready. A replacement that
                      cannot import the app stops the roll: the old workers
                      keep serving.
    SIGTTIN, SIGTTOU  one worker more, one fewer
    SIGTERM, SIGINT   graceful stop: listeners shut at once (new connections
                      are refused), workers get the grace period, any left
                      after it (+0.8 s) are killed; exit status 0
    second SIGINT,    fast stop: workers get SIGQUIT (they _exit at once)
    SIGQUIT

The listening sockets are bound once, here, and shared (not SO_REUSEPORT):
the master keeps them open, so a connection that arrives while workers
change places waits in the kernel's backlog and is never refused.

Forking happens here, in Python, between turns of the master's C loop, so
no other thread holds a lock at that moment; each child starts a fresh loop
(srv_after_fork) before doing anything else.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Protocol, Set, Tuple

from ._native import lib
from .config import Config
from .importer import describe_error
from .log import logger

# A worker that dies sooner than this after starting counts as crashing:
# its restart waits, doubling each time, up to MAX_BACKOFF.
QUICK_DEATH = 2.0
MAX_BACKOFF = 10.0
# A replacement that has not said "ready" by then is given up on (the old
# worker stays) and the rolling restart stops there.
READY_TIMEOUT = 30.0
MAX_RELAYS = lib.CL_MAX_WORKERS  # relay slots in the master (ext/cluster.h)
# Exit statuses of a worker: it could not import the application; it
# stopped by itself after --max-requests (to be replaced at once).
BOOT_ERROR = 3
RECYCLED = 4
# After the grace period a worker still running is killed this much later
# (its own watchdog exits it at grace + 0.5 s; this is the backstop).
KILL_MARGIN = 0.8

role = "single"  # "master" or "worker" once a cluster runs


def _say(text: str) -> None:
    logger.info(text)


class BootError(RuntimeError):
    """No worker could import the application at start: the master gave up."""


class WorkerRuntime(Protocol):
    """What a worker does with the runtime it makes (server.Runtime is one)."""

    max_requests: int  # its recycling point, set before serve()

    @property
    def recycled(self) -> bool: ...

    def serve(self) -> None: ...


class Master:
    def __init__(self, config: Config, make_runtime: Callable[[], WorkerRuntime],
                 hooks: Callable[[str], None]) -> None:
        self.config = config
        self.workers = config.workers
        self.grace = config.grace
        self.make_runtime = make_runtime
        self.hooks = hooks
        self.pids: Dict[int, int] = {}        # pid -> slot (the worker's number)
        self.relays: Dict[int, int] = {}      # pid -> its pub/sub relay channel
        self.started: Dict[int, float] = {}   # slot -> when it was forked
        self.backoff: Dict[int, float] = {}   # slot -> current restart delay
        self.due: Dict[int, float] = {}       # slot -> when to restart it
        self.booting: Dict[int, int] = {}     # ready pipe's read end -> pid
        self.ready: Set[int] = set()          # pids that said they serve
        self.ever_ready = False
        self.boot_failed = 0                  # workers that could not import, before any was ready
        # rolling restart (SIGHUP/SIGUSR1)
        self.retiring: Dict[int, int] = {}    # old pid -> slot, told to stop
        self.queue: List[int] = []            # slots still to replace
        self.waiting: Optional[Tuple[int, int, float]] = None  # slot, new pid, deadline
        self.restart_asked = ""
        self.more = 0                         # SIGTTIN - SIGTTOU not yet acted on
        self.reloader: Optional[Callable[[], bool]] = None  # --reload: True when files changed

    # -- forking ----------------------------------------------------------------------
    def spawn(self, slot: int) -> int:
        """Fork a worker for `slot`; it says b"1" on a pipe once it has
        imported the app and is about to serve."""
        used = set(self.relays.values())
        relay = next(i for i in range(MAX_RELAYS) if i not in used)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setblocking(False)
        b.setblocking(False)
        mine, theirs = a.detach(), b.detach()
        rfd, wfd = os.pipe()
        self.hooks("before_fork")
        pid = os.fork()
        if pid == 0:  # the worker
            self._child(slot, relay, mine, theirs, rfd, wfd)
        os.close(theirs)
        os.close(wfd)
        os.set_blocking(rfd, False)
        lib.cl_master_adopt(mine, relay)
        self.pids[pid] = slot
        self.relays[pid] = relay
        self.booting[rfd] = pid
        self.started[slot] = time.monotonic()
        self.hooks("after_fork")
        _say(f"worker {slot} started (pid {pid})")
        return pid

    def _child(self, slot: int, relay: int, mine: int, theirs: int, rfd: int, wfd: int) -> None:
        code = 0
        try:
            global role
            role = "worker"
            for s in (signal.SIGUSR1, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
                signal.signal(s, signal.SIG_IGN)  # the master's signals
            os.close(mine)
            os.close(rfd)
            for fd in self.booting:
                os.close(fd)
            lib.srv_after_fork()
            lib.srv_balance_join(relay)  # its slot in the accept balance (server.c)
            lib.cl_worker_adopt(theirs)
            try:
                runtime = self.make_runtime()  # imports the app unless preloaded
            except Exception as exc:
                logger.error(f"worker {slot} (pid {os.getpid()}) cannot load the "
                             f"application: {describe_error(exc)}")
                code = BOOT_ERROR
                return
            # after the import: hooks the application's module adds run too
            self.hooks("after_fork")
            self.hooks("enter_child")
            try:
                os.write(wfd, b"1")  # the loop attaches the listeners next
            except OSError:
                pass  # the master is stopping and stopped listening: so do we, soon
            os.close(wfd)
            limit = self.config.max_requests
            if limit:
                runtime.max_requests = limit + random.randint(0, self.config.max_requests_jitter)
            runtime.serve()
            if runtime.recycled:
                code = RECYCLED
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

    # -- the master's loop --------------------------------------------------------
    def run(self) -> int:
        global role
        role = "master"
        lib.srv_set_master(1)
        handlers = {signal.SIGUSR1: self._on_roll, signal.SIGHUP: self._on_roll,
                    signal.SIGTTIN: self._on_ttin, signal.SIGTTOU: self._on_ttou}
        old = {s: signal.signal(s, h) for s, h in handlers.items()}
        # the accept balance's shared page: room for every worker and, during
        # a rolling restart, the old ones still finishing, and some SIGTTINs
        # (slots are relay numbers, the lowest free first; a worker past the
        # page is simply not balanced)
        lib.srv_balance_init(min(MAX_RELAYS, 4 * self.workers + 8))
        try:
            for slot in range(self.workers):
                self.spawn(slot)
            self.hooks("enter_master")
            while not lib.srv_master_turn(50 if self.waiting or self.booting else 200):
                self.check_ready()
                self.reap(restart=True)
                if not self.ever_ready and self.boot_failed and not self.pids:
                    self.stop()
                    raise BootError("no worker could load the application")
                now = time.monotonic()
                for slot, when in list(self.due.items()):
                    if now >= when:
                        del self.due[slot]
                        self.spawn(slot)
                self.resize()
                if self.reloader is not None and self.reloader():
                    self.restart_asked = "reload"
                self.roll()
            self.hooks("start_shutdown")
            return self.stop()
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def check_ready(self) -> None:
        for rfd, pid in list(self.booting.items()):
            try:
                said = os.read(rfd, 1)
            except BlockingIOError:
                continue
            os.close(rfd)
            del self.booting[rfd]
            if said == b"1":
                self.ready.add(pid)
                if not self.ever_ready:  # slots whose first worker could not import: again
                    self.ever_ready = True
                    for slot in range(self.workers):
                        if slot not in self.pids.values() and slot not in self.due:
                            self.due[slot] = time.monotonic()

    # -- signals: acted on by the loop, not in the handlers --------------------------
    def _on_roll(self, signum: int, frame: Any) -> None:
        self.restart_asked = signal.Signals(signum).name

    def _on_ttin(self, signum: int, frame: Any) -> None:
        self.more += 1

    def _on_ttou(self, signum: int, frame: Any) -> None:
        self.more -= 1

    def resize(self) -> None:
        if not self.more:
            return
        more, self.more = self.more, 0
        target = max(1, min(MAX_RELAYS // 2, self.workers + more))
        if target == self.workers:
            return
        _say(f"workers: {self.workers} -> {target}")
        if target > self.workers:
            for slot in range(self.workers, target):
                self.spawn(slot)
        else:
            for pid, slot in sorted(self.pids.items(), key=lambda kv: -kv[1]):
                if slot >= target and pid not in self.retiring:
                    self.retire(pid, slot)
            self.queue = [s for s in self.queue if s < target]
            for slot in [s for s in self.due if s >= target]:
                del self.due[slot]
        self.workers = target

    def retire(self, pid: int, slot: int) -> None:
        self.retiring[pid] = slot
        try:
            os.kill(pid, signal.SIGUSR2)  # stops accepting, drains, then exits
        except ProcessLookupError:
            pass

    # -- rolling restart ------------------------------------------------------------
    def roll(self) -> None:
        if self.restart_asked:
            why, self.restart_asked = self.restart_asked, ""
            if self.queue or self.waiting:
                _say(f"{why}: a rolling restart is already under way")
            else:
                self.queue = sorted(set(s for p, s in self.pids.items()
                                        if p not in self.retiring))
                _say(f"{why}: rolling restart of {len(self.queue)} workers")
        if self.waiting:
            slot, new_pid, deadline = self.waiting
            if new_pid in self.ready:
                self.waiting = None
                for pid, s in list(self.pids.items()):
                    if s == slot and pid != new_pid and pid not in self.retiring:
                        self.retire(pid, slot)
            elif new_pid not in self.pids or time.monotonic() >= deadline:
                self.waiting = None
                _say(f"worker {slot} (pid {new_pid}) did not start serving; "
                     f"rolling restart stopped, the old workers keep serving")
                if new_pid in self.pids:
                    self.retire(new_pid, slot)
                self.queue = []
                return
        while self.queue and not self.waiting:
            slot = self.queue.pop(0)
            if slot not in self.pids.values():
                continue  # died meanwhile: the crash restart replaces it
            new_pid = self.spawn(slot)
            self.waiting = (slot, new_pid, time.monotonic() + READY_TIMEOUT)

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
            self.ready.discard(pid)
            for rfd, p in list(self.booting.items()):
                if p == pid:
                    os.close(rfd)
                    del self.booting[rfd]
            if relay is not None:
                lib.srv_balance_vacate(relay)  # no one should leave connections to it
            if slot is None:
                continue
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
            if pid in self.retiring:
                del self.retiring[pid]
                _say(f"worker {slot} (pid {pid}) retired")
                continue
            if not restart:
                continue
            if self.waiting and self.waiting[1] == pid:
                continue  # a replacement that failed: roll() reports it, the old one stays
            if code == BOOT_ERROR and not self.ever_ready:
                self.boot_failed += 1
                continue
            if slot >= self.workers:
                continue  # SIGTTOU took its place away
            lived = time.monotonic() - self.started.get(slot, 0.0)
            if code == RECYCLED:
                _say(f"worker {slot} (pid {pid}) recycled after --max-requests")
                self.due[slot] = time.monotonic()
                continue
            how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"status {code}")
            if lived < QUICK_DEATH:
                delay = min(MAX_BACKOFF, max(0.5, self.backoff.get(slot, 0.25) * 2))
            else:
                delay = 0.0
            self.backoff[slot] = delay
            logger.warning(f"worker {slot} (pid {pid}) exited with {how}; "
                           f"restarting{f' in {delay:.1f}s' if delay else ''}")
            self.due[slot] = time.monotonic() + delay

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> int:
        lib.srv_shutdown_listeners()  # a signal did it already; Iodine.stop() did not
        for rfd in self.booting:
            os.close(rfd)
        self.booting.clear()
        self.waiting = None
        self.queue = []
        self.due.clear()
        fast = bool(lib.srv_fast_exit_requested())
        self._signal_all(signal.SIGQUIT if fast else signal.SIGTERM)
        deadline = time.monotonic() + (0.5 if fast else self.grace + KILL_MARGIN)
        while self.pids and time.monotonic() < deadline:
            if not fast and lib.srv_fast_exit_requested():  # a second SIGINT meanwhile
                fast = True
                self._signal_all(signal.SIGQUIT)
                deadline = min(deadline, time.monotonic() + 0.5)
            lib.srv_master_turn(20)  # keep relaying while workers finish
            self.reap(restart=False)
        for pid in list(self.pids):
            logger.warning(f"worker pid {pid} did not stop in time; killing it")
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.pids.clear()
        return 0
