"""Slow, idle and impatient clients."""

from __future__ import annotations

import time

from tests.apps import closing
from tests.rawhttp import build_request, chunked


def test_request_trickled_one_byte_at_a_time_is_answered(run_server):
    """A client may deliver the head and body in arbitrarily small pieces
    (TCP is a byte stream); the parser must resume where it stopped.  The
    pause between bytes is pacing, not synchronisation."""
    srv = run_server("basic")
    body = b"trickled body"
    with srv.connect() as c:
        c.send_slowly(build_request("POST", "/echo", [("Content-Type", "text/x-slow")],
                                    body, host=c.authority), pause=0.002)
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == body
    assert resp.header("Content-Type") == "text/x-slow"


def test_chunked_body_trickled_one_byte_at_a_time(run_server):
    """The chunked decoder must also resume mid size-line, mid data and
    mid CRLF."""
    srv = run_server("basic")
    parts = [b"ab", b"cdefghij", b"k"]
    with srv.connect() as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                             host=c.authority))
        c.send_slowly(chunked(parts, [";x=1", "", ""]), pause=0.002)
        resp = c.read_response()
    assert resp.body == b"".join(parts)


def test_client_disconnecting_mid_response_does_not_hurt_the_server(run_server):
    """A client that goes away while a large streamed body is being sent:
    the server stays up, still calls the iterable's close() (PEP 3333), and
    answers the next request."""
    srv = run_server("closing")
    mark = srv.stderr_mark()
    with srv.connect() as c:
        c.request("GET", "/big?tag=gone")
        head = c.read_head()
        assert head.status == 200
        got = 0
        while got < 256 * 1024:
            data = c.read_some()
            assert data, "server closed before sending 256 KiB of a 64 MiB body"
            got += len(data)
    # Closed with unread data: the kernel resets the connection.
    srv.wait_for_stderr("close-called gone", timeout=10, start=mark)
    resp = srv.get("/")
    assert resp.status == 200 and resp.body == b"ok"


def test_silent_connection_is_closed_after_keep_alive_timeout(run_server):
    """A connection that never sends a request is closed once the idle
    timeout (-k 1 second) passes: not much before it, and not much after."""
    idle = 1
    srv = run_server("basic", "-k", str(idle))
    with srv.connect(timeout=idle + 5) as c:
        start = time.monotonic()
        assert c.wait_closed(timeout=idle + 4), f"still open {idle + 4}s after connecting"
        elapsed = time.monotonic() - start
    assert elapsed >= idle * 0.9, f"closed after {elapsed:.2f}s, before the {idle}s timeout"
    assert elapsed <= idle + 2.5, f"closed only after {elapsed:.2f}s with -k {idle}"
    srv.assert_alive()


def test_idle_keep_alive_connection_is_closed_after_timeout(run_server):
    """After a response, a persistent connection that stays idle is closed
    after the keep-alive timeout (-k 1), counted from the last activity."""
    srv = run_server("basic", "-k", "1")
    with srv.connect(timeout=6) as c:
        c.request("GET", "/once")
        assert c.read_response().status == 200
        start = time.monotonic()
        assert c.wait_closed(timeout=5)
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed <= 3.5, f"idle connection closed after {elapsed:.2f}s with -k 1"


def test_keep_alive_timeout_does_not_cut_a_slow_app(run_server):
    """The idle timeout is about an idle connection, not a request the app
    is still working on: an app taking 1.5 s with -k 1 still gets its
    response out."""
    srv = run_server("gates", "-k", "1", "-t", "2")
    with srv.connect(timeout=8) as c:
        c.request("GET", "/slow/k?delay=1.5&size=1000")
        resp = c.read_response(timeout=8)
    assert resp.status == 200
    assert len(resp.body) == 1000


def test_partial_request_head_is_not_kept_open_forever(run_server):
    """A client that sends part of a request head and then nothing
    (slowloris) is disconnected once the idle timeout (-k 1) passes, possibly
    after a 408 (Request Timeout) response, so it cannot pin a connection."""
    srv = run_server("basic", "-k", "1")
    with srv.connect(timeout=8) as c:
        c.send(b"GET /partial HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        start = time.monotonic()
        assert c.wait_closed(timeout=6), "half-sent request still open 6 s later"
        elapsed = time.monotonic() - start
    assert elapsed >= 0.9, f"closed after {elapsed:.2f}s, before the 1 s timeout"
    srv.assert_alive()


def test_client_not_reading_a_large_response_does_not_stall_others(run_server):
    """A client that requests a large streamed body and does not read it
    fills its socket buffers; with -t 2 the other thread still serves other
    connections promptly, and the stalled client can later read the whole
    body."""
    srv = run_server("closing", "-t", "2")
    size = 16 * 1024 * 1024
    with srv.connect(timeout=30) as stalled:
        stalled.request("GET", f"/big?size={size}&tag=stalled")
        head = stalled.read_head(timeout=5)
        assert head.status == 200
        for i in range(3):
            resp = srv.get(f"/normal?tag=other{i}", timeout=3)
            assert resp.body == b"".join(closing.PARTS)
        resp = stalled.read_body(head, timeout=30)
    assert len(resp.body) == size


def test_many_idle_connections_do_not_stop_service(run_server):
    """200 connections that send nothing do not keep the evented core from
    accepting and serving a real request."""
    srv = run_server("basic")
    idle = []
    try:
        for _ in range(200):
            idle.append(srv.connect(timeout=5))
        resp = srv.get("/served-despite-idle", timeout=5)
        assert resp.status == 200
        # The idle ones are still usable too.
        idle[0].request("GET", "/first-idle")
        assert idle[0].read_response().status == 200
        idle[-1].request("GET", "/last-idle")
        assert idle[-1].read_response().status == 200
    finally:
        for c in idle:
            c.close()
