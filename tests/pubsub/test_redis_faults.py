"""The Redis engine under faults, against a real redis-server that the test
freezes (SIGSTOP), kills and restarts on the same port.

  freeze, -t 1 and -t 4       a client times requests that publish in their
                              handler on the publishing server while Redis
                              is frozen for 15 s: none over 100 ms
  outages, 2 servers x -w 2   numbered messages at a steady rate from each
                              server; WebSocket subscribers on every worker
                              of both servers; Redis frozen 8 s / 40 s,
                              killed 5 s / 60 s then restarted: every
                              subscriber gets every message exactly once,
                              each publisher's in order
  before connect              publishes queued before Redis is up arrive
                              in order once it is
  cmd                         a reply to a callback on the loop thread;
                              cmd_wait refused there; a frozen Redis holds
                              a waiting command, never another request

App: tests/apps/redis_app.py. Every wait polls for its condition with a
deadline; the only sleeps are the outages themselves (their length is the
point) and the publishers' pacing.
"""

from __future__ import annotations

import http.client
import socket
import json
import os
import re
import threading
import time
from typing import Dict, List

import pytest
import websocket

from tests.pubsub.pslib import http_json

CONNECTED = re.compile(r"iodine: redis: connected to 127\.0\.0\.1:\d+/0")
# The bound on a request while Redis is frozen is 100 ms; under ASan+UBSan
# (make test-asan preloads libasan) everything runs 2-3x slower, so the bound is 300 ms
# there. Either still fails on the bug it guards against: a call that waits for a frozen
# Redis waits at least a reply deadline (1 s here), up to a socket timeout.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")
STALL_LIMIT = 0.300 if SANITIZED else 0.100


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Sub:
    """A WebSocket subscriber (websocket-client) collecting every message
    in a thread of its own."""

    def __init__(self, srv, ch: str = "seq") -> None:
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/?ch={ch}", timeout=10)
        self.pid = int(self.ws.recv())
        self.got: List[str] = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        self.ws.settimeout(None)
        try:
            while True:
                m = self.ws.recv()
                with self.lock:
                    self.got.append(m if isinstance(m, str) else m.decode())
        except Exception:
            return

    def messages(self) -> List[str]:
        with self.lock:
            return list(self.got)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


def subscribers_on_every_worker(srv, workers: int, per_server: int = 3) -> List[Sub]:
    """Open subscribers until every worker of `srv` has at least one (the
    kernel picks the worker; bounded)."""
    subs: List[Sub] = []
    for _ in range(40):
        subs.append(Sub(srv))
        if len({s.pid for s in subs}) >= workers and len(subs) >= per_server:
            return subs
    raise AssertionError(f"40 connections reached only workers {sorted({s.pid for s in subs})}")


def publish(srv, ch: str, msg: str) -> bool:
    return http_json(srv, "GET", f"/pub?ch={ch}&msg={msg}")["r"]


def until_everyone_hears(servers, subs: List[Sub], timeout: float = 30.0) -> None:
    """Probe until every subscriber heard a probe: every worker's engine is
    connected and reads the stream (a reader that connects for the first
    time starts at the stream's end, so an early probe may be missed)."""
    deadline = time.monotonic() + timeout
    k = 0
    while True:
        for srv in servers:
            publish(srv, "seq", f"probe:{k}")
            k += 1
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if all(any(m.startswith("probe:") for m in s.messages()) for s in subs):
                return
            time.sleep(0.02)
        assert time.monotonic() < deadline, "not every subscriber hears the stream"


def tally(msgs: List[str], tag: str, n: int) -> Dict[str, int]:
    seq = [int(m.split(":", 1)[1]) for m in msgs if m.startswith(tag + ":")]
    seen = set(seq)
    return {"lost": n - len(seen & set(range(n))), "duplicated": len(seq) - len(seen),
            "reordered": sum(1 for a, b in zip(seq, seq[1:]) if b < a)}


# -- (a) a frozen Redis never stalls the publishing server --------------------------

