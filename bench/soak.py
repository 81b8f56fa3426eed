#!/usr/bin/env python3
"""Soak test: run the server for a while under mixed, churning load and
check that it neither leaks nor fails.

    .venv/bin/python bench/soak.py                 # 10 minutes
    .venv/bin/python bench/soak.py --seconds 60    # a shake-down run

It starts the server itself (`iodine bench/apps/soak_app.py -w 2 -t 2`),
then, from client threads, drives at once:
  - HTTP on keep-alive connections (GET, sized and streamed bodies, POST
    echo; each connection replaced after a random number of requests),
  - HTTP with a new connection per request,
  - WebSocket echo sessions (random text/binary messages, each checked;
    ended by a close handshake, or now and then by just dropping the socket),
  - pub/sub: WebSocket and SSE subscribers that come and go (channels,
    patterns and the ticks every worker publishes every 50 ms, whose order
    per worker is checked) and publishers posting to rooms.

It reports the RSS of the master and each worker and their open file
descriptors (/proc/PID/status, /proc/PID/fd) at the start, after the
warm-up and at the end, with request/message counts and errors, and exits 1
when:
  - any process's RSS grew more than RSS_GROWTH_LIMIT_MIB between the end
    of the warm-up and the end (allocator noise is a few MiB; a leak of a
    few hundred bytes per request passes that within minutes),
  - a process holds more fds once the load has stopped than before it began
    (FD_SLACK allowed),
  - a client saw an unprovoked error (a wrong answer, an unexpected close,
    a timeout, a missing or out-of-order tick), a worker died, the server's
    stderr shows a crash or a traceback, or it did not exit 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.rawhttp import Connection, ConnectionClosed  # noqa: E402
from tests.server import CRASH_MARKERS, base_env, server_cmd  # noqa: E402
from tests.websocket import wsraw  # noqa: E402

RSS_GROWTH_LIMIT_MIB = 32
FD_SLACK = 2
SETTLE_SECONDS = 15  # after the load stops: lingering closes finish

PATTERN = bytes(range(256)) * 4


def expected_bytes(n: int) -> bytes:
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


# --- the server ---------------------------------------------------------------

class Server:
    def __init__(self, workers: int, threads: int):
        cmd = server_cmd() + ["bench/apps/soak_app.py", "-p", "0", "-b", "127.0.0.1",
                              "-w", str(workers), "-t", str(threads)]
        self.proc = subprocess.Popen(cmd, cwd=str(REPO), env=base_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait(r"Listening on http://[^:]+:(\d+)").group(1))
        self.workers = {}
        for k in range(workers):
            m = self.wait(rf"worker {k} started \(pid (\d+)\)")
            self.workers[k] = int(m.group(1))

    def _read(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    def wait(self, pattern: str, timeout: float = 15.0) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise SystemExit(f"soak: server never printed {pattern!r}:\n"
                                     + "\n".join(self.lines))
                self.cond.wait(min(left, 0.2))

    def pids(self) -> dict[str, int]:
        out = {"master": self.proc.pid}
        out.update({f"worker{k}": pid for k, pid in self.workers.items()})
        return out

    def stderr(self) -> str:
        with self.cond:
            return "\n".join(self.lines)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def snapshot(srv: Server) -> dict[str, tuple[int, int]]:
    """name -> (RSS KiB, open fds)."""
    return {name: (rss_kib(pid), fd_count(pid)) for name, pid in srv.pids().items()}


# --- the load -------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()
        self.errors: list[str] = []
        self.error_count = 0

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def error(self, where: str, exc: BaseException) -> None:
        with self.lock:
            self.error_count += 1
            if len(self.errors) < 20:
                self.errors.append(f"{where}: {type(exc).__name__}: {exc}"[:400])


class Load:
    def __init__(self, port: int, stop: threading.Event, stats: Stats, seed: int):
        self.host, self.port = "127.0.0.1", port
        self.stop = stop
        self.stats = stats
        self.seed = seed

    def run(self, name: str, fn, k: int) -> threading.Thread:
        def loop():
            rnd = random.Random(self.seed * 1000 + k)
            while not self.stop.is_set():
                try:
                    fn(rnd, k)
                except Exception as e:  # every failure is an unprovoked error
                    if self.stop.is_set():
                        return  # cut off by the end of the run
                    self.stats.error(f"{name}#{k}", e)
                    time.sleep(0.2)
        t = threading.Thread(target=loop, name=f"{name}#{k}", daemon=True)
        t.start()
        return t

    def conn(self, timeout: float = 15.0) -> Connection:
        return Connection(self.host, self.port, timeout=timeout)

    # HTTP ----------------------------------------------------------------------
    def one_request(self, c: Connection, rnd: random.Random) -> None:
        kind = rnd.random()
        if kind < 0.4:
            c.request("GET", "/")
            r = c.read_response()
            assert r.status == 200 and r.body == b"ok", r
        elif kind < 0.6:
            n = rnd.choice([0, 1, 100, 4096, 65536, rnd.randrange(300_000)])
            c.request("GET", f"/bytes?n={n}")
            r = c.read_response()
            assert r.status == 200 and r.body == expected_bytes(n), (n, r)
        elif kind < 0.75:
            k = rnd.randrange(1, 60)
            c.request("GET", f"/stream?n={k}")
            r = c.read_response()
            assert r.status == 200 and r.chunked and len(r.body) == 1000 * k, r
            assert r.body[-1000:-996] == b"%04d" % (k - 1)
        else:
            body = rnd.randbytes(rnd.choice([0, 10, 5000, rnd.randrange(200_000)]))
            c.request("POST", "/echo", body=body)
            r = c.read_response()
            assert r.status == 200 and r.body == body, (len(body), r)
        self.stats.add("http requests")

    def http_keepalive(self, rnd: random.Random, k: int) -> None:
        with self.conn() as c:
            self.stats.add("http connections")
            for _ in range(rnd.randrange(20, 400)):
                if self.stop.is_set():
                    return
                self.one_request(c, rnd)

    def http_oneshot(self, rnd: random.Random, k: int) -> None:
        with self.conn() as c:
            self.stats.add("http connections")
            self.one_request(c, rnd)

    # WebSocket echo -------------------------------------------------------------
    def ws_echo(self, rnd: random.Random, k: int) -> None:
        ws = wsraw.connect(self.host, self.port, "/ws", timeout=15)
        self.stats.add("ws connections")
        try:
            for _ in range(rnd.randrange(1, 200)):
                if self.stop.is_set():
                    return
                size = rnd.choice([0, 1, 125, 126, 1000, 65535, 65536, rnd.randrange(200_000)])
                if rnd.random() < 0.5:
                    text = "é" * (size // 2)
                    ws.send_text(text)
                    assert ws.recv_text() == text
                else:
                    data = rnd.randbytes(size)
                    ws.send_binary(data)
                    assert ws.recv_message() == (wsraw.OP_BINARY, data)
                self.stats.add("ws echoes")
            if rnd.random() < 0.9:
                ws.send_close(1000)
                ws.expect_close(1000, timeout=10)
            else:
                ws.reset()  # churn: a peer that just vanishes
                self.stats.add("ws dropped on purpose")
        finally:
            ws.close_socket()

    # pub/sub ---------------------------------------------------------------------
    def ws_subscriber(self, rnd: random.Random, k: int) -> None:
        choice = rnd.random()
        if choice < 0.4:
            ch, pattern, want = "soak.tick", "", None
        elif choice < 0.7:
            room = rnd.randrange(4)
            ch, pattern, want = f"soak.room.{room}", "", f"soak.room.{room}"
        else:
            ch, pattern, want = "soak.room.*", "&pattern=1", "soak.room."
        ws = wsraw.connect(self.host, self.port, f"/sub?ch={ch}{pattern}", timeout=15)
        self.stats.add("ws subscribers")
        try:
            assert ws.recv_text(timeout=10) == "ready"
            last: dict[str, int] = {}
            until = time.monotonic() + rnd.uniform(1, 8)
            got = 0
            while time.monotonic() < until and not self.stop.is_set():
                op, data = ws.recv_message(timeout=10)
                text = data.decode()
                if ch == "soak.tick":
                    _, pid, n = text.split()
                    assert int(n) > last.get(pid, 0), f"tick {n} after {last.get(pid)} from {pid}"
                    last[pid] = int(n)
                else:
                    assert text.startswith(want), f"{text!r} on a {ch} subscription"
                got += 1
            if ch == "soak.tick":
                # both workers tick every 50 ms: a subscriber of a second or
                # more has heard from each
                assert len(last) >= 2 or self.stop.is_set(), f"ticks only from {list(last)}"
            self.stats.add("pubsub messages received (ws)", got)
            if rnd.random() < 0.8:
                ws.send_close(1000)
                # deliveries may precede the Close: skip them
                deadline = time.monotonic() + 10
                while True:
                    f = ws.recv_frame(timeout=max(0.1, deadline - time.monotonic()))
                    if f.opcode == wsraw.OP_CLOSE:
                        break
            else:
                ws.reset()
        finally:
            ws.close_socket()

    def sse_subscriber(self, rnd: random.Random, k: int) -> None:
        with self.conn() as c:
            c.request("GET", "/sub?ch=soak.tick", [("Accept", "text/event-stream")])
            head = c.read_head()
            assert head.status == 200, head
            self.stats.add("sse subscribers")
            last: dict[str, int] = {}
            got = 0
            until = time.monotonic() + rnd.uniform(1, 8)
            first = True
            while time.monotonic() < until and not self.stop.is_set():
                event = []
                while True:  # one event: lines up to a blank one
                    line = self._sse_line(c)
                    if line == b"":
                        break
                    event.append(line)
                fields = dict(line.split(b": ", 1) for line in event if not line.startswith(b":"))
                if first:
                    assert fields.get(b"event") == b"ready", f"first event {event}, not ready"
                    first = False
                    continue
                if not fields:
                    continue  # a keep-alive comment
                _, pid, n = fields[b"data"].decode().split()
                assert int(n) > last.get(pid, 0), f"sse tick {n} after {last.get(pid)}"
                last[pid] = int(n)
                got += 1
            self.stats.add("pubsub messages received (sse)", got)

    @staticmethod
    def _sse_line(c: Connection) -> bytes:
        deadline = time.monotonic() + 10
        while True:
            i = c.buf.find(b"\n")
            if i >= 0:
                line = bytes(c.buf[:i])
                del c.buf[:i + 1]
                return line
            if not c._fill(deadline):
                raise ConnectionClosed("SSE stream ended", bytes(c.buf))

    def publisher(self, rnd: random.Random, k: int) -> None:
        with self.conn() as c:
            for seq in range(rnd.randrange(50, 500)):
                if self.stop.is_set():
                    return
                room = rnd.randrange(4)
                c.request("POST", f"/publish?ch=soak.room.{room}",
                          body=b"soak.room.%d pub %d seq %d" % (room, k, seq))
                r = c.read_response()
                assert r.status == 200 and r.body == b'{"r": true}', r
                self.stats.add("pubsub published")
                time.sleep(0.02)


# --- main -----------------------------------------------------------------------

def fmt(snap: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{n} {rss / 1024:.1f} MiB/{fds} fds" for n, (rss, fds) in snap.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600, help="length of the run (default 600)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before the RSS baseline is taken (default: a fifth, at most 60)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", type=int, default=1, help="multiply the client threads")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(60.0, args.seconds / 5)

    srv = Server(args.workers, args.threads)
    time.sleep(1)  # workers finish starting
    start_snap = snapshot(srv)
    print(f"soak: port {srv.port}, pids {srv.pids()}, {args.seconds:.0f} s "
          f"(warm-up {warmup:.0f} s)")
    print(f"  start:   {fmt(start_snap)}", flush=True)

    stop = threading.Event()
    stats = Stats()
    load = Load(srv.port, stop, stats, args.seed)
    s = args.scale
    plan = [("http-keepalive", load.http_keepalive, 6 * s), ("http-oneshot", load.http_oneshot, 3 * s),
            ("ws-echo", load.ws_echo, 4 * s), ("ws-subscriber", load.ws_subscriber, 6 * s),
            ("sse-subscriber", load.sse_subscriber, 2 * s), ("publisher", load.publisher, 2 * s)]
    threads = [load.run(name, fn, k) for name, fn, n in plan for k in range(n)]

    t0 = time.monotonic()
    warm_snap = None
    next_report = t0 + min(60.0, max(10.0, args.seconds / 10))
    while time.monotonic() - t0 < args.seconds:
        time.sleep(0.5)
        now = time.monotonic()
        if warm_snap is None and now - t0 >= warmup:
            warm_snap = snapshot(srv)
            print(f"  warm:    {fmt(warm_snap)}", flush=True)
        if now >= next_report:
            next_report = now + min(60.0, max(10.0, args.seconds / 10))
            with stats.lock:
                c = dict(stats.counts)
            print(f"  {now - t0:5.0f} s: {fmt(snapshot(srv))}; "
                  f"{c.get('http requests', 0)} http, {c.get('ws echoes', 0)} ws echoes, "
                  f"{c.get('pubsub messages received (ws)', 0) + c.get('pubsub messages received (sse)', 0)}"
                  f" deliveries, {stats.error_count} errors", flush=True)
        if srv.proc.poll() is not None:
            break
    took = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(20)
    stuck = [t.name for t in threads if t.is_alive()]
    load_end_snap = snapshot(srv) if srv.proc.poll() is None else {}

    # Let lingering closes finish, then compare with the quiet start.
    settle_until = time.monotonic() + SETTLE_SECONDS
    end_snap = snapshot(srv)
    while time.monotonic() < settle_until and any(
            end_snap[n][1] > start_snap[n][1] + FD_SLACK for n in end_snap):
        time.sleep(0.5)
        end_snap = snapshot(srv)
    print(f"  end:     {fmt(end_snap)} (load stopped: {fmt(load_end_snap)})")

    problems = []
    if warm_snap is None:
        warm_snap = start_snap
    for name, (rss, fds) in end_snap.items():
        grew = (rss - warm_snap[name][0]) / 1024
        if grew > RSS_GROWTH_LIMIT_MIB:
            problems.append(f"{name} RSS grew {grew:.1f} MiB after the warm-up "
                            f"(limit {RSS_GROWTH_LIMIT_MIB} MiB)")
        if fds > start_snap[name][1] + FD_SLACK:
            problems.append(f"{name} holds {fds} fds after the load, {start_snap[name][1]} before")
    if stuck:
        problems.append(f"client threads stuck: {stuck[:5]}")
    if stats.error_count:
        problems.append(f"{stats.error_count} client errors, e.g.:\n    "
                        + "\n    ".join(stats.errors[:10]))
    died = [line for line in srv.lines if re.search(r"worker \d+ (died|exited|restart)", line)]
    if died:
        problems.append(f"workers died: {died[:3]}")

    srv.proc.send_signal(signal.SIGTERM)
    try:
        code = srv.proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        code = "killed after 30 s"
    if code != 0:
        problems.append(f"server exit status {code} on SIGTERM")
    text = srv.stderr()
    for marker in CRASH_MARKERS + ("Traceback (most recent call last)",):
        if marker in text:
            problems.append(f"server stderr shows {marker!r}")

    print(f"soak: {took:.0f} s of load")
    for key, n in sorted(stats.counts.items()):
        print(f"  {key:34s} {n:>10}  ({n / took:.0f}/s)")
    print(f"  {'errors':34s} {stats.error_count:>10}")
    print("  RSS after warm-up -> end (MiB):  " + ", ".join(
        f"{n} {warm_snap[n][0] / 1024:.1f} -> {end_snap[n][0] / 1024:.1f}" for n in end_snap))
    print("  fds start -> end:               " + ", ".join(
        f"{n} {start_snap[n][1]} -> {end_snap[n][1]}" for n in end_snap))
    if problems:
        print("soak: FAILED\n  - " + "\n  - ".join(problems))
        if any("stderr" in p for p in problems):
            print("--- server stderr (tail) ---\n" + "\n".join(text.splitlines()[-40:]))
        return 1
    print("soak: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
