"""Pub/sub engines: what the server tells an engine, and when.

App: tests/apps/ps_app.py, whose Recorder engine (a subclass of
Iodine.PubSub.Engine) records every subscribe/unsubscribe/publish call and
logs it as "ps-engine NAME WHAT JSON[channel, arg]".

Channel notices for a channel's *last* subscriber leaving are handled on
the pub/sub actor, the same one that runs global callbacks, in order; so a
global witness callback that has run proves every notice posted before it
was handled ("settle" below) -- no timers.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest

from tests.pubsub.pslib import (OP_TEXT, PsClient, SseClient, global_sub, http_json, publish,
                                q, wait_global, wait_log)

_settle_ids = itertools.count(1)


@pytest.fixture
def srv(run_server):
    s = run_server("ps_app")
    global_sub(s, "settle", "__settle__")
    return s


def attach(srv, name):
    http_json(srv, "GET", q("/engine/attach", name=name))


def calls(srv, name, kinds=("subscribe", "unsubscribe")):
    """The engine's calls of those kinds (the fixture's own witness channel
    __settle__, subscribed before any engine is attached, left out)."""
    return [tuple(c) for c in http_json(srv, "GET", q("/engine/calls", name=name))
            if c[0] in kinds and c[1] != "__settle__"]


def settle(srv):
    """Every channel notice posted so far has reached the engines."""
    token = f"s{next(_settle_ids)}"
    mark = srv.stderr_mark()
    publish(srv, "__settle__", token, engine="local")
    wait_global(srv, "settle", "__settle__", token, start=mark)


def wait_engine(srv, name, what, channel, arg, start=0, timeout=5.0):
    line = f"ps-engine {name} {what} {json.dumps([channel, arg])}"
    return srv.wait_for_stderr(re.compile("^" + re.escape(line) + "$"), timeout, start=start)


def test_subscribe_once_per_channel_and_unsubscribe_when_the_last_leaves(srv):
    attach(srv, "e1")
    a = PsClient(srv, "a")
    b = PsClient(srv, "b")
    c = PsClient(srv, "c")
    s = SseClient(srv, "s", sub="shared")
    try:
        a.sub("shared")
        b.sub("shared", cb=True)
        c.sub("shared")
        a.sub("p.*", pattern=True)
        b.sub("p.*", pattern=True, cb=True)
        global_sub(srv, "gsh", "shared")
        # re-subscribing is not a new channel either
        c.sub("shared", cb=True)
        settle(srv)
        assert calls(srv, "e1") == [("subscribe", "shared", False), ("subscribe", "p.*", True)]

        # leaving one by one: nothing until the last one goes
        mark = srv.stderr_mark()
        a.close()
        wait_log(srv, "a", "close", start=mark)
        s.close()
        wait_log(srv, "s", "close", start=mark)
        assert http_json(srv, "GET", q("/global/unsub", ch="shared"))["r"] is True
        assert c.unsub("shared") is True
        settle(srv)
        assert calls(srv, "e1") == [("subscribe", "shared", False), ("subscribe", "p.*", True)]

        mark = srv.stderr_mark()
        b.close()  # the last subscriber of both
        wait_engine(srv, "e1", "unsubscribe", "shared", False, start=mark)
        wait_engine(srv, "e1", "unsubscribe", "p.*", True, start=mark)
        settle(srv)
        assert sorted(calls(srv, "e1")[2:]) == [("unsubscribe", "p.*", True),
                                                ("unsubscribe", "shared", False)]

        # a new first subscriber: subscribe again
        c.sub("shared")
        settle(srv)
        assert calls(srv, "e1")[4:] == [("subscribe", "shared", False)]
        # an explicit unsubscribe of the last subscriber tells it as well
        mark = srv.stderr_mark()
        assert c.unsub("shared") is True
        wait_engine(srv, "e1", "unsubscribe", "shared", False, start=mark)
        settle(srv)
        assert calls(srv, "e1")[5:] == [("unsubscribe", "shared", False)]
    finally:
        for x in (a, b, c, s):
            x.close()


def test_global_subscriptions_count_as_subscribers(srv):
    attach(srv, "eg")
    global_sub(srv, "gx", "gchan")
    global_sub(srv, "gy", "g*", pattern=True)
    settle(srv)
    assert calls(srv, "eg") == [("subscribe", "gchan", False), ("subscribe", "g*", True)]
    mark = srv.stderr_mark()
    http_json(srv, "GET", q("/global/unsub", ch="g*", pattern="1"))
    wait_engine(srv, "eg", "unsubscribe", "g*", True, start=mark)


def test_attach_after_channels_exist_and_reset(srv):
    with PsClient(srv, "a") as a, PsClient(srv, "b") as b:
        a.sub("pre1")
        b.sub("pre1")
        b.sub("pre.*", pattern=True)
        global_sub(srv, "gpre", "pre2")
        attach(srv, "late")
        told = calls(srv, "late")
        want = {("subscribe", "pre1", False), ("subscribe", "pre.*", True),
                ("subscribe", "pre2", False)}
        assert sorted(told) == sorted(want), "attach must tell each live channel once"
        # attaching the same engine again changes nothing
        attach(srv, "late")
        assert len(calls(srv, "late")) == len(want)

        http_json(srv, "GET", q("/engine/reset", name="late"))
        told = calls(srv, "late")
        assert len(told) == 2 * len(want)
        assert set(told[len(want):]) == want, "reset must tell every live channel again"

        # detach: the engine hears nothing more
        http_json(srv, "GET", q("/engine/detach", name="late"))
        assert "late" not in http_json(srv, "GET", "/engine/list")
        a.sub("post")
        mark = srv.stderr_mark()
        a.close()
        b.close()
        wait_log(srv, "a", "close", start=mark)
        wait_log(srv, "b", "close", start=mark)
        settle(srv)
        assert len(calls(srv, "late")) == 2 * len(want), calls(srv, "late")


def test_default_get_and_set(srv):
    assert http_json(srv, "GET", "/engine/default")["default"] == "cluster"
    assert http_json(srv, "GET", "/engine/list") == []
    assert http_json(srv, "GET", q("/engine/default", set="d1"))["default"] == "d1"
    assert http_json(srv, "GET", "/engine/default")["default"] == "d1"
    # a default engine is attached: it hears about channels
    assert "d1" in http_json(srv, "GET", "/engine/list")
    with PsClient(srv, "a") as a:
        a.sub("dflt")
        settle(srv)
        assert ("subscribe", "dflt", False) in calls(srv, "d1")
        # publishes without an engine go to the default
        publish(srv, "dflt", "to-default")
        assert a.recv() == (OP_TEXT, b"to-default")
        assert calls(srv, "d1", ("publish",)) == [("publish", "dflt", "to-default")]
        assert http_json(srv, "GET", q("/engine/default", set="process"))["default"] == "process"
        publish(srv, "dflt", "to-process")
        assert a.recv() == (OP_TEXT, b"to-process")
        assert len(calls(srv, "d1", ("publish",))) == 1
    assert http_json(srv, "GET", q("/engine/default", set="none"))["default"] == "cluster"


def test_publish_with_a_named_engine_calls_its_publish(srv):
    attach(srv, "named")
    with PsClient(srv, "a") as a:
        a.sub("via")
        assert publish(srv, "via", "m1", engine="named") is True
        assert a.recv() == (OP_TEXT, b"m1")
        assert a.pub("via", b"m2", engine="named") is True
        assert a.recv()[1] == b"m2"
        assert calls(srv, "named", ("publish",)) == [("publish", "via", "m1"),
                                                     ("publish", "via", b"m2".hex())]
        # the default (cluster) is untouched by that, and does not call it
        publish(srv, "via", "m3")
        assert a.recv() == (OP_TEXT, b"m3")
        assert len(calls(srv, "named", ("publish",))) == 2
