"""Publish runs (pubsub.c): consecutive publishes to one channel are held
back and delivered in one pass per subscriber; every connection must still
see exactly the order of delivering each message at once.

App: tests/apps/ps_runs.py. Two drivers send scripts (random runs of
publishes to several channels, direct client.write calls to subscribers
and a client.close) that each run inside one callback; every subscriber
checks, per driver, that it got exactly the messages addressed to it, in
script order, with nothing lost or doubled. One subscriber has a pattern
subscription (a channel a pattern matches is delivered at once, not held),
and one is closed by a script right after a run held for it: the run still
reaches it before the Close frame.
"""

from __future__ import annotations

import fnmatch
import json
import random

import pytest

from tests.websocket.wsraw import OP_CLOSE, OP_TEXT, connect_srv

CHANNELS = ["a", "b", "bx"]
SUBS = {  # name: (channels, pattern)
    "s0": (["a"], ""),
    "s1": (["a", "b"], ""),
    "s2": (["b"], ""),
    "s3": (["a"], "b*"),
    "s4": (["bx", "a"], ""),
}
VICTIM = "s5"  # only driver 0 reaches it: channel "v" and writes
SCRIPTS = 12
OPS = 150


def gets(name: str, channel: str) -> int:
    """How many copies of a publish on `channel` subscriber `name` gets."""
    if name == VICTIM:
        return int(channel == "v")
    chans, pat = SUBS[name]
    return int(channel in chans) + int(bool(pat) and fnmatch.fnmatchcase(channel, pat))


def script(rng: random.Random, d: int, s: int) -> list:
    ops, n = [], 0
    while len(ops) < OPS:
        kind = rng.random()
        if kind < 0.75:  # a run of publishes to one channel
            ch = rng.choice(CHANNELS)
            for _ in range(rng.randint(1, 12)):
                ops.append(["p", ch, f"d{d}:{s}:{n}:{ch}"])
                n += 1
        else:  # a write straight to one subscriber, between runs or inside one
            ops.append(["w", rng.choice(sorted(SUBS)), f"d{d}:{s}:{n}:w"])
            n += 1
    return ops


def victim_script() -> list:
    ops = [["p", "v", f"d0:v:{i}"] for i in range(5)]
    ops += [["w", VICTIM, "d0:v:w"], ["p", "v", "d0:v:5"], ["p", "v", "d0:v:6"], ["c", VICTIM]]
    return ops


def expected(scripts: list, name: str) -> list:
    out = []
    for ops in scripts:
        for op in ops:
            if op[0] == "p":
                out += [op[2]] * gets(name, op[1])
            elif op[0] == "w" and op[1] == name:
                out.append(op[2])
    return out


def recv_all(ws, n: int) -> list:
    got = []
    while len(got) < n:
        op, data = ws.recv_message(10.0)
        assert op == OP_TEXT
        got.append(data.decode())
    return got


@pytest.mark.parametrize("threads", ["1", "4"])
def test_runs_keep_order_per_publisher_and_connection(run_server, threads):
    srv = run_server("ps_runs", "-t", threads)
    subs, drivers = {}, []
    try:
        for name, (chans, pat) in [*SUBS.items(), (VICTIM, (["v"], ""))]:
            path = f"/sub?name={name}&ch={','.join(chans)}" + (f"&pat={pat}" if pat else "")
            subs[name] = connect_srv(srv, path)
            assert subs[name].recv_text(10.0) == "ready"
        drivers += [connect_srv(srv, "/drive") for _ in range(2)]
        rng = random.Random(16)
        scripts = {d: [script(rng, d, s) for s in range(SCRIPTS)] for d in (0, 1)}
        scripts[0].insert(SCRIPTS // 2, victim_script())
        for i in range(SCRIPTS + 1):  # both drivers' scripts interleave in the server
            for d in (0, 1):
                if i < len(scripts[d]):
                    drivers[d].send_text(json.dumps(scripts[d][i]))
        for d in (0, 1):
            for _ in scripts[d]:
                assert drivers[d].recv_text(20.0) == "done"
        for name in SUBS:
            want = {d: expected(scripts[d], name) for d in (0, 1)}
            got = recv_all(subs[name], len(want[0]) + len(want[1]))
            for d in (0, 1):
                mine = [m for m in got if m.startswith(f"d{d}:")]
                assert mine == want[d], f"{name}, driver {d}: order or content differs"
        # the victim: everything its script sent before client.close(), then the Close
        got = recv_all(subs[VICTIM], len(expected(scripts[0], VICTIM)))
        assert got == expected(scripts[0], VICTIM)
        assert subs[VICTIM].recv_frame(10.0).opcode == OP_CLOSE
        # nothing more reached anyone: a final publish on every channel is the next message
        drivers[1].send_text(json.dumps([["p", ch, f"end:{ch}"] for ch in CHANNELS]))
        assert drivers[1].recv_text(10.0) == "done"
        for name in SUBS:
            tail = [f"end:{ch}" for ch in CHANNELS for _ in range(gets(name, ch))]
            assert recv_all(subs[name], len(tail)) == tail, f"{name}: extra or missing messages"
    finally:
        for ws in [*subs.values(), *drivers]:
            ws.close_socket()
