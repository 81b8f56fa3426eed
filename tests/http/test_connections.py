"""Connection management (RFC 9112 section 9), pipelining and 100-continue."""

from __future__ import annotations

import socket

import pytest

from tests.apps import basic
from tests.rawhttp import build_request, chunked


@pytest.fixture
def srv(run_server):
    return run_server("basic")


def test_keep_alive_serves_several_requests_on_one_connection(srv):
    """RFC 9112 9.3: 'HTTP/1.1 defaults to the use of persistent connections,
    allowing multiple requests and responses to be carried over a single
    connection.'"""
    with srv.connect() as c:
        for i in range(6):
            c.request("GET", f"/ka/{i}")
            resp = c.read_response()
            assert resp.status == 200
            assert resp.body == basic.default_body("GET", f"/ka/{i}")
            assert not resp.has_token("Connection", "close")
        # A POST with a body on the same connection, then another GET.
        c.request("POST", "/echo", body=b"payload-on-reused-connection")
        assert c.read_response().body == b"payload-on-reused-connection"
        c.request("GET", "/ka/last")
        assert c.read_response().body == basic.default_body("GET", "/ka/last")


def test_http10_request_without_keep_alive_is_closed(srv):
    """RFC 9112 9.3: an HTTP/1.0 connection is not persistent unless the
    client sends 'Connection: keep-alive'; the server closes after the
    response."""
    with srv.connect() as c:
        c.request("GET", "/old", version="HTTP/1.0", host=False)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == basic.default_body("GET", "/old")
        assert c.wait_closed(3.0), "server kept an HTTP/1.0 connection open"


def test_http10_keep_alive_with_known_length_persists(srv):
    """RFC 9112 9.3 / Appendix C.2.2: an HTTP/1.0 client asking for
    keep-alive gets a persistent connection when the response length is
    known (Content-Length), and the response says 'Connection: keep-alive'."""
    with srv.connect() as c:
        c.request("GET", "/one", [("Connection", "keep-alive")], version="HTTP/1.0", host=False)
        first = c.read_response()
        assert first.status == 200
        assert first.has_token("Connection", "keep-alive"), first
        c.request("GET", "/two", [("Connection", "keep-alive")], version="HTTP/1.0", host=False)
        second = c.read_response()
    assert second.status == 200
    assert second.body == basic.default_body("GET", "/two")


def test_http10_keep_alive_with_unknown_length_is_close_delimited(srv):
    """RFC 9112 6.1/9.3: chunked coding cannot be sent to an HTTP/1.0
    client, so a body of unknown length is delimited by closing the
    connection, even though keep-alive was asked."""
    n = 4
    with srv.connect() as c:
        c.request("GET", f"/stream?n={n}", [("Connection", "keep-alive")],
                  version="HTTP/1.0", host=False)
        resp = c.read_response(timeout=5)
        assert resp.header("Transfer-Encoding") is None, \
            "chunked must not be sent to an HTTP/1.0 client"
        if resp.header("Content-Length") is None:
            assert resp.close_delimited
            assert c.eof
    assert resp.body == b"".join(basic.stream_chunk(i) for i in range(n))


def test_connection_close_is_honoured(srv):
    """RFC 9112 9.6: 'A server that receives a "close" connection option MUST
    initiate closure of the connection after it sends the final response';
    it SHOULD send 'Connection: close' in that response."""
    with srv.connect() as c:
        c.request("GET", "/bye", [("Connection", "close")])
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == basic.default_body("GET", "/bye")
        assert resp.has_token("Connection", "close"), resp
        assert c.wait_closed(3.0), "server kept the connection open after Connection: close"


def test_connection_close_on_a_later_request(srv):
    """The close option on the second request of a persistent connection
    closes it after the second response, not before."""
    with srv.connect() as c:
        c.request("GET", "/first")
        assert c.read_response().body == basic.default_body("GET", "/first")
        c.request("GET", "/second", [("Connection", "close")])
        assert c.read_response().body == basic.default_body("GET", "/second")
        assert c.wait_closed(3.0)


def test_pipelined_requests_are_answered_in_order(srv):
    """RFC 9112 9.3.2: 'A server MAY process a sequence of pipelined requests
    in parallel if they all have safe methods, but it MUST send the
    corresponding responses in the same order that the requests were
    received.'  Ten GETs with distinct paths go out in one write."""
    with srv.connect() as c:
        c.send(b"".join(build_request("GET", f"/pipe/{i}", host=c.authority)
                        for i in range(10)))
        bodies = [c.read_response().body for _ in range(10)]
    assert bodies == [basic.default_body("GET", f"/pipe/{i}") for i in range(10)]


def test_pipelined_mixed_requests_with_bodies(srv):
    """Pipelining with bodies: each request's body is framed by its own
    Content-Length or chunked coding and must not bleed into the next
    request; a HEAD in the middle adds no body bytes."""
    with srv.connect() as c:
        a = c.authority
        data = b"".join([
            build_request("POST", "/echo", body=b"first-body", host=a),
            build_request("GET", "/middle", host=a),
            build_request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                          chunked([b"chunked-", b"body"]), host=a),
            build_request("HEAD", "/head", host=a),
            build_request("POST", "/echo", body=b"GET /smuggled HTTP/1.1\r\n\r\n", host=a),
            build_request("GET", "/last", host=a),
        ])
        c.send(data)
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        r4 = c.read_response("HEAD")
        r5 = c.read_response()
        r6 = c.read_response()
    assert r1.body == b"first-body"
    assert r2.body == basic.default_body("GET", "/middle")
    assert r3.body == b"chunked-body"
    assert r4.status == 200 and r4.body == b""
    assert r5.body == b"GET /smuggled HTTP/1.1\r\n\r\n"
    assert r6.body == basic.default_body("GET", "/last")


