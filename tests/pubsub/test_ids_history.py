"""Message ids, history and resume in one process (SPEC-PubSub.md,
"Message ids, history and resume"); SSE write fields and bytes; as_binary.

Real server (tests/apps/ps_app.py), real sockets. Ids are "ms-seq"; a
resume (since=, or an SSE client's Last-Event-ID) gets every kept message
after the id, in order, exactly once, then the live ones."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.hostile.common import proc_status_kib
from tests.pubsub.pslib import (OP_BINARY, OP_TEXT, PsClient, SseClient, http_json, publish, q,
                                stats)

HISTORY = 50


def pid_of(ident: str) -> tuple[int, int]:
    ms, dash, seq = ident.partition("-")
    assert dash and ms.isdigit() and seq.isdigit(), f"not an ms-seq id: {ident!r}"
    assert str(int(ms)) == ms and str(int(seq)) == seq, f"not canonical: {ident!r}"
    return int(ms), int(seq)


@pytest.fixture
def srv(run_server):
    return run_server("ps_app", "--history", str(HISTORY))


def observe(client: PsClient, n: int, timeout: float = 10.0) -> list[tuple[str, str]]:
    """n callback reports of a with_id subscription: (message, id)."""
    out = []
    for _ in range(n):
        r = client.recv_cb(timeout)
        out.append((r["cb"][1], r["id"]))
    return out


# -- ids -----------------------------------------------------------------------------

def test_ids_increase_and_match_between_sse_and_callbacks(srv):
    with PsClient(srv, "obs") as obs, SseClient(srv, "s", sub="idc") as s:
        obs.sub("idc", cb=True, with_id=True)
        for i in range(20):
            assert publish(srv, "idc", f"m{i}")
        seen = observe(obs, 20)
        assert [m for m, _ in seen] == [f"m{i}" for i in range(20)]
        ids = [pid_of(i) for _, i in seen]
        assert ids == sorted(ids) and len(set(ids)) == 20, ids
        now_ms = time.time() * 1000
        assert abs(ids[-1][0] - now_ms) < 60_000, "ms is wall-clock milliseconds"
        events = [s.next_event() for _ in range(20)]
        assert [(e["data"], e["id"]) for e in events] == seen


def test_engine_false_has_no_id_and_is_not_kept(srv):
    with SseClient(srv, "s", sub="loc") as s:
        assert publish(srv, "loc", "here-only", engine="local")
        assert s.next_event() == {"data": "here-only"}
        assert publish(srv, "loc", "sequenced")
        last = s.next_event()
        assert last["data"] == "sequenced" and "id" in last
    # a resume from before both finds only the sequenced one
    with PsClient(srv, "r") as r:
        got = r.sub("loc", since="1-0")
        assert got[0] == 1, got
        assert r.recv_text() == "sequenced"


def test_global_callback_with_id(srv):
    http_json(srv, "GET", q("/global/sub", name="g", ch="gid"))  # without id: unchanged
    with PsClient(srv, "obs") as obs:
        obs.sub("gid", cb=True, with_id=True)
        assert publish(srv, "gid", "x")
        (msg, ident), = observe(obs, 1)
        pid_of(ident)
        deadline = time.monotonic() + 10
        while http_json(srv, "GET", q("/global/log", name="g")) != [["gid", "x"]]:
            assert time.monotonic() < deadline, "the global callback never ran"
            time.sleep(0.02)


# -- resume over WebSocket (since=) ----------------------------------------------------

def test_since_replays_missed_then_live_in_order(srv):
    with PsClient(srv, "obs") as obs:
        obs.sub("hist", cb=True, with_id=True)
        for i in range(10):
            assert publish(srv, "hist", f"h{i}")
        seen = observe(obs, 10)
    # nobody is subscribed now: the history stays
    with PsClient(srv, "r") as r:
        replayed, complete = r.sub("hist", since=seen[3][1])
        assert (replayed, complete) == (6, True)
        assert [r.recv_text() for _ in range(6)] == [f"h{i}" for i in range(4, 10)]
        assert publish(srv, "hist", "live")
        assert r.recv_text() == "live"
        r.sync()
        assert r.inbox == [], f"delivered twice: {r.inbox!r}"
    # from the last observed: only "live" is newer
    with PsClient(srv, "r2") as r2:
        assert r2.sub("hist", since=seen[-1][1]) == [1, True]
        assert r2.recv_text() == "live"
    # a callback subscription resumes too, ids included
    with PsClient(srv, "r3") as r3:
        assert r3.sub("hist", cb=True, with_id=True, since=seen[7][1]) == [3, True]
        got = observe(r3, 3)
        assert got[:2] == seen[8:10] and got[2][0] == "live"


def test_since_older_than_history_reports_incomplete(srv):
    with PsClient(srv, "obs") as obs:
        obs.sub("old", cb=True, with_id=True)
        for i in range(HISTORY + 20):
            assert publish(srv, "old", f"o{i}")
        seen = observe(obs, HISTORY + 20)
    with PsClient(srv, "r") as r:
        assert r.sub("old", since=seen[0][1]) == [HISTORY, False]
        assert [r.recv_text() for _ in range(HISTORY)] == [f"o{i}" for i in range(20, HISTORY + 20)]
    with PsClient(srv, "r2") as r2:  # just inside what is kept: complete
        assert r2.sub("old", since=seen[19][1]) == [HISTORY, True]


def test_since_is_atomic_with_concurrent_publishes(run_server):
    """A thread publishes 3000 messages while a client resumes from one in
    the middle: it gets every message after it exactly once, in order."""
    n = 3000
    srv = run_server("ps_app", "--history", str(n), "-t", "2")
    with PsClient(srv, "obs") as obs, PsClient(srv, "r") as r:
        obs.sub("race", cb=True, with_id=True)
        http_json(srv, "POST", q("/thread-publish", ch="race", n=n, prefix="T"))
        seen = observe(obs, 200, timeout=20)
        since = seen[150][1]
        replayed, complete = r.sub("race", since=since)
        assert complete and replayed >= 49
        rest = observe(obs, n - 200, timeout=60)
        want = [m for m, _ in (seen + rest)[151:]]
        got = [r.recv_text(20) for _ in range(len(want))]
        assert got == want
        r.sync()
        assert r.inbox == [], f"extra deliveries: {r.inbox[:5]!r}"


def test_since_needs_a_channel_and_a_valid_id(srv):
    with PsClient(srv, "c") as c:
        assert c.cmd("sub", ch="p.*", pattern=True, since="1-0").startswith("ValueError")
        for bad in ("7", "1-2-3", "01-1", "x", "", "1-"):
            assert c.cmd("sub", ch="ok", since=bad).startswith("ValueError"), bad
        # a channel never published to, from before this server started:
        # nothing to replay, and the server cannot vouch for what came before
        assert c.cmd("sub", ch="ok", since="0-0") == [0, False]
        assert c.cmd("sub", ch="ok2", since=f"{int(time.time() * 1000) + 60_000}-0") == [0, True]


# -- resume over SSE (Last-Event-ID) ----------------------------------------------------

def test_sse_last_event_id_resumes_same_server(srv):
    with SseClient(srv, "s", sub="news") as s:
        assert s.ready["resume"] is None  # no Last-Event-ID: a plain subscribe
        for i in range(5):
            assert publish(srv, "news", f"n{i}")
        got = [s.next_event() for _ in range(5)]
        assert [e["data"] for e in got] == [f"n{i}" for i in range(5)]
    last = got[2]["id"]  # as if the client had read only 3 of them
    for i in range(5, 8):
        assert publish(srv, "news", f"n{i}")
    with SseClient(srv, "s2", sub="news", last_event_id=last) as s2:
        assert s2.ready["resume"] == [5, True]
        missed = [s2.next_event() for _ in range(5)]
        assert [e["data"] for e in missed] == [f"n{i}" for i in range(3, 8)]
        assert [pid_of(e["id"]) for e in missed] == sorted(pid_of(e["id"]) for e in missed)
        assert missed[:2] == got[3:]  # the same events, ids included
        assert publish(srv, "news", "live")
        assert s2.next_event()["data"] == "live"
    # a Last-Event-ID that is not one of ours (the app's own ids) is left alone
    with SseClient(srv, "s3", sub="news", last_event_id="i-1") as s3:
        assert s3.ready["resume"] is None and s3.early == []


# -- history bounds -------------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    return proc_status_kib(pid, "VmRSS")


def test_history_bounds_channels_and_bytes(run_server):
    srv = run_server("ps_app", "--history", "100", "--history-channels", "5",
                     "--history-bytes", "4")
    for i in range(20):
        assert publish(srv, f"b{i}", "x")
    st = stats(srv)
    assert st["hist_chans"] == 5, st
    # the newest five are kept, the rest report a gap
    with PsClient(srv, "r") as r:
        assert r.sub("b19", since="1-0") == [1, False]  # from before the start: a gap
        assert r.cmd("sub", ch="b0", since="1-0") == [0, False]
    # bytes: 600 x 64 KiB (37.5 MiB) over 4 channels into a 4 MiB budget
    cap = 4 * 1024 * 1024
    before = rss_kib(srv.proc.pid)
    for _ in range(3):
        http_json(srv, "GET", q("/publish-many", ch="big", chans=4, n=200, size=65536,
                                engine="default"), timeout=60)
        st = stats(srv)
        assert st["hist_bytes"] <= cap, st
    assert st["hist_bytes"] > cap // 2, st  # and it is used
    grown = rss_kib(srv.proc.pid) - before
    assert grown < 4 * 1024 + 24 * 1024, f"RSS grew {grown} KiB for a 4 MiB history"
    # N per channel
    http_json(srv, "GET", q("/publish-many", ch="small", n=150, size=10, engine="default"))
    with PsClient(srv, "r2") as r2:
        assert r2.sub("small", since="1-0") == [100, False]
        assert [r2.recv()[1] for _ in range(100)] == [bytes([i % 256]) * 10 for i in range(50, 150)]


# -- SSE write fields and bytes ------------------------------------------------------------

def sse_writes(srv, events: list) -> tuple[SseClient, list]:
    s = SseClient(srv, "w", write="1", events=json.dumps(events))
    return s, s.ready["errors"]


def test_sse_write_retry_and_validation(srv):
    events = [["a", None, None, 1500], ["b", "ev", "7", 0], ["c", None, None, -1],
              ["d", None, None, 2**31], ["e", None, None, True], ["f", None, None, None]]
    s, errors = sse_writes(srv, events)
    with s:
        assert errors == [None, None, "ValueError", "ValueError", "ValueError", None]
        assert s.next_event() == {"retry": "1500", "data": "a"}
        assert s.next_event() == {"id": "7", "event": "ev", "retry": "0", "data": "b"}
        assert s.next_event() == {"data": "f"}


def test_sse_write_bytes_must_be_utf8(srv):
    events = [["hex:" + "h\u00e9".encode().hex(), None, None, None],
              ["hex:ff00", None, None, None], ["hex:eda080", None, None, None],
              ["end", None, None, None]]
    s, errors = sse_writes(srv, events)
    with s:
        assert errors == [None, "ValueError", "ValueError", None]
        assert s.next_event() == {"data": "h\u00e9"}
        assert s.next_event() == {"data": "end"}


def test_binary_publish_to_sse(srv):
    with SseClient(srv, "s", sub="bin") as s:
        assert publish(srv, "bin", "ok \u2603".encode())
        ev = s.next_event()
        assert ev["data"] == "ok \u2603" and "event" not in ev  # UTF-8 bytes pass as they are
        raw = bytes(range(256))
        assert publish(srv, "bin", raw)
        ev = s.next_event()
        assert ev["event"] == "base64" and base64.b64decode(ev["data"]) == raw
        pid_of(ev["id"])


# -- as_binary ------------------------------------------------------------------------------

def test_as_binary_picks_the_frame_type(srv):
    with PsClient(srv, "b") as b, PsClient(srv, "t") as t, PsClient(srv, "p") as p:
        b.sub("frames", as_binary=True)
        t.sub("frames", as_binary=False)
        p.sub("frames")
        assert publish(srv, "frames", "text \u00e9")
        assert publish(srv, "frames", b"utf8 bytes")
        assert publish(srv, "frames", b"\xff\xfe")
        assert b.recv_n(3) == [(OP_BINARY, "text \u00e9".encode()), (OP_BINARY, b"utf8 bytes"),
                               (OP_BINARY, b"\xff\xfe")]
        # text, except bytes that are not UTF-8 (a text frame must be)
        assert t.recv_n(3) == [(OP_TEXT, "text \u00e9".encode()), (OP_TEXT, b"utf8 bytes"),
                               (OP_BINARY, b"\xff\xfe")]
        assert p.recv_n(3) == [(OP_TEXT, "text \u00e9".encode()), (OP_BINARY, b"utf8 bytes"),
                               (OP_BINARY, b"\xff\xfe")]