@pytest.mark.parametrize("threads", ["1", "4"])
def test_frozen_redis_does_not_stall_requests_that_publish(redis_server, run_server, threads):
    rs = redis_server()
    srv = run_server("redis_app", "-r", rs.url(), "-rp", "1", "-t", threads)
    srv.wait_for_stderr(CONNECTED, timeout=10)
    sub = Sub(srv, "lat")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    worst = 0.0
    i = 0
    try:
        def timed(i: int) -> float:
            t = time.perf_counter()
            conn.request("GET", f"/pub?ch=lat&msg=m{i}")
            r = conn.getresponse()
            body = json.loads(r.read())
            took = time.perf_counter() - t
            assert r.status == 200 and body["r"] is True, body
            return took

        # warm up, then freeze for 15 s while timing requests throughout
        for _ in range(20):
            timed(i)
            i += 1
        mark = srv.stderr_mark()
        rs.freeze()
        frozen_until = time.monotonic() + 15
        try:
            while time.monotonic() < frozen_until:
                worst = max(worst, timed(i))
                i += 1
                time.sleep(0.005)
        finally:
            rs.thaw()
        # the engine noticed (ping 1 s) and says so once
        srv.wait_for_stderr(re.compile(r"iodine: redis: connection lost"), timeout=5, start=mark)
        srv.wait_for_stderr(CONNECTED, timeout=30, start=mark)
        # nothing published during the freeze was lost, doubled or reordered
        wait_until(lambda: len([m for m in sub.messages() if m.startswith("m")]) >= i, 30,
                   "the messages published during the freeze")
        msgs = [m for m in sub.messages() if m.startswith("m")]
        assert msgs == [f"m{k}" for k in range(i)]
    finally:
        conn.close()
        sub.close()
    assert i > 500, f"only {i} requests in 15 s"
    assert worst < STALL_LIMIT, f"a request took {worst * 1000:.1f} ms while Redis was frozen"


# -- (b) nothing lost, nothing doubled, order kept -----------------------------------

OUTAGES = [
    ("freeze", 8, "30"),
    ("freeze", 40, "1"),
    ("kill", 5, "30"),
    ("kill", 60, "1"),
]


@pytest.mark.parametrize("fault,seconds,ping", OUTAGES,
                         ids=[f"{f}-{s}s" for f, s, _ in OUTAGES])
def test_outage_loses_doubles_and_reorders_nothing(redis_server, run_server, fault, seconds,
                                                    ping):
    rs = redis_server()
    a = run_server("redis_app", "-r", rs.url(), "-rp", ping, "-w", "2")
    b = run_server("redis_app", "-r", rs.url(), "-rp", ping, "-w", "2")
    subs = subscribers_on_every_worker(a, 2) + subscribers_on_every_worker(b, 2)
    try:
        until_everyone_hears([a, b], subs)
        rate = 50
        n = rate * (seconds + 4)
        for srv, tag in ((a, "A"), (b, "B")):
            r = http_json(srv, "POST", f"/run?tag={tag}&rate={rate}&n={n}")
            assert r["ok"] is True
        time.sleep(1.0)  # messages flow before the fault
        if fault == "freeze":
            rs.freeze()
            time.sleep(seconds)
            rs.thaw()
        else:
            rs.kill()
            time.sleep(seconds)
            rs.start(rs.port)
        # every subscriber ends with both publishers' last message (or
        # the deadline says what it lacks)
        deadline = time.monotonic() + 60 + seconds

        def complete(s: Sub) -> bool:
            ms = s.messages()
            return f"A:{n - 1}" in ms and f"B:{n - 1}" in ms

        while not all(complete(s) for s in subs) and time.monotonic() < deadline:
            time.sleep(0.1)
        report = {f"{s.pid}#{k}": {tag: tally(s.messages(), tag, n) for tag in "AB"}
                  for k, s in enumerate(subs)}
        bad = {k: v for k, v in report.items()
               if any(x for t in v.values() for x in t.values())}
        assert not bad, f"lost/duplicated/reordered per subscriber: {bad}"
        for srv in (a, b):
            # the outage was noticed and the connections remade (whichever
            # worker answers): the resend and dedup paths ran
            assert http_json(srv, "GET", "/stats")["reconnects"] >= 1
            assert "Traceback" not in srv.stderr
            # one line per episode, never one per message
            assert len(re.findall(r"iodine: redis: connection lost", srv.stderr)) <= 4 * 2
    finally:
        for s in subs:
            s.close()


# -- (c) order from the first publish; cmd ----------------------------------------------

