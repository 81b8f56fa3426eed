"""Cross-server pub/sub through one Redis: iodine-py's engine vs uvicorn + websockets +
redis-py asyncio (bench/redis.sh runs this; see it for the knobs).

Per server kind, two servers A and B (one process each) share one redis-server:

  throughput   A publishes R messages/s from inside its worker (bench/apps: /flood), while
               wrk measures A's own HTTP latency (GET /, 4 connections) and one WebSocket
               subscriber on B (ws_load -m sub -t) counts what arrives and its
               publish-to-receive latency. Per R: delivered/s at B, A's HTTP p99, refused.
  latency      ws_load -m pub -t -r 10000 publishes over a WebSocket to A (A publishes each
               message through the engine); ws_load -m sub -t on B: p50/p99/max.

Everything is loopback and bounded in count and time.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read()


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            get(port, "/", 1.0)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server on {port} did not come up") from None
            time.sleep(0.05)


def start(cmd: List[str], env: Optional[Dict[str, str]] = None,
          cpu: Optional[str] = None) -> subprocess.Popen:
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu] + cmd
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def server_cmd(kind: str, port: int, redis_url: str, args) -> (List[str], Dict[str, str]):
    if kind == "iodine":
        return ([args.iodine, os.path.join(ROOT, "bench/apps/redis_wsgi.py"), "-p", str(port),
                 "-b", "127.0.0.1", "-t", "1", "-r", redis_url, "-q"], {})
    return ([os.path.join(args.peers, "bin/uvicorn"), "redis_peer_asgi:app", "--app-dir",
             os.path.join(ROOT, "bench/apps"), "--host", "127.0.0.1", "--port", str(port),
             "--ws", "websockets", "--loop", "uvloop", "--http", "httptools", "--log-level",
             "warning", "--no-access-log"], {"REDIS_URL": redis_url})


def ws_sub(port: int, secs: float, args) -> subprocess.Popen:
    return subprocess.Popen([args.ws_load, "-m", "sub", "-t", "-c", "1", "-w", "1", "-d",
                             str(secs), "--json", f"ws://127.0.0.1:{port}/sub"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wrk_p99(port: int, secs: float) -> subprocess.Popen:
    return subprocess.Popen(["wrk", "-t1", "-c4", f"-d{int(secs)}s", "--latency",
                             f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v


def parse_wrk(out: str) -> Dict[str, float]:
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"p99_ms": ms(p99.group(1)) if p99 else float("nan"),
            "rps": float(rps.group(1)) if rps else 0.0}


def run_kind(kind: str, args) -> Dict[str, object]:
    tmp = tempfile.mkdtemp(prefix="redis-bench-")
    rport = free_port()
    redis = start(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no",
                   "--bind", "127.0.0.1", "--dir", tmp, "--protected-mode", "no"],
                  cpu=args.redis_cpu)
    url = f"redis://127.0.0.1:{rport}/0"
    time.sleep(0.3)
    pa, pb = free_port(), free_port()
    ca, ea = server_cmd(kind, pa, url, args)
    cb, eb = server_cmd(kind, pb, url, args)
    a = start(ca, ea, cpu=args.server_cpu)
    b = start(cb, eb, cpu=args.server_cpu)
    out: Dict[str, object] = {"kind": kind, "throughput": [], "latency": None}
    try:
        wait_ready(pa, a)
        wait_ready(pb, b)
        time.sleep(1.0)  # engines connected
        for rate in args.rate_list:
            sub = ws_sub(pb, args.secs, args)
            time.sleep(0.5)
            get(pa, f"/flood?rate={rate}&secs={args.secs + 1.5}&size=64")
            time.sleep(1.0)  # the subscriber's warm-up second
            wrk = wrk_p99(pa, args.secs)
            w = parse_wrk(wrk.communicate(timeout=args.secs + 30)[0])
            s = json.loads(sub.communicate(timeout=args.secs + 30)[0] or "{}")
            deadline = time.monotonic() + 30
            while json.loads(get(pa, "/flood-result"))["running"] and time.monotonic() < deadline:
                time.sleep(0.1)
            fr = json.loads(get(pa, "/flood-result"))
            row = {"rate": rate, "delivered_per_s": s.get("rate", 0.0),
                   "lat_p50_us": s.get("latency_us", {}).get("p50"),
                   "lat_p99_us": s.get("latency_us", {}).get("p99"),
                   "http_p99_ms": w["p99_ms"], "http_rps": w["rps"],
                   "published": fr["published"], "refused": fr["refused"]}
            out["throughput"].append(row)
            print(kind, json.dumps(row), flush=True)
            deadline = time.monotonic() + 30  # the backlog drains before the next rate
            while json.loads(get(pa, "/flood-result"))["queued"] and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # and the readers catch up
        sub = ws_sub(pb, args.secs, args)
        time.sleep(0.3)
        pub = subprocess.Popen([args.ws_load, "-m", "pub", "-t", "-c", "1", "-r",
                                str(args.lat_rate), "-s", "64", "-w", "0.5", "-d",
                                str(args.secs + 2), "--json", f"ws://127.0.0.1:{pa}/pub"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        s = json.loads(sub.communicate(timeout=args.secs + 30)[0] or "{}")
        pub.communicate(timeout=args.secs + 30)
        lat = s.get("latency_us", {})
        out["latency"] = {"rate": args.lat_rate, "delivered_per_s": s.get("rate"),
                          "p50_us": lat.get("p50"), "p99_us": lat.get("p99"),
                          "max_us": lat.get("max")}
        print(kind, "latency", json.dumps(out["latency"]), flush=True)
    finally:
        stop(a)
        stop(b)
        stop(redis)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", default="iodine,peer")
    ap.add_argument("--rates", default="10000 50000 100000 150000")
    ap.add_argument("--peer-rates", default="5000 10000 20000 40000")
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--lat-rate", type=int, default=10000)
    ap.add_argument("--iodine", default=os.path.join(ROOT, ".venv/bin/iodine"))
    ap.add_argument("--peers", default=os.path.join(ROOT, "bench/.venv-peers"))
    ap.add_argument("--ws-load", default=os.path.join(ROOT, "build/ws_load"))
    ap.add_argument("--server-cpu", default=None)
    ap.add_argument("--redis-cpu", default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/redis-latest.json"))
    args = ap.parse_args()
    results = []
    for kind in args.servers.split(","):
        args.rate_list = [int(r) for r in (args.peer_rates if kind == "peer" else args.rates).split()]
        results.append(run_kind(kind, args))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print("wrote", args.out)
    print(markdown(results))


def markdown(results) -> str:
    lines = ["| server | target msg/s from A | delivered msg/s at B | refused | A HTTP p99 ms "
             "(wrk, 4 conns) | A HTTP req/s | B latency p50 / p99 ms |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for t in r["throughput"]:
            lines.append(f"| {r['kind']} | {t['rate']:,} | {t['delivered_per_s']:,.0f} | "
                         f"{t['refused']:,} | {t['http_p99_ms']:.2f} | {t['http_rps']:,.0f} | "
                         f"{(t['lat_p50_us'] or 0) / 1000:.2f} / {(t['lat_p99_us'] or 0) / 1000:.2f} |")
    lines += ["", "| server | publish-to-receive at 10k msg/s (A /pub -> Redis -> B) | delivered "
              "msg/s | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    for r in results:
        lat = r["latency"] or {}
        lines.append(f"| {r['kind']} | {lat.get('rate', 0):,} | {lat.get('delivered_per_s') or 0:,.0f} | "
                     f"{(lat.get('p50_us') or 0) / 1000:.2f} | {(lat.get('p99_us') or 0) / 1000:.2f} | "
                     f"{(lat.get('max_us') or 0) / 1000:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
