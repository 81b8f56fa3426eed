"""Streaming without buffering, and concurrency with -t N threads.

Ordering is enforced with events, never sleeps: the gates app parks a
request on a named threading.Event that a second request opens."""

from __future__ import annotations

import threading

from tests.apps import basic, gates
from tests.rawhttp import build_request


def test_streamed_chunk_is_sent_before_the_app_produces_the_next(run_server):
    """PEP 3333 'Buffering and Streaming': servers 'must not delay the
    transmission of any block'.  The app yields its first block and then
    cannot produce the second until the test opens the gate (from a second
    connection, on the second app thread); the first block must reach the
    client while the app is still parked."""
    srv = run_server("gates", "-t", "2")
    with srv.connect(timeout=8) as streaming:
        streaming.request("GET", "/stream/s1?timeout=5")
        head = streaming.read_head(timeout=5)
        assert head.status == 200
        assert head.header("Content-Length") is None
        first = streaming.read_chunk(timeout=3)
        assert first == gates.FIRST, f"first block not delivered while the app waits: {first!r}"
        # Only now let the app produce the rest.
        assert srv.get("/release/s1").body == b"ok"
        rest = b""
        while True:
            data = streaming.read_chunk(timeout=5)
            if data is None:
                break
            rest += data
    assert rest == b"second:released\n", "the app timed out: the gate was not opened in time"


def test_blocked_request_does_not_block_other_connections_with_two_threads(run_server):
    """With -t 2, an app call that blocks occupies one thread; another
    connection is still answered by the other.  The parked request then
    completes once released."""
    srv = run_server("gates", "-t", "2")
    mark = srv.stderr_mark()
    with srv.connect(timeout=8) as parked:
        parked.request("GET", "/wait/g1?timeout=5")
        srv.wait_for_stderr("gate-waiting g1", timeout=5, start=mark)
        other = srv.get("/anything", timeout=3)
        assert other.status == 200 and other.body == b"ok"
        assert not parked.readable(0), "the parked request answered before its release"
        srv.get("/release/g1", timeout=3)
        resp = parked.read_response(timeout=5)
    assert resp.body == b"released"


def test_request_arriving_while_all_threads_are_busy_is_queued(run_server):
    """With -t 2 and both threads parked, a third request is still accepted
    and read by the evented core, and runs as soon as a thread frees up
    (here: when gate 'b' gives up after its bounded 1 s wait)."""
    srv = run_server("gates", "-t", "2")
    mark = srv.stderr_mark()
    with srv.connect(timeout=10) as a, srv.connect(timeout=10) as b, \
            srv.connect(timeout=10) as queued:
        a.request("GET", "/wait/a?timeout=8")
        b.request("GET", "/wait/b?timeout=1")
        srv.wait_for_stderr("gate-waiting a", timeout=5, start=mark)
        srv.wait_for_stderr("gate-waiting b", timeout=5, start=mark)
        queued.request("GET", "/release/a")
        assert b.read_response(timeout=5).body == b"timeout"
        assert queued.read_response(timeout=5).body == b"ok"
        assert a.read_response(timeout=5).body == b"released"


def test_many_concurrent_connections_each_get_their_own_answers(run_server):
    """40 client threads, each with its own persistent connection, send 10
    requests apiece (distinct paths, some with bodies) against -t 2: every
    response matches its own request (no cross-talk between connections)."""
    srv = run_server("basic", "-t", "2")
    errors: list[str] = []

    def client(n: int) -> None:
        try:
            with srv.connect(timeout=15) as c:
                for i in range(10):
                    if i % 3 == 0:
                        body = f"body-{n}-{i}".encode() * (i + 1)
                        c.request("POST", "/echo", body=body)
                        expected = body
                    else:
                        c.request("GET", f"/c{n}/r{i}")
                        expected = basic.default_body("GET", f"/c{n}/r{i}")
                    got = c.read_response(timeout=15).body
                    if got != expected:
                        errors.append(f"client {n} request {i}: {got[:80]!r} != {expected[:80]!r}")
                        return
        except Exception as e:  # reported below, with the client number
            errors.append(f"client {n}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "some clients did not finish in 30 s"
    assert not errors, "\n".join(errors[:10])


def test_pipelined_responses_stay_in_order_with_two_threads(run_server):
    """RFC 9112 9.3.2: responses to pipelined requests go out in request
    order even if the server works on them in parallel.  The first request
    parks on a gate (giving up after 1 s) that the second one opens: a
    server running both at once must still answer the first one first."""
    srv = run_server("gates", "-t", "2")
    with srv.connect(timeout=8) as c:
        a = c.authority
        c.send(build_request("GET", "/wait/po?timeout=1", host=a)
               + build_request("GET", "/release/po", host=a))
        first = c.read_response(timeout=5)
        second = c.read_response(timeout=5)
    assert first.body in (b"released", b"timeout"), first
    assert second.body == b"ok", second
