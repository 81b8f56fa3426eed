"""Pub/sub inside one process, over real WebSocket and SSE connections.

App: tests/apps/ps_app.py (see its docstring for the endpoints). Every
negative check ("X was not delivered") is made against a positive sync
point: a later message on a channel the client still has, which arrives
after anything published before it (deliveries to one connection keep
publish order), so no check waits on a timer.
"""

from __future__ import annotations

import json

import pytest

from tests.pubsub.pslib import (OP_BINARY, OP_TEXT, PsClient, SseClient, global_sub,
                                http_json, publish, q, reach, stats, wait_global, wait_log)


@pytest.fixture
def srv(run_server):
    return run_server("ps_app")


def drain_until(client: PsClient, marker: bytes, timeout: float = 5.0) -> list:
    """Deliveries up to (not including) the text `marker`."""
    out = []
    while True:
        op, data = client.recv(timeout)
        if (op, data) == (OP_TEXT, marker):
            return out
        out.append((op, data))


# -- direct delivery from C --------------------------------------------------------------

def test_direct_str_is_a_text_frame_and_bytes_a_binary_frame(srv):
    with PsClient(srv, "a") as a, PsClient(srv, "pub") as p:
        a.sub("news")
        assert publish(srv, "news", "hello \u2603") is True
        assert a.recv() == (OP_TEXT, "hello \u2603".encode())
        assert publish(srv, "news", b"\x00\xff\x80bin") is True
        assert a.recv() == (OP_BINARY, b"\x00\xff\x80bin")
        # client.publish from another connection, both types
        assert p.pub("news", "from-peer") is True
        assert a.recv() == (OP_TEXT, b"from-peer")
        assert p.pub("news", b"raw-bytes") is True
        assert a.recv() == (OP_BINARY, b"raw-bytes")
        # an empty message is still a message
        assert publish(srv, "news", "") is True
        assert a.recv() == (OP_TEXT, b"")
        # the publisher itself is not subscribed: it got only its acks
        p.sync()
        assert p.inbox == []


def test_direct_delivery_reaches_every_subscriber_once(srv):
    clients = [PsClient(srv, f"m{i}") for i in range(5)]
    try:
        for c in clients:
            c.sub("many")
        assert reach(srv, "many", "counted") == 5
        publish(srv, "many", "all")
        for c in clients:
            assert c.recv() == (OP_TEXT, b"counted")
            assert c.recv() == (OP_TEXT, b"all")
            c.sync()
            assert c.inbox == [], f"{c.name} got extra deliveries: {c.inbox!r}"
    finally:
        for c in clients:
            c.close()


def _data_and_id(ev: dict) -> tuple:
    """The event without its id, and the id as (ms, seq) (every published
    message has one: "ms-seq")."""
    ev = dict(ev)
    ms, _, seq = ev.pop("id").partition("-")
    return ev, (int(ms), int(seq))


def test_sse_subscriber_gets_a_data_event(srv):
    with SseClient(srv, "s1", sub="feed") as s:
        ids = []
        for sent, want in (("one", "one"), ("two\nlines", "two\nlines"),
                           (b"bytes too", "bytes too")):
            publish(srv, "feed", sent)
            ev, ident = _data_and_id(s.next_event())
            assert ev == {"data": want}
            ids.append(ident)
        assert ids == sorted(ids) and len(set(ids)) == 3, ids


def test_sse_pattern_subscriber(srv):
    with SseClient(srv, "s2", psub="feed.*") as s:
        publish(srv, "other", "no")
        publish(srv, "feed.x", "yes")
        assert _data_and_id(s.next_event())[0] == {"data": "yes"}


# -- callbacks ------------------------------------------------------------------------------

def test_callback_gets_client_channel_message(srv):
    with PsClient(srv, "cb") as a:
        a.sub("cbch", cb=True)
        publish(srv, "cbch", "text msg")
        assert a.recv_cb() == {"cb": ["cbch", "text msg"], "type": "str", "same": True}
        publish(srv, "cbch", b"\x01\x02")
        assert a.recv_cb() == {"cb": ["cbch", "0102"], "type": "bytes", "same": True}


