"""Resume across servers sharing Redis (issue 13 point 6): two servers
(-r redis://..., --history 100) on one fixture redis-server. Ids come from
the Redis stream, so an SSE client that read some events on server A and
reconnects to server B with Last-Event-ID gets every message it missed, in
order, exactly once, then the live ones; a WebSocket client's since= does
the same.

Needs the Redis engine built on a stream (it defines
iodine_py.redis_engine.STREAM_ENGINE); skipped until then."""

from __future__ import annotations

import re

import pytest

import iodine_py.redis_engine as redis_engine
from tests.pubsub.pslib import PsClient, SseClient, publish

pytestmark = pytest.mark.skipif(
    not getattr(redis_engine, "STREAM_ENGINE", False),
    reason="the Redis engine does not sequence through a stream yet (STREAM_ENGINE)")

CONNECTED = re.compile(r"iodine: redis: connected")


def start_pair(run_server, url):
    servers = [run_server("ps_app", "-r", url, "--history", "100") for _ in range(2)]
    for s in servers:
        s.wait_for_stderr(CONNECTED, 15)
    return servers


def settle(srv, ch: str, timeout: float = 15.0) -> None:
    """A subscriber on `srv` sees a probe published there: the server's
    engine reads the stream."""
    with PsClient(srv, "probe") as p:
        p.sub(ch)
        assert publish(srv, ch, "probe")
        assert p.recv_text(timeout) == "probe"


def ids(events: list) -> list:
    return [tuple(int(x) for x in e["id"].split("-")) for e in events]


def test_sse_resume_on_another_server(redis_server, run_server):
    rs = redis_server()
    a, b = start_pair(run_server, rs.url())
    settle(a, "room")
    settle(b, "room")
    with SseClient(a, "first", sub="room") as s:
        early = s.early[:]  # the probes, if history keeps them: not ours
        for i in range(6):
            assert publish(a, "room", f"r{i}")
        got = [s.next_event(15) for _ in range(len(early) + 6)][len(early):]
        assert [e["data"] for e in got] == [f"r{i}" for i in range(6)]
        assert ids(got) == sorted(ids(got))
    last = got[1]["id"]  # read two, then the connection dropped
    for i in range(6, 10):
        assert publish(a, "room", f"r{i}")
    with SseClient(b, "again", sub="room", last_event_id=last) as s2:
        replayed, complete = s2.ready["resume"]
        assert complete
        missed = [s2.next_event(15) for _ in range(8)]
        assert [e["data"] for e in missed] == [f"r{i}" for i in range(2, 10)]
        assert missed[:4] == got[2:]  # one id per message, on every server
        assert publish(a, "room", "live")
        assert s2.next_event(15)["data"] == "live"


def test_websocket_since_on_another_server(redis_server, run_server):
    rs = redis_server()
    a, b = start_pair(run_server, rs.url())
    settle(a, "chat")
    settle(b, "chat")
    with PsClient(a, "obs") as obs:
        obs.sub("chat", cb=True, with_id=True)
        for i in range(5):
            assert publish(a, "chat", f"c{i}")
        seen = []
        while len(seen) < 5:
            r = obs.recv_cb(15)
            if r["cb"][1] != "probe":
                seen.append((r["cb"][1], r["id"]))
    with PsClient(b, "r") as r:
        replayed, complete = r.sub("chat", since=seen[1][1])
        assert complete
        assert [r.recv_text(15) for _ in range(3)] == ["c2", "c3", "c4"]
        assert publish(a, "chat", "live")
        assert r.recv_text(15) == "live"
        r.sync()
        assert r.inbox == []
