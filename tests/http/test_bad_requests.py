"""Malformed and oversized requests (RFC 9112 / RFC 9110).

Every case checks three things: the status code, that the server closes the
connection after that response (after a framing error the byte stream can
no longer be trusted, RFC 9112 9.6 / 11.2), and that the server still answers
a normal request on a new connection.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.rawhttp import BackgroundSender, ConnectionClosed

H = b"Host: 127.0.0.1\r\n"


def check_rejected(srv, raw: bytes, statuses, *, timeout: float = 5.0):
    """Send `raw`, expect one of `statuses`, then a close, then a live server."""
    statuses = (statuses,) if isinstance(statuses, int) else tuple(statuses)
    with srv.connect() as c:
        c.send(raw)
        try:
            resp = c.read_response(timeout=timeout)
        except ConnectionClosed as e:
            raise AssertionError(
                f"connection {'reset' if c.reset else 'closed'} without a response "
                f"(expected {statuses}); got {e.partial[:200]!r}") from None
        assert resp.status in statuses, f"expected {statuses}, got {resp!r}"
        assert c.wait_closed(3.0), f"connection left open after {resp.status}"
    srv.assert_alive()
    return resp


@pytest.fixture
def srv(run_server):
    return run_server("basic")


# --- RFC 9112 3: request line ------------------------------------------------

@pytest.mark.parametrize("raw", [
    pytest.param(b"GE(T / HTTP/1.1\r\n" + H + b"\r\n", id="method-not-a-token"),
    pytest.param(b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", id="space-in-target"),
    pytest.param(b"GET / HTTP/1.1 trailing\r\n" + H + b"\r\n", id="junk-after-version"),
    pytest.param(b"GET / HTTP/one.one\r\n" + H + b"\r\n", id="non-numeric-version"),
    pytest.param(b"GET foo HTTP/1.1\r\n" + H + b"\r\n", id="target-not-origin-form"),
    pytest.param(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", id="tls-hello-bytes"),
])
def test_malformed_request_line_is_400(srv, raw):
    """RFC 9112 3: request-line = method SP request-target SP HTTP-version;
    a server that receives an invalid request-line SHOULD respond 400."""
    check_rejected(srv, raw, 400)


def test_http2_version_is_505(srv):
    """RFC 9110 15.6.6: 505 (HTTP Version Not Supported) for a major
    version the server does not support."""
    check_rejected(srv, b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505)


def test_a_later_http1_minor_version_is_answered_as_11(srv):
    """RFC 9110 6.2: a recipient of a higher minor version of its major
    version answers as the highest minor it supports; it is not refused."""
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.2\r\n" + H + b"\r\n")
        resp = c.read_response()
    assert resp.status == 200
    assert resp.version == "HTTP/1.1"


def test_missing_host_in_http11_is_400(srv):
    """RFC 9112 3.2: 'A server MUST respond with a 400 (Bad Request) status
    code to any HTTP/1.1 request message that lacks a Host header field.'"""
    check_rejected(srv, b"GET / HTTP/1.1\r\nX-Other: 1\r\n\r\n", 400)


def test_two_host_headers_is_400(srv):
    """RFC 9112 3.2: ... 'and to any request message that contains more than
    one Host header field line'."""
    check_rejected(srv, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)


# --- RFC 9112 5 / RFC 9110 5.5: field syntax --------------------------------

def test_obs_fold_is_400(srv):
    """RFC 9112 5.2: a server that receives obs-fold in a request 'MUST
    either reject the message by sending a 400 (Bad Request)...' (this
    server rejects)."""
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + b"X-Folded: a\r\n  b\r\n\r\n", 400)


def test_whitespace_between_field_name_and_colon_is_400(srv):
    """RFC 9112 5.1: 'A server MUST reject, with a response status code of 400
    (Bad Request), any received request message that contains whitespace
    between a header field name and colon.'"""
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + b"X-Space : v\r\n\r\n", 400)


def test_nul_in_field_value_is_400(srv):
    """RFC 9110 5.5: 'Field values containing CR, LF, or NUL characters are
    invalid and dangerous'; this server rejects them with 400."""
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + b"X-Nul: a\x00b\r\n\r\n", 400)


@pytest.mark.parametrize("line", [
    pytest.param(b"No-Colon-Here", id="no-colon"),
    pytest.param(b"Bad Name: v", id="space-in-name"),
    pytest.param(b": empty-name", id="empty-name"),
    pytest.param(b"Bad\x01Name: v", id="control-char-in-name"),
])
def test_malformed_field_line_is_400(srv, line):
    """RFC 9110 5.1 / RFC 9112 5: field-name = token, followed by ':'."""
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + line + b"\r\n\r\n", 400)