def test_pattern_callback_gets_the_published_channel(srv):
    with PsClient(srv, "cbp") as a:
        a.sub("room.*", cb=True, pattern=True)
        publish(srv, "room.42", "hi")
        assert a.recv_cb() == {"cb": ["room.42", "hi"], "type": "str", "same": True}


def test_global_subscribe_callback(srv):
    global_sub(srv, "g1", "gch")
    global_sub(srv, "g2", "gp.*", pattern=True)
    mark = srv.stderr_mark()
    publish(srv, "gch", "m1")
    wait_global(srv, "g1", "gch", "m1", start=mark)
    publish(srv, "gch", b"\xfe")
    wait_global(srv, "g1", "gch", {"bytes": "fe"}, start=mark)
    publish(srv, "gp.7", "m2")
    wait_global(srv, "g2", "gp.7", "m2", start=mark)
    log = http_json(srv, "GET", q("/global/log", name="g1"))
    assert log == [["gch", "m1"], ["gch", {"bytes": "fe"}]]
    assert http_json(srv, "GET", q("/global/log", name="g2")) == [["gp.7", "m2"]]


def test_global_unsubscribe(srv):
    global_sub(srv, "gu", "guch")
    global_sub(srv, "gw", "witness")
    mark = srv.stderr_mark()
    assert http_json(srv, "GET", q("/global/unsub", ch="guch"))["r"] is True
    publish(srv, "guch", "lost")
    publish(srv, "witness", "after")
    wait_global(srv, "gw", "witness", "after", start=mark)
    assert http_json(srv, "GET", q("/global/log", name="gu")) == []
    assert http_json(srv, "GET", q("/global/unsub", ch="guch"))["r"] is False


def test_publish_from_a_non_server_thread(srv):
    with PsClient(srv, "t") as a:
        a.sub("thr")
        a.sub("thr-cb", cb=True)
        mark = srv.stderr_mark()
        r = http_json(srv, "POST", q("/thread-publish", ch="thr", n=200, prefix="t"))
        assert r["thread"] == "ps-publisher-t"
        got = [a.recv_text() for _ in range(200)]
        assert got == [f"t{i}" for i in range(200)]
        srv.wait_for_stderr("ps-thread done ps-publisher-t", start=mark)
        http_json(srv, "POST", q("/thread-publish", ch="thr-cb", n=50, prefix="u"))
        got = [a.recv_cb()["cb"] for _ in range(50)]
        assert got == [["thr-cb", f"u{i}"] for i in range(50)]


# -- subscription lifecycle ---------------------------------------------------------------------

def test_resubscribe_replaces_the_subscription(srv):
    base = stats(srv)["subs"]
    with PsClient(srv, "re") as a:
        a.sub("re")
        a.sub("re")  # again, direct: still one subscription
        assert stats(srv)["subs"] == base + 1
        assert reach(srv, "re", "once") == 1
        assert a.recv() == (OP_TEXT, b"once")
        a.sub("re", cb=True)  # now with a callback: replaces the direct one
        assert stats(srv)["subs"] == base + 1
        publish(srv, "re", "cb-now")
        a.sub("marker")
        publish(srv, "marker", "end")
        got = drain_until(a, b"end")
        assert len(got) == 1, f"expected one delivery after re-subscribing, got {got!r}"
        assert json.loads(got[0][1]) == {"cb": ["re", "cb-now"], "type": "str", "same": True}
        a.sub("re")  # and back to direct
        publish(srv, "re", "direct-again")
        publish(srv, "marker", "end")
        assert drain_until(a, b"end") == [(OP_TEXT, b"direct-again")]
        # a pattern and a channel of the same name are different subscriptions
        a.sub("re", pattern=True)
        assert stats(srv)["subs"] == base + 3


