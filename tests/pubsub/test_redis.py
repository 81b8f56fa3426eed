"""The Redis engine, against real redis-server processes.

  -r redis://127.0.0.1:PORT/0       two servers share messages (WebSocket,
                                    SSE, patterns, global callbacks)
  AUTH                              --requirepass / an ACL user in the URL;
                                    a wrong password is reported, no crash
  outage                            kill Redis, publish (queued), restart on
                                    the same port: the queue is flushed, the
                                    subscriptions are back; the retry loop
                                    backs off (low CPU while Redis is down)
  queue_size                        the bounded outage queue refuses the 6th
  cmd()                             ordinary Redis commands

Every wait is on an event -- a stderr line (the engine logs
"iodine: redis: connected to HOST:PORT/DB" when it (re)connects and
"connection lost" when it notices an outage), a received message -- with a
bound. App: tests/apps/ps_app.py (PS_REDIS_URL etc. configure the engine
from the app, for options the CLI has no flag for).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time

import pytest

from tests.pubsub.pslib import (OP_BINARY, OP_TEXT, PsClient, SseClient, global_sub,
                                http_json, publish, wait_global, without_id)
from tests.pubsub.test_local import PATTERN_CASES, drain_until

CONNECTED = re.compile(r"iodine: redis: connected to 127\.0\.0\.1:\d+/0")
LOST = re.compile(r"iodine: redis: connection lost")


def start_pair(run_server, url, *flags):
    return run_server("ps_app", "-r", url, *flags), run_server("ps_app", "-r", url, *flags)


def wait_connected(srv, start=0, timeout=10.0):
    return srv.wait_for_stderr(CONNECTED, timeout, start=start)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


# -- two servers ------------------------------------------------------------------------

def test_two_servers_deliver_each_others_messages(redis_server, run_server):
    rs = redis_server()
    a, b = start_pair(run_server, rs.url())
    with PsClient(a, "a1") as a1, PsClient(b, "b1") as b1, PsClient(b, "b2") as b2, \
            SseClient(a, "as", sub="room") as a_sse, SseClient(b, "bs", sub="room") as b_sse:
        a1.sub("room")
        b1.sub("room")
        b2.sub("zo*", pattern=True)  # a pattern on its own channels (see the dup test)
        global_sub(b, "bg", "room")
        wait_connected(a)
        wait_connected(b)
        # a WebSocket client on A publishes (default engine: Redis)
        assert a1.pub("room", "from-a") is True
        for c in (a1, b1):
            assert c.recv() == (OP_TEXT, b"from-a"), c.name
        assert without_id(a_sse.next_event()) == {"data": "from-a"}
        assert without_id(b_sse.next_event()) == {"data": "from-a"}
        wait_global(b, "bg", "room", "from-a")
        # a pattern subscriber on B, a publisher on A
        assert a1.pub("zone.1", "to-pattern") is True
        assert b2.recv() == (OP_TEXT, b"to-pattern")
        # HTTP on B, bytes that are not UTF-8: binary everywhere
        assert publish(b, "room", b"\xff\x00bin") is True
        for c in (a1, b1):
            assert c.recv() == (OP_BINARY, b"\xff\x00bin"), c.name
        # a str stays a text frame, even one that looks like bytes
        assert publish(b, "room", "\u00e9t\u00e9") is True
        for c in (a1, b1):
            assert c.recv() == (OP_TEXT, "\u00e9t\u00e9".encode()), c.name
        # bytes that are not UTF-8 reach SSE base64-encoded, as the event "base64"
        ev = a_sse.next_event()
        assert (ev["event"], base64.b64decode(ev["data"])) == ("base64", b"\xff\x00bin"), ev
        assert without_id(a_sse.next_event()) == {"data": "\u00e9t\u00e9"}
        # engine=False: this process only
        assert a1.pub("room", "only-a", engine="local") is True
        assert a1.recv() == (OP_TEXT, b"only-a")
        assert publish(a, "room", "after-local") is True
        assert a1.recv() == (OP_TEXT, b"after-local")
        assert b1.recv() == (OP_TEXT, b"after-local"), "B got the local-only message"
        b2.sync()
        assert b2.inbox == [], f"the pattern subscriber on B got more: {b2.inbox!r}"


def test_chat_example_over_redis(redis_server, run_server):
    """examples/chat.py on two servers sharing Redis: a line typed on one
    reaches a WebSocket member on the other, and an SSE member."""
    rs = redis_server()
    env = {"PYTHONPATH": "examples" + os.pathsep + os.environ.get("PYTHONPATH", "")}
    a = run_server("examples/chat_redis.py", "-r", rs.url(), env=env)
    b = run_server("examples/chat_redis.py", "-r", rs.url(), env=env)
    from tests.websocket.wsraw import connect_srv

    with connect_srv(b, "/?name=bob") as bob:
        # bob's own join (through Redis) proves B's subscription is live
        assert bob.recv_text(10) == "bob joined"
        with connect_srv(a, "/?name=alice") as alice:
            # alice's join may outrun A's first connection to Redis (then it
            # waits in the engine's queue): either way both see it
            assert bob.recv_text(10) == "alice joined"
            assert alice.recv_text(10) == "alice joined"
            wait_connected(a)
            alice.send_text("hello bob")
            assert bob.recv_text(10) == "alice: hello bob"
            assert alice.recv_text(10) == "alice: hello bob"
            c = b.connect()
            c.request("GET", "/?name=carol", [("Accept", "text/event-stream")])
            assert c.read_head().status == 200
            with c:
                assert alice.recv_text(10) == "carol joined"
                assert bob.recv_text(10) == "carol joined"
                resp = a.request("POST", "/say?name=dave", body=b"hi all")
                assert resp.status == 204
                assert alice.recv_text(10) == "dave: hi all"
                assert bob.recv_text(10) == "dave: hi all"
                deadline = time.monotonic() + 10
                while b"data: dave: hi all\n\n" not in c.buf:
                    assert c._fill(deadline), bytes(c.buf)
                assert b"data: carol joined\n\n" in c.buf


def test_subscriptions_cost_redis_nothing_and_a_publish_is_one_stream_entry(redis_server,
                                                                           run_server):
    """3 clients on a channel in each of 2 servers: Redis holds no pub/sub
    subscription at all (the stream carries every channel) and each publish
    is exactly one stream entry, however many processes receive it."""
    rs = redis_server()
    a, b = start_pair(run_server, rs.url())
    r = rs.client()
    clients = [PsClient(s, f"{s.port}-{i}") for s in (a, b) for i in range(3)]
    try:
        for c in clients:
            c.sub("numsub")
        for c in clients[:2]:
            c.sub("n*", pattern=True)
        wait_connected(a)
        wait_connected(b)
        assert r.pubsub_numsub("numsub") == [(b"numsub", 0)] and r.pubsub_numpat() == 0
        for i in range(5):
            assert clients[0].pub("numsub", f"e{i}") is True
        for c in clients:
            want = 5 * (2 if c in clients[:2] else 1)  # the pattern matches too
            got = c.recv_n(want, timeout=10)
            assert sorted(m for _, m in got) == sorted(
                f"e{i}".encode() for i in range(5) for _ in range(want // 5))
        assert r.xlen("iodine:pubsub") == 5
        fields = r.xrange("iodine:pubsub")[0][1]
        assert fields[b"c"] == b"numsub" and fields[b"m"] == b"e0" and fields[b"t"] == b"1"
        assert int(fields[b"s"]) >= 1 and len(fields[b"o"]) == 16
    finally:
        for c in clients:
            c.close()
        r.close()


def test_each_subscriber_gets_a_message_once_with_channel_and_pattern(redis_server, run_server):
    """Locally, a client on `dup` and another on `du*` each get a message to
    `dup` once (test_local). Through Redis the process holds both a
    SUBSCRIBE and a PSUBSCRIBE, and Redis sends it a message and a pmessage
    for one publish: each must still reach each subscriber once."""
    rs = redis_server()
    srv = run_server("ps_app", "-r", rs.url())
    with PsClient(srv, "exact") as e, PsClient(srv, "pat") as p, PsClient(srv, "pat2") as p2:
        e.sub("dup")
        e.sub("zz")
        p.sub("du*", pattern=True)
        p.sub("zz")
        p2.sub("d?p", pattern=True)
        p2.sub("zz")
        wait_connected(srv)
        publish(srv, "dup", "once")
        publish(srv, "zz", "end")
        got = {c.name: drain_until(c, b"end", timeout=10) for c in (e, p, p2)}
        want = [(OP_TEXT, b"once")]
        assert got == {"exact": want, "pat": want, "pat2": want}, \
            f"deliveries of ONE publish to 'dup' via Redis: {got!r}"


def test_patterns_mean_the_same_through_redis(redis_server, run_server):
    """test_local's pattern table, with the Redis engine: what a pattern
    subscriber receives must not depend on the engine."""
    rs = redis_server()
    srv = run_server("ps_app", "-r", rs.url())
    clients = []
    try:
        for k, (pattern, _yes, _no) in enumerate(PATTERN_CASES):
            c = PsClient(srv, f"p{k}")
            clients.append(c)
            c.sub(pattern, pattern=True)
            c.sub("zz-sync")
        wait_connected(srv)
        channels = sorted({ch for _, yes, no in PATTERN_CASES for ch in yes + no})
        for ch in channels:
            publish(srv, ch, ch)
        publish(srv, "zz-sync", "end")
        wrong = []
        for c, (pattern, yes, no) in zip(clients, PATTERN_CASES):
            got = sorted(set(d.decode() for _, d in drain_until(c, b"end", timeout=10)))
            if not set(yes) <= set(got) or set(no) & set(got):
                wrong.append(f"{pattern!r}: got {got!r}; must include {yes!r}, exclude {no!r}")
        assert not wrong, "through the Redis engine:\n" + "\n".join(wrong)
    finally:
        for c in clients:
            c.close()


# -- AUTH ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["requirepass", "acl-user"])
def test_auth_in_the_url(redis_server, run_server, kind):
    if kind == "requirepass":
        rs = redis_server(password="s3cret")
        url = f"redis://:s3cret@127.0.0.1:{rs.port}/0"
    else:
        rs = redis_server(acl_user=("alice", "pw-alice"))
        url = f"redis://alice:pw-alice@127.0.0.1:{rs.port}/0"
    a, b = start_pair(run_server, url)
    assert "s3cret" not in a.stderr and "pw-alice" not in a.stderr, "the banner shows the password"
    with PsClient(a, "a") as ca, PsClient(b, "b") as cb:
        ca.sub("auth")
        cb.sub("auth")
        wait_connected(a)
        wait_connected(b)
        publish(a, "auth", "authenticated")
        assert ca.recv() == (OP_TEXT, b"authenticated")
        assert cb.recv() == (OP_TEXT, b"authenticated")


@pytest.mark.parametrize("kind", ["wrong-password", "no-password", "wrong-user"])
def test_bad_credentials_are_reported_without_crashing(redis_server, run_server, kind):
    if kind == "wrong-user":
        rs = redis_server(acl_user=("alice", "pw-alice"))
        url = f"redis://mallory:pw-alice@127.0.0.1:{rs.port}/0"
    else:
        rs = redis_server(password="s3cret")
        auth = ":wrong@" if kind == "wrong-password" else ""
        url = f"redis://{auth}127.0.0.1:{rs.port}/0"
    srv = run_server("ps_app", "-r", url)
    with PsClient(srv, "a") as a:
        a.sub("auth")
        # the engine connects as the server starts: the line may already be there
        srv.wait_for_stderr(re.compile(r"iodine: redis: .*(?i:auth|password|WRONGPASS|NOAUTH)"),
                            timeout=6)
        # still serving, and local pub/sub still works
        srv.assert_alive()
        assert a.pub("auth", "local", engine="local") is True
        assert a.recv() == (OP_TEXT, b"local")
    assert "Traceback" not in srv.stderr


# -- outage ----------------------------------------------------------------------------------

def test_outage_queue_flush_and_resubscribe(redis_server, run_server):
    rs = redis_server()
    srv = run_server("ps_app", "-r", rs.url(), "-rp", "1")
    n = 20
    # no channel here matches a pattern here (see the dup test): every
    # message is expected exactly once
    with PsClient(srv, "sub") as s, PsClient(srv, "pub") as p, \
            SseClient(srv, "sse", psub="q.*") as sse:
        s.sub("out")
        wait_connected(srv)
        assert p.pub("out", "before") is True
        assert p.pub("q.0", "before-q") is True
        assert s.recv(10) == (OP_TEXT, b"before")
        assert without_id(sse.next_event(10)) == {"data": "before-q"}

        mark = srv.stderr_mark()
        rs.kill()
        srv.wait_for_stderr(LOST, timeout=15, start=mark)

        # back-off: while Redis is down the retry loop must not spin
        pid = srv.proc.pid
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(1.5)
        used = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        assert used < 0.20, f"server used {used:.0%} of a core while Redis was down"

        # publish during the outage: queued, not lost, not blocking long
        t = time.monotonic()
        for i in range(n):
            assert p.pub("out" if i % 2 else "q.x", f"m{i}") is True
        assert time.monotonic() - t < 5, "publishing during the outage blocked"
        # the n publishes wait; so may the two made before the kill, which
        # the engine keeps for one reply deadline after Redis acknowledged
        # them (sent again if Redis restarts without them)
        state = http_json(srv, "GET", "/redis/state")
        assert state["connected"] is False and n <= state["queued"] <= n + 2, state

        mark = srv.stderr_mark()
        rs.restart()
        wait_connected(srv, start=mark, timeout=20)
        assert s.recv_n(n // 2, timeout=10) == \
            [(OP_TEXT, f"m{i}".encode()) for i in range(1, n, 2)], "the queued messages, in order"
        assert [sse.next_event(10)["data"] for _ in range(n // 2)] == \
            [f"m{i}" for i in range(0, n, 2)]
        # the subscriptions are back: new messages flow
        assert p.pub("q.y", "after-q") is True
        assert p.pub("out", "after") is True
        assert s.recv(10) == (OP_TEXT, b"after")
        assert without_id(sse.next_event(10)) == {"data": "after-q"}
        # "after" can reach the reader before its XADD's acknowledgement
        # reaches the command connection: the queue empties right after
        deadline = time.monotonic() + 10
        while http_json(srv, "GET", "/redis/state") != {"connected": True, "queued": 0}:
            assert time.monotonic() < deadline, http_json(srv, "GET", "/redis/state")
            time.sleep(0.02)
        s.sync()
        assert s.inbox == [], f"extra deliveries: {s.inbox!r}"


def test_outage_queue_is_bounded(redis_server, run_server):
    rs = redis_server()
    srv = run_server("ps_app", env={"PS_REDIS_URL": rs.url(), "PS_QUEUE_SIZE": "5",
                                    "PS_BACKOFF_MAX": "0.5"})
    with PsClient(srv, "sub") as s:
        s.sub("bound")
        wait_connected(srv)
        mark = srv.stderr_mark()
        rs.kill()
        srv.wait_for_stderr(LOST, timeout=15, start=mark)
        results = [publish(srv, "bound", f"b{i}") for i in range(6)]
        assert results == [True] * 5 + [False], results
        srv.wait_for_stderr(re.compile(r"iodine: redis: the publish queue is full \(5 "),
                            start=mark)
        assert s.pub("bound", "b6") is False  # client.publish reports it too
        mark = srv.stderr_mark()
        rs.restart()
        wait_connected(srv, start=mark, timeout=10)
        # the episode ends with one line that counts what was refused
        srv.wait_for_stderr(re.compile(r"iodine: redis: the publish queue was full: 2 "
                                       r"publish\(es\) refused"), start=mark, timeout=10)
        assert len(re.findall("publish queue", srv.stderr)) == 2, "one line per episode edge"
        assert s.recv_n(5, timeout=10) == [(OP_TEXT, f"b{i}".encode()) for i in range(5)]
        s.sync()
        assert s.inbox == [], f"messages beyond the queue bound arrived: {s.inbox!r}"


# -- cmd() -----------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["cli", "app"])
def test_cmd_runs_redis_commands(redis_server, run_server, how):
    rs = redis_server()
    # /redis/cmd waits for the reply (cmd_wait): an application thread
    if how == "cli":
        srv = run_server("ps_app", "-r", rs.url(), "-t", "2")
    else:
        srv = run_server("ps_app", "-t", "2", env={"PS_REDIS_URL": rs.url()})

    def cmd(*args):
        return http_json(srv, "POST", "/redis/cmd", json.dumps(list(args)).encode())["r"]
    assert cmd("SET", "ps-key", "v\u00e9") == "OK"
    assert cmd("GET", "ps-key") == "v\u00e9"
    assert cmd("INCRBY", "ps-n", 5) == 5
    assert cmd("DEL", "ps-key", "ps-n") == 2
    assert cmd("GET", "ps-key") is None
    assert cmd("NOSUCHCOMMAND")["error"].startswith("RedisError: ERR unknown command")
    assert cmd("GET", "a", "b")["error"].startswith("RedisError: ERR wrong number")
    r = rs.client()
    try:
        cmd("SET", "seen-by-redis", "1")
        assert r.get("seen-by-redis") == b"1"
    finally:
        r.close()


@pytest.mark.parametrize("url,says", [
    ("rediss://127.0.0.1:6379/0", "TLS to Redis, rediss://, is not supported"),
    ("redis://nohost.invalid:6379/0", "the host does not resolve"),
])
def test_an_unusable_redis_url_is_a_one_line_error(url, says):
    from tests.server import app_arg, run_cli

    r = run_cli(app_arg("hello"), "-p", "0", "-b", "127.0.0.1", "-r", url)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert says in err and "Traceback" not in err, err