def test_unread_request_body_does_not_corrupt_the_next_request(srv):
    """An app may answer without reading the body; the server must then
    discard the rest of that body (or close the connection, saying so) so
    that body bytes are never parsed as the next request."""
    body = b"GET /must-not-run HTTP/1.1\r\nHost: x\r\n\r\n" * 50
    with srv.connect() as c:
        c.request("POST", "/ignore-body", body=body)
        first = c.read_response()
        assert first.status == 200
        if first.has_token("Connection", "close"):
            assert c.wait_closed(3.0)
            return
        c.request("GET", "/after-ignored")
        second = c.read_response()
    assert second.body == basic.default_body("GET", "/after-ignored")


def test_expect_100_continue_is_answered_before_the_body_is_sent(srv):
    """RFC 9110 10.1.1: a server that receives '100-continue' sends an
    immediate 100 (Continue) response (or a final status) before the client
    sends the content.  The client here waits for the 100 before sending."""
    body = b"body-sent-after-100-continue"
    with srv.connect() as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"),
                                               ("Content-Length", str(len(body)))],
                             host=c.authority))
        interim = c.read_response(timeout=5)
        assert interim.status == 100, f"expected 100 Continue first, got {interim!r}"
        assert interim.version == "HTTP/1.1"
        c.send(body)
        final = c.read_response()
        assert final.status == 200
        assert final.body == body
        # And the connection is still usable.
        c.request("GET", "/after-continue")
        assert c.read_response().body == basic.default_body("GET", "/after-continue")


def test_expect_100_continue_with_chunked_body(srv):
    """100-continue applies to chunked uploads too."""
    with srv.connect() as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"),
                                               ("Transfer-Encoding", "chunked")],
                             host=c.authority))
        interim = c.read_response(timeout=5)
        assert interim.status == 100
        c.send(chunked([b"after-", b"continue"]))
        final = c.read_response()
    assert final.status == 200
    assert final.body == b"after-continue"


def test_expect_100_continue_is_ignored_for_http10(srv):
    """RFC 9110 10.1.1: 'A server that receives a 100-continue expectation in
    an HTTP/1.0 request MUST ignore that expectation' (no 1xx may be sent
    to an HTTP/1.0 client, RFC 9110 15.2)."""
    body = b"http10-body"
    with srv.connect() as c:
        c.request("POST", "/echo", [("Expect", "100-continue")], body,
                  version="HTTP/1.0", host=False)
        resp = c.read_response()
    assert resp.status == 200, f"first response to an HTTP/1.0 client was {resp!r}"
    assert resp.body == body


def test_requests_pipelined_after_connection_close_are_not_processed(srv):
    """RFC 9112 9.6: after a request with 'Connection: close' the server
    'MUST NOT process any further requests received on that connection'."""
    with srv.connect() as c:
        a = c.authority
        c.send(build_request("GET", "/closing", [("Connection", "close")], host=a)
               + build_request("POST", "/echo", body=b"must-not-be-processed", host=a))
        first = c.read_response()
        rest = c.read_until_close(timeout=5)
    assert first.body == basic.default_body("GET", "/closing")
    assert rest == b"", f"server answered a request sent after Connection: close: {rest[:200]!r}"


def test_hundred_pipelined_requests(srv):
    """A long pipeline in a single write (larger than one read buffer)."""
    n = 100
    with srv.connect(timeout=10) as c:
        c.send(b"".join(build_request("GET", f"/p{i}?pad={'x' * 200}", host=c.authority)
                        for i in range(n)))
        for i in range(n):
            resp = c.read_response(timeout=10)
            assert resp.body == basic.default_body("GET", f"/p{i}?pad={'x' * 200}"), i


def _data_segments_in(sock) -> int:
    """tcpi_data_segs_in of struct tcp_info (Linux >= 4.6): how many
    data-carrying TCP segments this socket has received."""
    import struct
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 156:
        pytest.skip("kernel's tcp_info has no tcpi_data_segs_in")
    return struct.unpack_from("I", info, 152)[0]


def test_pipelined_answers_of_many_connections_leave_in_one_write_each(run_server):
    """Twenty connections each pipeline 16 requests while the loop is busy,
    so the loop finds them all at once. Each connection's 16 answers must
    leave in one write (one TCP segment on loopback): its requests run back
    to back and its output stays corked until the turn ends. Taking every
    connection's requests round-robin, as the dispatcher once did, split each
    batch over several writes (one per loop turn)."""
    srv = run_server("gates")
    n_conns, depth = 20, 16
    conns = [srv.connect(timeout=10) for _ in range(n_conns)]
    busy = srv.connect(timeout=10)
    try:
        for c in conns:  # connected and accepted before the loop is busied
            c.request("GET", "/warm")
            assert c.read_response().status == 200
        before = [_data_segments_in(c.sock) for c in conns]
        mark = srv.stderr_mark()
        # one thread (-t 1): application code runs on the loop thread, so
        # this request keeps the loop away from the sockets for 0.5 s
        busy.send(build_request("GET", "/slow/busy?delay=0.5&size=1", host=busy.authority))
        srv.wait_for_stderr("slow-started busy", start=mark, timeout=5)
        batch = b"".join(build_request("GET", f"/r{i}", host=conns[0].authority)
                         for i in range(depth))
        for c in conns:
            c.send(batch)
        assert busy.read_response(timeout=10).status == 200
        for c in conns:
            for _ in range(depth):
                assert c.read_response(timeout=10).status == 200
        segments = [_data_segments_in(c.sock) - b for c, b in zip(conns, before)]
        whole = sum(1 for s in segments if s == 1)
        assert whole >= n_conns - 2, f"data segments per connection: {segments}"
    finally:
        busy.close()
        for c in conns:
            c.close()
