"""Workers: -w 0 picks one per CPU, SIGUSR1 replaces workers one at a time
with zero failed requests while load runs, and SIGUSR1 without workers is
harmless."""
import json
import os
import re
import signal
import threading
import time

from tests.rawhttp import Connection

LOAD_THREADS = 4
LOAD_LIMIT_S = 60.0  # the load stops by then whatever happens


class Load:
    """Threads each sending requests on fresh connections (Connection:
    close) until stopped; every request either gets a complete 200 or
    counts as an error (refused, reset, truncated)."""

    def __init__(self, srv, target="/"):
        self.srv, self.target = srv, target
        self.ok = 0
        self.errors = []
        self.pids = []  # (time, pid) of each answer
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(LOAD_THREADS)]
        self.deadline = time.monotonic() + LOAD_LIMIT_S

    def run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                with Connection(self.srv.host, self.srv.port, timeout=10) as c:
                    c.request("GET", self.target, {"Connection": "close"})
                    resp = c.read_response(timeout=10)
                    assert resp.status == 200, resp
                    pid = json.loads(resp.body)["pid"]
                with self.lock:
                    self.ok += 1
                    self.pids.append((time.monotonic(), pid))
            except (OSError, AssertionError, ValueError) as e:
                with self.lock:
                    self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def wait_ok(self, more, timeout=20.0):
        with self.lock:
            target = self.ok + more
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.ok >= target or self.errors:
                    return
            time.sleep(0.01)  # polling a counter, not synchronising with the server
        raise AssertionError(f"load stalled at {self.ok} answers")


def worker_pids(srv):
    return [int(m.group(1)) for m in map(re.compile(r"started \(pid (\d+)\)").search,
                                         srv.stderr_lines) if m]


def test_hot_restart_replaces_every_worker_without_failed_requests(run_server):
    srv = run_server("whoami", "-w", "2")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    old = set(worker_pids(srv))
    with Load(srv, "/slow?ms=20") as load:
        load.wait_ok(50)
        srv.send_signal(signal.SIGUSR1)
        srv.wait_for_stderr("SIGUSR1: rolling restart of 2 workers", timeout=10)
        retired = srv.wait_for_lines(re.compile(r"worker \d+ \(pid (\d+)\) retired"), 2, timeout=40)
        after_restart = time.monotonic()
        load.wait_ok(100)
    assert not load.errors, f"{len(load.errors)} failed requests during the restart: {load.errors[:5]}"
    assert {int(m.group(1)) for m in retired} == old
    new = set(worker_pids(srv)) - old
    assert len(new) == 2, srv.stderr
    late = {pid for t, pid in load.pids if t > after_restart + 0.5}
    assert late and late <= new, (late, new)
    for pid in old:  # the old workers are gone, not lingering
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert srv.stop() == 0


def test_hot_restart_twice_in_a_row(run_server):
    srv = run_server("whoami", "-w", "2")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    for round_ in (1, 2):
        srv.send_signal(signal.SIGUSR1)
        srv.wait_for_lines("retired", 2 * round_, timeout=40)
    srv.assert_alive()
    assert len(set(worker_pids(srv))) == 6


def test_sigusr1_without_workers_is_ignored(run_server):
    srv = run_server("whoami")
    srv.send_signal(signal.SIGUSR1)
    srv.assert_alive()
    assert srv.proc.poll() is None


def test_workers_zero_means_one_per_cpu(run_server):
    srv = run_server("whoami", "-w", "0")
    n = len(os.sched_getaffinity(0))
    srv.wait_for_stderr(f"workers: {n}", timeout=5)
    if n > 1:
        srv.wait_for_lines("started (pid", n, timeout=10)
    srv.assert_alive()


def _open_and_ask(srv):
    c = Connection(srv.host, srv.port, timeout=10)
    c.request("GET", "/")
    return c, json.loads(c.read_response().body)["pid"]


def _wait_until_workers_accept(srv, n=2, timeout=10.0):
    """"worker N started" is said at fork; a worker accepts only once its
    loop runs. Connect until n different workers have answered."""
    conns, seen = [], set()
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < n:
            assert time.monotonic() < deadline, f"only {len(seen)} of {n} workers answered"
            c, pid = _open_and_ask(srv)
            conns.append(c)
            seen.add(pid)
    finally:
        for c in conns:
            c.close()


