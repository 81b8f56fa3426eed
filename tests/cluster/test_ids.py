"""Message ids across the workers of one server (-w 2): the master is the
sequencer, so every worker sees every message once, in one order, with one
id; an SSE client resumes with Last-Event-ID on whichever worker it lands.

A retiring worker keeps its relay through its drain. Real server
(tests/apps/ps_app.py), real sockets; which worker holds a
connection is asked of the connection itself (its pid)."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from tests.pubsub.pslib import PsClient, SseClient

WORKERS = 2
N = 300


def start(run_server, *flags):
    srv = run_server("ps_app", "-w", str(WORKERS), "--history", "1000", *flags)
    for slot in range(WORKERS):
        srv.wait_for_stderr(re.compile(r"worker %d started \(pid \d+\)" % slot), timeout=15)
    return srv


def ws_on_every_worker(srv, tries: int = 40) -> dict[int, PsClient]:
    """One WebSocket client per worker (opened in pairs: both sit in the
    accept queue at once, so the workers share them)."""
    by_pid: dict[int, PsClient] = {}
    spare = []
    for i in range(tries):
        pair = [PsClient(srv, f"c{i}a"), PsClient(srv, f"c{i}b")]
        for c in pair:
            pid = c.cmd("pid")
            if pid in by_pid:
                spare.append(c)
            else:
                by_pid[pid] = c
        if len(by_pid) == WORKERS:
            break
    for c in spare:
        c.close()
    if len(by_pid) < WORKERS:
        for c in by_pid.values():
            c.close()
        pytest.fail(f"connections reached {len(by_pid)} of {WORKERS} workers")
    return by_pid


def sse_on(srv, pid: int, tries: int = 40, **kw) -> SseClient:
    """An SSE client held by worker `pid`."""
    for i in range(tries):
        pair = [SseClient(srv, f"s{i}a", **kw), SseClient(srv, f"s{i}b", **kw)]
        got = None
        for s in pair:
            if got is None and s.ready["pid"] == pid:
                got = s
            else:
                s.close()
        if got:
            return got
    pytest.fail(f"no SSE connection reached worker {pid}")


def reports(c: PsClient, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        r = c.recv_cb(30)
        out.append((r["cb"][1], r["id"]))
    return out


def test_two_workers_publishing_concurrently_see_one_order_and_one_id(run_server):
    srv = start(run_server)
    clients = ws_on_every_worker(srv)
    try:
        for c in clients.values():
            c.sub("seq", cb=True, with_id=True)
        a, b = clients.values()
        # both workers publish at once: the commands go out before either ack
        a.ws.send_text(json.dumps({"op": "pubn", "id": -1, "ch": "seq", "n": N, "prefix": "A"}))
        b.ws.send_text(json.dumps({"op": "pubn", "id": -2, "ch": "seq", "n": N, "prefix": "B"}))
        got = {}
        for pid, c in clients.items():
            seen = []
            while len(seen) < 2 * N:
                op, data = c.recv(30)
                obj = json.loads(data)
                if "ack" in obj:
                    assert obj["r"] is True
                    continue
                seen.append((obj["cb"][1], obj["id"]))
            got[pid] = seen
        orders = list(got.values())
        assert orders[0] == orders[1], "the workers saw different orders or ids"
        ids = [tuple(int(x) for x in i.split("-")) for _, i in orders[0]]
        assert ids == sorted(ids) and len(set(ids)) == 2 * N, "ids not strictly increasing"
        msgs = [m for m, _ in orders[0]]
        assert [m for m in msgs if m[0] == "A"] == [f"A{i}" for i in range(N)]
        assert [m for m in msgs if m[0] == "B"] == [f"B{i}" for i in range(N)]
        # they really interleaved (else the test shows nothing about concurrency)
        switches = sum(1 for x, y in zip(msgs, msgs[1:]) if x[0] != y[0])
        assert switches >= 1
    finally:
        for c in clients.values():
            c.close()


def test_publisher_delivers_on_receipt_with_the_masters_id(run_server):
    srv = start(run_server)
    clients = ws_on_every_worker(srv)
    try:
        for c in clients.values():
            c.sub("own", cb=True, with_id=True)
        a, b = clients.values()
        assert a.pub("own", "from-a") is True
        ra, rb = reports(a, 1), reports(b, 1)
        assert ra == rb and ra[0][0] == "from-a"
    finally:
        for c in clients.values():
            c.close()


@pytest.mark.parametrize("where", ["same", "other"])
def test_sse_resume_on_the_same_or_another_worker(run_server, where):
    srv = start(run_server)
    clients = ws_on_every_worker(srv)
    pids = sorted(clients)
    # one publisher, so one publish order (two publishers in different
    # workers are ordered by when the master reads them, not by wall clock)
    pub = clients[pids[1]]
    for c in clients.values():
        if c is not pub:
            c.close()
    first = sse_on(srv, pids[0], sub="room")
    try:
        for i in range(6):
            assert pub.pub("room", f"r{i}") is True
        got = [first.next_event(10) for _ in range(6)]
        assert [e["data"] for e in got] == [f"r{i}" for i in range(6)]
    finally:
        first.close()
    last = got[1]["id"]  # it read two, then lost the connection
    for i in range(6, 10):
        assert pub.pub("room", f"r{i}") is True
    target = pids[0] if where == "same" else pids[1]
    again = sse_on(srv, target, sub="room", last_event_id=last)
    try:
        # a publish returns once its worker handed it to the master, so the
        # last ones may still be on their way to this worker: those come
        # live instead of replayed, still in order, once
        replayed, complete = again.ready["resume"]
        assert complete and 4 <= replayed <= 8, again.ready
        missed = [again.next_event(10) for _ in range(8)]
        assert [e["data"] for e in missed] == [f"r{i}" for i in range(2, 10)]
        assert missed[:4] == got[2:]  # same ids on either worker
        assert pub.pub("room", "live") is True
        assert again.next_event(10)["data"] == "live"
    finally:
        again.close()
        pub.close()


def test_a_restarted_worker_reports_the_gap_it_cannot_fill(run_server):
    """kill -9 a worker: its replacement starts with an empty history, so a
    resume there from an older id replays nothing and says so (complete is
    False), while the surviving worker still replays everything."""
    srv = start(run_server)
    clients = ws_on_every_worker(srv)
    pids = sorted(clients)
    pub = clients[pids[0]]
    clients[pids[1]].close()
    obs = clients[pids[0]]
    obs.sub("gap", cb=True, with_id=True)
    for i in range(5):
        assert pub.pub("gap", f"g{i}") is True
    seen = reports(obs, 5)
    mark = srv.stderr_mark()
    os.kill(pids[1], signal.SIGKILL)
    m = srv.wait_for_stderr(re.compile(r"worker \d+ started \(pid (\d+)\)"), timeout=20,
                            start=mark)
    new_pid = int(m.group(1))
    assert pub.pub("gap", "after") is True
    fresh = sse_on(srv, new_pid, sub="gap", last_event_id=seen[1][1])
    try:
        replayed, complete = fresh.ready["resume"]
        assert complete is False
        # whatever it has is newer than its start: at most "after"
        assert replayed <= 1
        events = [fresh.next_event(10) for _ in range(replayed)]
        assert [e["data"] for e in events] in ([], ["after"])
        assert pub.pub("gap", "live") is True
        assert fresh.next_event(10)["data"] == ("after" if not events else "live")
    finally:
        fresh.close()
    old = sse_on(srv, pids[0], sub="gap", last_event_id=seen[1][1])
    try:
        assert old.ready["resume"] == [5, True]
        assert [old.next_event(10)["data"] for _ in range(5)] == ["g2", "g3", "g4", "after", "live"]
    finally:
        old.close()
        pub.close()


def test_a_retiring_worker_keeps_cluster_pubsub_through_its_drain(run_server):
    """A worker retiring with a drain (SIGTTOU here, a rolling restart
    alike) keeps its relay to the master until its last client has gone
    (the relay is plumbing, ext/reactor.h): its WebSocket clients, told to
    leave only at the end of the drain, still publish to and hear from the
    other workers meanwhile."""
    drain = 4.0
    srv = start(run_server, "--drain", str(drain), "--grace", "5")
    clients = ws_on_every_worker(srv)
    slot1 = int(srv.wait_for_stderr(re.compile(r"worker 1 started \(pid (\d+)\)")).group(1))
    leaving = clients[slot1]
    staying = next(c for pid, c in clients.items() if pid != slot1)
    try:
        for c in clients.values():
            c.sub("drain", cb=True)
        srv.send_signal(signal.SIGTTOU)  # the highest slot retires, drained
        srv.wait_for_stderr("workers: 2 -> 1", timeout=5)
        t0 = time.monotonic()
        n = 0
        # publish both ways through most of the drain (the retiring
        # worker's stop begins at once; its client hears 1001 at the end)
        while time.monotonic() - t0 < drain * 0.6:
            for src, dst in ((leaving, staying), (staying, leaving)):
                msg = f"{n}"
                assert src.pub("drain", msg) is True, f"publish {n} refused mid-drain"
                for c in (src, dst):
                    got = c.recv_cb(5)["cb"]
                    assert got == ["drain", msg], f"{got} instead of message {n}"
                n += 1
            time.sleep(0.2)  # pacing the load over the drain, not a synchronisation
        assert n >= 10
        srv.wait_for_stderr(re.compile(r"worker 1 \(pid %d\) retired" % slot1), timeout=15)
    finally:
        for c in clients.values():
            c.close()