# --- RFC 9112 6: message body framing ---------------------------------------

def test_content_length_with_transfer_encoding_is_400(srv):
    """RFC 9112 6.3: a message with both Transfer-Encoding and Content-Length
    is a potential request smuggling attack; this server rejects it with 400
    and closes (the RFC requires at least closing after the response)."""
    check_rejected(srv, b"POST /echo HTTP/1.1\r\n" + H +
                   b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n", 400)


@pytest.mark.parametrize("cl", [
    pytest.param(b"Content-Length: 5\r\nContent-Length: 6\r\n", id="two-headers"),
    pytest.param(b"Content-Length: 5, 6\r\n", id="list-form"),
])
def test_differing_content_lengths_are_400(srv, cl):
    """RFC 9112 6.3 rule 5: an invalid Content-Length (differing values) in a
    request is unrecoverable: 'the server MUST respond with a 400'."""
    check_rejected(srv, b"POST /echo HTTP/1.1\r\n" + H + cl + b"\r\nhello!", 400)


@pytest.mark.parametrize("value", [b"abc", b"-1", b"+5", b"5 5", b"0x10"])
def test_malformed_content_length_is_400(srv, value):
    """RFC 9110 8.6: Content-Length = 1*DIGIT; anything else is invalid and
    the server MUST respond 400 (RFC 9112 6.3 rule 5)."""
    check_rejected(srv, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: " + value +
                   b"\r\n\r\nhello", 400)


def test_unknown_transfer_coding_is_501(srv):
    """RFC 9112 6.1: 'A server that receives a request message with a
    transfer coding it does not understand SHOULD respond with 501 (Not
    Implemented).'"""
    check_rejected(srv, b"POST /echo HTTP/1.1\r\n" + H +
                   b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501)


def test_chunked_applied_twice_is_rejected(srv):
    """RFC 9112 6.1: 'A sender MUST NOT apply the chunked transfer coding more
    than once to a message body'; such a request cannot be framed safely
    (400, or 501 for an unsupported coding combination)."""
    check_rejected(srv, b"POST /echo HTTP/1.1\r\n" + H +
                   b"Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                   (400, 501))


def test_transfer_encoding_not_ending_in_chunked_is_rejected(srv):
    """RFC 9112 6.3 rule 4: if chunked is not the final coding of a request
    'the server MUST respond with the 400 (Bad Request) status code and then
    close the connection'.  ('gzip' alone is also an unimplemented coding,
    for which 501 is the SHOULD of RFC 9112 6.1, so either is accepted.)"""
    check_rejected(srv, b"POST /echo HTTP/1.1\r\n" + H +
                   b"Transfer-Encoding: gzip\r\n\r\nhello", (400, 501))


def test_transfer_encoding_in_http10_is_400(srv):
    """RFC 9112 6.1: a server that receives Transfer-Encoding in an HTTP/1.0
    request 'MUST treat the message as if the framing is faulty ... and close
    the connection after responding'."""
    check_rejected(srv, b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n", 400)


@pytest.mark.parametrize("body", [
    pytest.param(b"zz\r\nhello\r\n0\r\n\r\n", id="non-hex-size"),
    pytest.param(b"5\r\nhelloXX0\r\n\r\n", id="data-not-followed-by-crlf"),
    pytest.param(b"-5\r\nhello\r\n0\r\n\r\n", id="negative-size"),
])
def test_malformed_chunked_body_is_400(srv, body):
    """RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF."""
    check_rejected(srv, b"POST /echo HTTP/1.1\r\n" + H +
                   b"Transfer-Encoding: chunked\r\n\r\n" + body, 400)


def test_chunk_size_overflow_is_rejected(srv):
    """A chunk size that overflows 64 bits must be rejected, not wrapped
    (a classic smuggling vector); 413 is acceptable as well as 400."""
    check_rejected(srv, b"POST /echo HTTP/1.1\r\n" + H +
                   b"Transfer-Encoding: chunked\r\n\r\n"
                   b"1ffffffffffffffff\r\nhello\r\n0\r\n\r\n", (400, 413))


# --- limits: 431 -----------------------------------------------------------

def many_headers(count: int, value_len: int = 10) -> bytes:
    return b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * value_len) for i in range(count))


def test_head_over_maxhd_is_431(run_server):
    """RFC 6585 5: 431 (Request Header Fields Too Large) when the header
    section is larger than the server is willing to process (-maxhd 1 KiB),
    even though each line is short and the count is small."""
    srv = run_server("basic", "-maxhd", "1")
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + many_headers(30, 60) + b"\r\n", 431)