def _pids_of_keepalive_burst(srv, n=40, hold=()):
    """Open n connections, then ask on each which pid serves it. The pids in
    `hold` are stopped while the connections are made, so the whole burst is
    waiting in the accept queue when they run again (else, on an idle
    machine, whichever worker wakes first can take every connection as it
    arrives, one at a time: that is not a burst)."""
    for pid in hold:
        os.kill(pid, signal.SIGSTOP)
    try:
        conns = [Connection(srv.host, srv.port, timeout=10) for _ in range(n)]
    finally:
        for pid in hold:
            os.kill(pid, signal.SIGCONT)
    try:
        for c in conns:
            c.request("GET", "/")
        return [json.loads(c.read_response().body)["pid"] for c in conns]
    finally:
        for c in conns:
            c.close()


def test_a_burst_of_connections_is_shared_by_the_workers(run_server):
    # Shared socket: a worker accepts one connection per loop turn, so a
    # burst (a client opening its pool) does not all land on one worker.
    srv = run_server("whoami", "-w", "2")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    _wait_until_workers_accept(srv)
    pids = _pids_of_keepalive_burst(srv, hold=worker_pids(srv))
    assert len(set(pids)) == 2, f"one worker took all {len(pids)} connections"


def test_reuseport_workers_serve(run_server):
    srv = run_server("whoami", "-w", "2", "--reuseport")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    # "started" is said at fork; each worker then binds its own socket.
    # Until both have, connections hash onto the ones that exist.
    seen, deadline = set(), time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        try:  # (refused while no worker has bound yet: the known trade-off)
            seen.add(json.loads(srv.get("/").body)["pid"])
        except ConnectionRefusedError:
            time.sleep(0.01)
    pids = _pids_of_keepalive_burst(srv)
    assert set(pids) <= set(worker_pids(srv))
    assert len(set(pids)) == 2, pids  # 40 source ports hash onto both sockets




def test_connections_made_one_at_a_time_are_spread_over_the_workers(run_server):
    """A keep-alive pool that grows one connection at a time: on a quiet
    machine the worker that wakes first could take each one. A worker
    holding more connections than the least loaded one leaves new ones to
    it (server.c, accept balance), so the split stays close to even."""
    srv = run_server("whoami", "-w", "2")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    _wait_until_workers_accept(srv)
    conns, pids = [], []
    try:
        for _ in range(40):
            c, pid = _open_and_ask(srv)
            conns.append(c)
            pids.append(pid)
        counts = {p: pids.count(p) for p in set(pids)}
        assert len(counts) == 2 and min(counts.values()) >= 16, counts
    finally:
        for c in conns:
            c.close()


def test_a_busy_worker_does_not_hold_up_new_connections(run_server):
    """The worker with fewer connections is stuck in a slow request (one
    application thread: its loop waits for it). The other leaves each new
    connection to it for at most a few milliseconds, then takes it: new
    clients are served while the busy one is still busy."""
    srv = run_server("whoami", "-w", "2")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    conns, by_pid = [], {}
    try:
        while len(by_pid) < 2 and len(conns) < 200:
            c, pid = _open_and_ask(srv)
            conns.append(c)
            by_pid.setdefault(pid, []).append(c)
        assert len(by_pid) == 2, "never reached the second worker"
        busy = min(by_pid, key=lambda p: len(by_pid[p]))  # the least loaded one
        mark = srv.stderr_mark()
        by_pid[busy][0].request("GET", "/slow?ms=3000")
        # from here its loop is in the application (and it has taken no new
        # connection in the same turn: none was being made)
        srv.wait_for_stderr(f"whoami-slow {busy}", start=mark)
        start = time.monotonic()
        served = []
        for _ in range(10):
            c, pid = _open_and_ask(srv)
            conns.append(c)
            served.append((pid, round(time.monotonic() - start, 3)))
        elapsed = time.monotonic() - start
        assert busy not in [p for p, _ in served], f"the busy worker {busy} answered while busy? {served}"
        assert elapsed < 2.0, f"10 new connections took {elapsed:.2f} s while a worker was busy"
    finally:
        for c in conns:
            c.close()
