"""Workers (-w N) and pub/sub across them: a publish in any worker reaches
the subscribers of every worker, exactly once each, in publish order; a
worker that dies is restarted and its clients reconnect."""
import os
import re
import signal
import socket
import time

import pytest
import websocket

WORKERS = 3


def worker_pids(master_pid):
    with open(f"/proc/{master_pid}/task/{master_pid}/children") as f:
        return [int(p) for p in f.read().split()]


def start_cluster(run_server, n):
    srv = run_server("cluster_chat", "-w", str(n))
    for slot in range(n):
        srv.wait_for_stderr(re.compile(r"worker %d started \(pid \d+\)" % slot), timeout=10)
    return srv


def connect_until_all_workers(port, want, burst=8, timeout=20.0):
    """Open WebSockets until every worker holds at least one; each socket
    says which pid took it. Connections are opened in bursts: all of a
    burst sits in the accept queue at once and a worker takes one per loop
    turn, so the burst spreads over the workers. One at a time, whichever
    worker the scheduler wakes first may take them all (2 cores, 3 workers)."""
    socks, seen = [], {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = [socket.create_connection(("127.0.0.1", port), timeout=5)
               for _ in range(burst)]
        for s in raw:
            ws = websocket.create_connection(f"ws://127.0.0.1:{port}/",
                                             socket=s, timeout=5)
            pid = int(ws.recv().split()[1])
            socks.append((pid, ws))
            seen.setdefault(pid, ws)
        if len(seen) >= want:
            return socks, seen
    for _, ws in socks:
        ws.close()
    pytest.fail(f"connections reached only {len(seen)} of {want} workers")


def test_publish_reaches_every_worker_once_in_order(run_server):
    srv = start_cluster(run_server, WORKERS)
    socks, seen = connect_until_all_workers(srv.port, WORKERS)
    try:
        assert len(worker_pids(srv.proc.pid)) == WORKERS
        sender = socks[0][1]
        n = 50
        for i in range(n):
            sender.send(f"m{i}")
        for pid, ws in socks:
            got = [ws.recv() for _ in range(n)]
            assert got == [f"m{i}" for i in range(n)], f"worker {pid}"
        # exactly once: a closing marker, published after the run, is the
        # very next message everywhere (order holds, so a duplicate of any
        # m<i> would arrive before it)
        sender.send("end")
        for pid, ws in socks:
            assert ws.recv() == "end", f"worker {pid}"
    finally:
        for _, ws in socks:
            ws.close()


def test_a_dead_worker_is_restarted_and_serves_again(run_server):
    srv = start_cluster(run_server, 2)
    before = worker_pids(srv.proc.pid)
    assert len(before) == 2
    mark = srv.stderr_mark()
    os.kill(before[0], signal.SIGKILL)
    srv.wait_for_stderr(re.compile(r"worker \d \(pid %d\) exited with signal 9; restarting"
                                   % before[0]), timeout=10, start=mark)
    srv.wait_for_stderr(re.compile(r"worker \d started \(pid \d+\)"), timeout=10, start=mark)
    now = worker_pids(srv.proc.pid)
    assert len(now) == 2 and before[0] not in now
    # the new worker takes part in pub/sub: reach both workers, publish, all receive
    socks, seen = connect_until_all_workers(srv.port, 2)
    try:
        socks[0][1].send("after restart")
        for _, ws in socks:
            assert ws.recv() == "after restart"
    finally:
        for _, ws in socks:
            ws.close()


def test_sigterm_stops_master_and_workers(run_server):
    srv = start_cluster(run_server, 2)
    kids = worker_pids(srv.proc.pid)
    assert srv.get("/").status == 200
    assert srv.stop(signal.SIGTERM, timeout=20) == 0
    for pid in kids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