def test_head_under_maxhd_is_served(run_server):
    """The same limit lets a smaller head through (-maxhd 1 KiB, ~700 bytes)."""
    srv = run_server("basic", "-maxhd", "1")
    with srv.connect() as c:
        c.send(b"GET /small-head HTTP/1.1\r\n" + H + many_headers(10, 40) + b"\r\n")
        assert c.read_response().status == 200


def test_head_over_default_maxhd_is_431(srv):
    """The default head limit is 32 KiB: 40 lines of ~1000 bytes (each under
    the 8 KiB line cap, count under 128) exceed it."""
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + many_headers(40, 1000) + b"\r\n", 431)


def test_header_line_over_line_cap_is_431(run_server):
    """One header line over --max-header-line (1 KiB) is 431, though the
    whole head is far under -maxhd."""
    srv = run_server("basic", "--max-header-line", "1")
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + b"X-Long: " + b"a" * 1100 + b"\r\n\r\n", 431)


def test_header_line_under_line_cap_is_served(run_server):
    srv = run_server("basic", "--max-header-line", "1")
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\n" + H + b"X-Long: " + b"a" * 900 + b"\r\n\r\n")
        assert c.read_response().status == 200


def test_header_line_over_default_line_cap_is_431(srv):
    """The default line cap is 8 KiB."""
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", 431)


def test_header_count_over_max_headers_is_431(run_server):
    """More header fields than --max-headers (10) is 431."""
    srv = run_server("basic", "--max-headers", "10")
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + many_headers(20) + b"\r\n", 431)


def test_header_count_under_max_headers_is_served(run_server):
    srv = run_server("basic", "--max-headers", "10")
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\n" + H + many_headers(5) + b"\r\n")
        assert c.read_response().status == 200


def test_header_count_over_default_max_headers_is_431(srv):
    """The default header count cap is 128."""
    check_rejected(srv, b"GET / HTTP/1.1\r\n" + H + many_headers(200) + b"\r\n", 431)


def test_request_line_over_line_cap_is_rejected(srv):
    """A request target longer than the line cap (8 KiB) is refused: 414 (URI
    Too Long, RFC 9110 15.5.15) or 431 are both reasonable answers."""
    check_rejected(srv, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", (414, 431))


# --- limits: 413 -----------------------------------------------------------

MiB = 1024 * 1024


def test_declared_body_over_maxbd_is_413_without_reading_it(run_server):
    """RFC 9110 15.5.14: 413 (Content Too Large) when the content is larger
    than the server is willing to process.  The declared Content-Length is
    over -maxbd 1 (MiB), so the server answers from the head alone: the test
    never sends the body, and the response still arrives."""
    srv = run_server("basic", "-maxbd", "1")
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % (MiB + 1))
        resp = c.read_response(timeout=5)
        assert resp.status == 413, resp
        assert c.wait_closed(3.0)
    srv.assert_alive()


def test_body_at_exactly_maxbd_is_accepted(run_server):
    """The limit is inclusive: a body of exactly -maxbd MiB is served."""
    srv = run_server("basic", "-maxbd", "1")
    body = bytes(i % 251 for i in range(MiB))
    with srv.connect(timeout=10) as c:
        c.request("POST", "/sha256", body=body)
        resp = c.read_response(timeout=10)
    assert resp.status == 200
    assert json.loads(resp.body)["sha256"] == hashlib.sha256(body).hexdigest()


def test_expect_continue_with_too_large_body_gets_413_not_100(run_server):
    """RFC 9110 10.1.1: a server may answer 100-continue with a final status
    instead; for a declared body over the limit it must not invite the body
    with 100 (Continue) but answer 413."""
    srv = run_server("basic", "-maxbd", "1")
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % (2 * MiB))
        resp = c.read_response(timeout=5)
        assert resp.status == 413, resp
        assert c.wait_closed(3.0)
    srv.assert_alive()


def test_chunked_body_growing_past_maxbd_is_413(run_server):
    """A chunked body has no declared length; once the decoded size passes
    -maxbd 1 (MiB) the server answers 413 and closes.  The body is pushed from
    a thread while the test reads, since the server stops reading."""
    srv = run_server("basic", "-maxbd", "1")
    block = b"z" * 65536
    chunk = b"%x\r\n" % len(block) + block + b"\r\n"
    with srv.connect(timeout=10) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n")
        sender = BackgroundSender(c, [chunk] * 48)  # 3 MiB, never terminated
        try:
            resp = c.read_response(timeout=10)
        except ConnectionClosed as e:
            raise AssertionError(f"no 413 before the connection ended "
                                 f"({'reset' if c.reset else 'closed'}); got {e.partial[:200]!r}")
        assert resp.status == 413, resp
        assert c.wait_closed(5.0)
        sender.join()
    srv.assert_alive()