def test_unsubscribe_stops_delivery(srv):
    with PsClient(srv, "un") as a:
        a.sub("u1")
        a.sub("u2", pattern=True)
        a.sub("keep")
        publish(srv, "u1", "before")
        assert a.recv() == (OP_TEXT, b"before")
        assert a.unsub("u1") is True
        assert a.unsub("u2", pattern=True) is True
        assert a.unsub("u1") is False, "unsubscribing twice should report no subscription"
        assert a.unsub("u2") is False, "the pattern flag is part of the subscription"
        publish(srv, "u1", "after")
        publish(srv, "u2", "after-pattern")
        publish(srv, "keep", "end")
        assert drain_until(a, b"end") == []
        assert reach(srv, "u1") == 0


def test_subscriptions_end_with_the_connection(srv):
    base = stats(srv)
    global_sub(srv, "wit", "witness2")
    a = PsClient(srv, "gone")
    a.sub("gone")
    a.sub("gone-cb", cb=True)
    a.sub("gon*", pattern=True)
    assert reach(srv, "gone", "x") == 2  # the channel and the pattern
    mark = srv.stderr_mark()
    a.close()
    wait_log(srv, "gone", "close", start=mark)
    # nothing left: a publish reaches nobody, the counts are back
    assert reach(srv, "gone") == 0
    assert reach(srv, "gone-cb") == 0
    assert stats(srv)["subs"] == base["subs"] + 1  # the witness only
    # and the global witness still works, so publishing does
    publish(srv, "witness2", "alive")
    wait_global(srv, "wit", "witness2", "alive", start=mark)


def test_closed_connection_with_a_close_frame_also_drops_subscriptions(srv):
    a = PsClient(srv, "gone2")
    a.sub("gone2")
    mark = srv.stderr_mark()
    a.ws.send_text(json.dumps({"op": "close"}))  # client.close(): a 1000 Close frame
    assert a.ws.recv_close().close_code == 1000
    a.ws.send_close(1000)
    wait_log(srv, "gone2", "close", start=mark)
    a.close()
    assert reach(srv, "gone2") == 0


def test_engine_false_is_this_process_only(srv):
    """engine=False skips the default engine: a recording engine set as the
    default sees ordinary publishes but not local-only ones."""
    http_json(srv, "GET", q("/engine/default", set="rec"))
    with PsClient(srv, "loc") as a:
        a.sub("loc")
        assert publish(srv, "loc", "local-only", engine="local") is True
        assert a.recv() == (OP_TEXT, b"local-only")
        assert a.pub("loc", "ws-local", engine="local") is True
        assert a.recv() == (OP_TEXT, b"ws-local")
        calls = http_json(srv, "GET", q("/engine/calls", name="rec"))
        assert ["publish", "loc", "local-only"] not in calls
        assert not [c for c in calls if c[0] == "publish"], calls
        publish(srv, "loc", "via-engine")
        assert a.recv() == (OP_TEXT, b"via-engine")  # Recorder delivers locally
        calls = http_json(srv, "GET", q("/engine/calls", name="rec"))
        assert [c for c in calls if c[0] == "publish"] == [["publish", "loc", "via-engine"]]


# -- patterns through real connections -----------------------------------------------------------

PATTERN_CASES = [
    # pattern, channels that match, channels that do not
    ("news.*", ["news.", "news.a", "news.a.b", "news.*"], ["news", "xnews.a", "new.s"]),
    ("*", ["a", "anything at all", "*"], []),
    ("*.log", ["a.log", ".log", "x.y.log"], ["a.log2", "log"]),
    ("a*b*c", ["abc", "aXbYc", "abbbc", "a-b-c-c"], ["ab", "acb", "abcd"]),
    ("h?llo", ["hello", "hallo", "h?llo", "h.llo"], ["hllo", "heello"]),
    ("??", ["ab", "zz"], ["a", "abc"]),
    ("h[a-c]llo", ["hallo", "hbllo", "hcllo"], ["hdllo", "hllo", "hAllo", "h-llo"]),
    ("h[c-a]llo", ["hallo", "hbllo", "hcllo"], ["hdllo"]),  # a reversed range
    ("h[aeiou]llo", ["hello", "hullo"], ["hxllo", "hllo"]),
    # '!' is an ordinary member, as in Redis (glob.h); only '^' negates
    ("h[!x]llo", ["h!llo", "hxllo"], ["hallo", "hllo"]),
    ("h[^x]llo", ["hallo", "h^llo"], ["hxllo", "hllo"]),
    ("h[^a-y]llo", ["hzllo", "h0llo"], ["hallo", "hyllo"]),
    ("v[0-9][0-9]", ["v10", "v99"], ["v1", "v1a", "v100"]),
    ("a\\*b", ["a*b"], ["axb", "ab", "a\\*b"]),
    ("a\\?b", ["a?b"], ["axb"]),
    ("\\[x\\]", ["[x]"], ["x", "\\[x\\]"]),
    ("a\\\\b", ["a\\b"], ["ab", "a\\\\b"]),
    ("[\\]]x", ["]x"], ["\\x", "x"]),
    ("[*?]", ["*", "?"], ["a", "**"]),
]