def test_publishes_before_redis_is_up_arrive_in_order(redis_server, run_server):
    rs = redis_server(run=False)
    srv = run_server("redis_app", "-r", rs.url())
    sub = Sub(srv, "early")
    try:
        for i in range(10):
            assert publish(srv, "early", f"e{i}") is True  # queued: Redis is not up
        assert http_json(srv, "GET", "/stats")["queued"] == 10
        rs.start(rs.port)
        srv.wait_for_stderr(CONNECTED, timeout=15)
        wait_until(lambda: len(sub.messages()) >= 10, 15, "the early messages")
        assert sub.messages() == [f"e{i}" for i in range(10)]
    finally:
        sub.close()


@pytest.mark.parametrize("persist", [False, True], ids=["new-stream", "persisted-stream"])
def test_a_restarted_redis_is_read_from_the_right_place(redis_server, run_server, persist):
    """Killed and restarted: without persistence the stream is new and is
    read from its start (nothing published meanwhile is missed); with AOF
    it is the old one and reading goes on from where it was: entries from
    before this server started (a publisher no reader here ever saw) are
    not delivered now."""
    rs = redis_server(persist=persist)
    r = rs.client()
    for i in range(5):  # history from a publisher that is gone
        r.xadd("iodine:pubsub", {"c": "rs", "m": f"old{i}", "t": "1",
                                 "o": "00000000deadbeef", "s": str(i + 1)})
    r.close()
    srv = run_server("redis_app", "-r", rs.url(), "-rp", "1")
    sub = Sub(srv, "rs")
    try:
        srv.wait_for_stderr(CONNECTED, timeout=10)
        wait_until(lambda: publish(srv, "rs", "probe") and "probe" in sub.messages(), 10,
                   "the engine to read the stream")
        assert publish(srv, "rs", "m1") is True
        wait_until(lambda: "m1" in sub.messages(), 10, "m1")
        mark = srv.stderr_mark()
        rs.kill()
        srv.wait_for_stderr(re.compile(r"iodine: redis: connection lost"), timeout=10,
                            start=mark)
        assert publish(srv, "rs", "m2") is True  # queued during the outage
        rs.start(rs.port)
        srv.wait_for_stderr(CONNECTED, timeout=30, start=mark)
        assert publish(srv, "rs", "m3") is True
        wait_until(lambda: "m3" in sub.messages(), 15, "m3")
        got = [m for m in sub.messages() if m != "probe"]
        assert got == ["m1", "m2", "m3"], got
        if persist:
            assert rs.client().xlen("iodine:pubsub") >= 8  # the old entries survived
    finally:
        sub.close()


def test_an_engine_made_while_serving_connects(redis_server, run_server):
    rs = redis_server()
    srv = run_server("redis_app")
    sub = Sub(srv, "late")
    try:
        assert http_json(srv, "GET", f"/engine?url={rs.url()}") == {"ok": True}
        srv.wait_for_stderr(CONNECTED, timeout=10)
        assert publish(srv, "late", "hello") is True
        wait_until(lambda: sub.messages() == ["hello"], 10, "the message through Redis")
        assert rs.client().xlen("iodine:pubsub") == 1
    finally:
        sub.close()


def test_cmd_reply_reaches_its_callback_on_the_loop(redis_server, run_server):
    rs = redis_server()
    srv = run_server("redis_app", "-r", rs.url(), "-t", "1")
    srv.wait_for_stderr(CONNECTED, timeout=10)

    def cb(token: str, *args) -> object:
        r = http_json(srv, "POST", f"/cmd-cb?token={token}", json.dumps(list(args)).encode())
        assert r["r"] is True
        box: Dict[str, object] = {}

        def have() -> bool:
            box.update(http_json(srv, "GET", f"/cb-result?token={token}"))
            return bool(box["have"])

        wait_until(have, 10, f"the reply to {args}")
        return box["r"]

    assert cb("t1", "SET", "k", "v\u00e9") == "OK"
    assert cb("t2", "GET", "k") == "v\u00e9"
    assert cb("t3", "RPUSH", "l", "a", "b") == 2
    assert cb("t4", "LRANGE", "l", 0, -1) == ["a", "b"]
    assert cb("t5", "GET", "nothing") is None
    assert cb("t6", "HSET", "k", "f", "v") == \
        {"error": "RedisError: WRONGTYPE Operation against a key holding the wrong kind of value"}
    # waiting for a reply on the loop thread (-t 1) is refused, not done
    r = http_json(srv, "POST", "/cmd-wait", json.dumps(["GET", "k"]).encode())
    assert r["error"].startswith("RuntimeError: cmd_wait() would block the server's loop")