@pytest.mark.parametrize("pattern,yes,no", PATTERN_CASES, ids=[c[0] for c in PATTERN_CASES])
def test_pattern_subscription(srv, pattern, yes, no):
    with PsClient(srv, "pat") as a:
        a.sub(pattern, pattern=True)
        a.sub("zz-sync")
        order = [c for pair in zip(no + [None] * len(yes), yes + [None] * len(no))
                 for c in pair if c is not None]
        for ch in order:
            publish(srv, ch, ch)
        publish(srv, "zz-sync", "end")
        got = [d.decode() for op, d in drain_until(a, b"end")]
        expected = [ch for ch in order if ch in yes]
        assert got == expected, (f"pattern {pattern!r}: delivered {got!r}, expected {expected!r} "
                                 f"(published {order!r})")


def test_several_patterns_and_a_channel_each_deliver(srv):
    """Like Redis: a connection with a channel and a pattern that both match
    gets the message once per matching subscription."""
    with PsClient(srv, "multi") as a, PsClient(srv, "only") as b:
        a.sub("dup")
        a.sub("du*", pattern=True)
        b.sub("d?p", pattern=True)
        publish(srv, "dup", "x")
        assert a.recv_n(2) == [(OP_TEXT, b"x")] * 2
        assert b.recv() == (OP_TEXT, b"x")
        b.sync()
        a.sync()
        assert a.inbox == [] and b.inbox == []


# -- order -----------------------------------------------------------------------------------

def test_message_order_per_publisher(srv):
    n = 500
    with PsClient(srv, "od") as direct, PsClient(srv, "oc") as cb, \
            PsClient(srv, "op") as pat, PsClient(srv, "pub") as pub:
        direct.sub("ord")
        cb.sub("ord", cb=True)
        pat.sub("or?", pattern=True)
        assert pub.cmd("pubn", ch="ord", n=n, prefix="#", timeout=10) is True
        want = [f"#{i}" for i in range(n)]
        assert [direct.recv_text(10) for _ in range(n)] == want
        assert [pat.recv_text(10) for _ in range(n)] == want
        assert [cb.recv_cb(10)["cb"][1] for _ in range(n)] == want
        # and interleaved with a second publisher (HTTP), each keeps its own order
        with SseClient(srv, "os", sub="ord") as s:
            r = http_json(srv, "POST", q("/thread-publish", ch="ord", n=n, prefix="T"))
            assert pub.cmd("pubn", ch="ord", n=n, prefix="W", timeout=10) is True
            got = [direct.recv_text(10) for _ in range(2 * n)]
            assert [m for m in got if m[0] == "T"] == [f"T{i}" for i in range(n)]
            assert [m for m in got if m[0] == "W"] == [f"W{i}" for i in range(n)]
            sse = [s.next_event(10)["data"] for _ in range(2 * n)]
            assert [m for m in sse if m[0] == "T"] == [f"T{i}" for i in range(n)]
            assert [m for m in sse if m[0] == "W"] == [f"W{i}" for i in range(n)]
            srv.wait_for_stderr(f"ps-thread done {r['thread']}")