def test_cmd_callbacks_run_in_reply_order_with_threads(redis_server, run_server):
    rs = redis_server()
    srv = run_server("redis_app", "-r", rs.url(), "-t", "4")
    srv.wait_for_stderr(CONNECTED, timeout=10)
    assert http_json(srv, "GET", "/cmd-seq?n=60")["r"] is True
    wait_until(lambda: len(http_json(srv, "GET", "/cmd-seq-result")) == 60, 15,
               "60 callbacks")
    assert http_json(srv, "GET", "/cmd-seq-result") == list(range(1, 61))


def test_frozen_redis_holds_a_waiting_command_not_other_requests(redis_server, run_server):
    rs = redis_server()
    srv = run_server("redis_app", "-r", rs.url(), "-t", "2")
    srv.wait_for_stderr(CONNECTED, timeout=10)
    assert http_json(srv, "POST", "/cmd-wait", json.dumps(["SET", "k", "1"]).encode()) == \
        {"r": "OK"}
    rs.freeze()
    try:
        result: Dict[str, object] = {}

        def slow() -> None:
            t = time.monotonic()
            result.update(http_json(srv, "POST", "/cmd-wait?timeout=3",
                                    json.dumps(["GET", "k"]).encode(), timeout=20))
            result["took"] = time.monotonic() - t

        th = threading.Thread(target=slow)
        th.start()
        time.sleep(0.3)  # the slow command is on its way (nothing to await: Redis is frozen)
        worst = 0.0
        for _ in range(20):
            t = time.perf_counter()
            assert http_json(srv, "GET", "/pid")["pid"] > 0
            worst = max(worst, time.perf_counter() - t)
        th.join(20)
        assert not th.is_alive()
        assert worst < STALL_LIMIT, \
            f"a request took {worst * 1000:.1f} ms behind a frozen command"
        assert result["error"].startswith("TimeoutError"), result
        assert 2.5 < result["took"] < 10, result
    finally:
        rs.thaw()
    # and once Redis is back the engine works again
    wait_until(lambda: "r" in http_json(srv, "POST", "/cmd-wait?timeout=2",
                                        json.dumps(["GET", "k"]).encode()), 30,
               "a command to succeed after the freeze")


# -- a peer that is not a sane Redis ----------------------------------------------------

@pytest.mark.parametrize("reply", [b"?what\r\n", b"$-7\r\n", b"+" + b"A" * 10000,
                                   b"$999999999999\r\n", b"*1\r\n" * 20],
                         ids=["bad-type", "bad-length", "endless-line", "huge-bulk", "too-deep"])
def test_a_hostile_redis_is_dropped_and_retried_with_back_off(run_server, reply):
    """Whatever a "Redis" answers, the server keeps serving: the connection is
    dropped (one log line), retried with back-off (not a busy loop), and the
    reply never costs more than a line or a bulk's declared size allows."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    lst.settimeout(0.2)
    port = lst.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = lst.accept()
            except OSError:
                continue
            accepted.append(time.monotonic())
            try:
                c.settimeout(1)
                c.recv(4096)
                c.sendall(reply)
            except OSError:
                pass
            threading.Timer(3, c.close).start()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        srv = run_server("redis_app", "-r", f"redis://127.0.0.1:{port}/0")
        srv.wait_for_stderr(re.compile(r"iodine: redis: cannot connect to .*a malformed reply"),
                            timeout=10)
        t0 = time.monotonic()
        for _ in range(20):
            assert http_json(srv, "GET", "/pid")["pid"] > 0
        assert time.monotonic() - t0 < 5
        time.sleep(2.0)  # a window to count reconnect attempts in
        recent = [t for t in accepted if t > time.monotonic() - 2.0]
        assert len(recent) <= 2 * 12, f"{len(recent)} connections in 2 s: no back-off"
        assert len(re.findall("iodine: redis: cannot connect", srv.stderr)) == 1, srv.stderr
        srv.assert_alive()
    finally:
        stop.set()
        th.join(5)
        lst.close()
