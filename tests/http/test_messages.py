"""HTTP/1.1 message basics (RFC 9110 / RFC 9112) against the real server."""

from __future__ import annotations

import email.utils
import json
import os
import re
from datetime import datetime, timezone

import pytest

from tests.apps import basic, hello
from tests.rawhttp import chunked


@pytest.fixture
def srv(run_server):
    return run_server("basic")


def test_get_returns_app_body_with_its_content_length(run_server):
    """RFC 9110 9.3.1: GET transfers the selected representation; the
    Content-Length the app set frames the body (RFC 9112 6.3 rule 6)."""
    srv = run_server("hello")
    resp = srv.get("/")
    assert resp.status == 200
    assert resp.version == "HTTP/1.1"
    assert resp.body == hello.BODY
    assert resp.header("Content-Length") == str(len(hello.BODY))
    assert resp.header("Content-Type") == "text/plain"
    assert resp.header("Transfer-Encoding") is None


def test_head_has_the_headers_of_get_and_no_body(srv):
    """RFC 9110 9.3.2: 'The HEAD method is identical to GET except that the
    server MUST NOT send content in the response.'  The connection must stay
    usable: no stray body bytes may precede the next response."""
    with srv.connect() as c:
        c.request("GET", "/some/path")
        get = c.read_response("GET")
        c.request("HEAD", "/some/path")
        head = c.read_response("HEAD")
        # The next response on the same connection must start cleanly.
        c.request("GET", "/after-head")
        after = c.read_response("GET")
    assert head.status == get.status == 200
    def strip(r):
        return sorted((n.lower(), v) for n, v in r.headers if n.lower() != "date")

    # The catch-all route echoes the method, so the length differs by design:
    # compare against what GET would have said for the HEAD method's body.
    get_headers = dict(strip(get))
    head_headers = dict(strip(head))
    assert head_headers.get("content-type") == get_headers.get("content-type")
    assert head_headers.get("content-length") == str(len(basic.default_body("HEAD", "/some/path")))
    assert after.status == 200
    assert after.body == basic.default_body("GET", "/after-head")


def test_head_of_a_streamed_response_sends_no_body(srv):
    """RFC 9110 9.3.2 / RFC 9112 6.3 rule 1: a HEAD response ends at the
    header section even when the app streams a body without a length."""
    with srv.connect() as c:
        c.request("HEAD", "/stream?n=4")
        head = c.read_response("HEAD")
        c.request("GET", "/plain")
        nxt = c.read_response()
    assert head.status == 200
    assert nxt.status == 200
    assert nxt.body == basic.default_body("GET", "/plain")


def test_post_body_with_content_length_reaches_the_app(srv):
    """RFC 9112 6.2: Content-Length gives the body length; the app reads
    exactly those bytes from wsgi.input."""
    body = bytes(range(256)) * 3
    resp = srv.request("POST", "/echo", [("Content-Type", "application/x-test")], body)
    assert resp.status == 200
    assert resp.body == body
    assert resp.header("Content-Type") == "application/x-test"
    assert resp.header("X-Request-Method") == "POST"


@pytest.mark.parametrize("split", [
    pytest.param([64], id="one-chunk"),
    pytest.param([1] * 20, id="one-byte-chunks"),
    pytest.param([3, 17, 1, 40, 100, 7], id="uneven-chunks"),
    pytest.param([4096, 4096, 5000], id="large-chunks"),
])
def test_chunked_upload_is_decoded_for_the_app(srv, split):
    """RFC 9112 7.1: the chunked coding is removed before the app sees the
    body; wsgi.input yields the concatenated chunk data, whatever the split."""
    total = sum(split)
    body = bytes((i * 7 + 3) % 256 for i in range(total))
    parts, pos = [], 0
    for n in split:
        parts.append(body[pos:pos + n])
        pos += n
    with srv.connect() as c:
        c.request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(parts))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == body


def test_chunk_extensions_are_ignored(srv):
    """RFC 9112 7.1.1: 'A recipient MUST ignore unrecognized chunk extensions.'"""
    parts = [b"hello ", b"chunk ", b"extensions"]
    exts = [";name=value", ';quoted="a b;c"', ";flag"]
    with srv.connect() as c:
        c.request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(parts, exts))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == b"".join(parts)


def test_trailers_are_not_merged_into_the_environ_and_connection_stays_usable(srv):
    """RFC 9112 7.1.2: a recipient may discard trailer fields; they must not
    be treated as header fields (no HTTP_X_TRAILER_FIELD in the environ) and the
    next request on the connection must parse normally."""
    body_parts = [b"abc", b"def"]
    with srv.connect() as c:
        c.request("POST", "/environ", [("Transfer-Encoding", "chunked")],
                  chunked(body_parts, trailers=[("X-Trailer-Field", "t1"),
                                                ("X-Other-Trailer", "t2")]))
        resp = c.read_response()
        report = json.loads(resp.body)
        c.request("GET", "/next")
        nxt = c.read_response()
    assert resp.status == 200
    assert report["body"] == "abcdef"
    assert "HTTP_X_TRAILER_FIELD" not in report["keys"]
    assert "HTTP_X_OTHER_TRAILER" not in report["keys"]
    assert nxt.body == basic.default_body("GET", "/next")


def test_date_header_is_a_current_imf_fixdate(srv):
    """RFC 9110 6.6.1: an origin server with a clock MUST send Date, in the
    IMF-fixdate format, e.g. 'Sun, 06 Nov 1994 08:49:37 GMT'."""
    resp = srv.get("/")
    date = resp.header("Date")
    assert date is not None, f"no Date header in {resp!r}"
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                        r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                        r"\d\d:\d\d:\d\d GMT", date), date
    sent = email.utils.parsedate_to_datetime(date)
    skew = abs((datetime.now(timezone.utc) - sent).total_seconds())
    assert skew < 120, f"Date {date!r} is {skew:.0f}s away from now"


def test_server_header_is_present(srv):
    """RFC 9110 10.2.4: Server describes the origin server software."""
    resp = srv.get("/")
    server = resp.header("Server")
    assert server, f"no Server header in {resp!r}"


def test_response_without_content_length_is_chunked_for_http11(srv):
    """RFC 9112 6.1 / 7.1: a response whose length is not known in advance is
    sent with Transfer-Encoding: chunked to an HTTP/1.1 client (the app
    yields from a generator, so the server cannot know the length)."""
    n = 5
    with srv.connect() as c:
        c.request("GET", f"/stream?n={n}")
        resp = c.read_response()
        c.request("GET", "/after-stream")
        nxt = c.read_response()
    assert resp.status == 200
    assert resp.chunked, f"expected a chunked response, got {resp!r}"
    assert resp.header("Content-Length") is None, \
        "RFC 9112 6.2: a sender MUST NOT send Content-Length with Transfer-Encoding"
    assert resp.body == b"".join(basic.stream_chunk(i) for i in range(n))
    assert nxt.body == basic.default_body("GET", "/after-stream")


def test_content_length_from_the_app_is_passed_through(srv):
    """When the app declares Content-Length the server sends it as is and
    frames the body by it (no chunked coding added), even if the app yields
    the body in several pieces."""
    n = 4
    expected = b"".join(basic.stream_chunk(i) for i in range(n))
    with srv.connect() as c:
        c.request("GET", f"/stream-length?n={n}")
        resp = c.read_response()
    assert resp.status == 200
    assert resp.header("Content-Length") == str(len(expected))
    assert resp.header("Transfer-Encoding") is None
    assert resp.body == expected


@pytest.mark.parametrize("code", [204, 304])
def test_204_and_304_have_no_body_and_no_transfer_encoding(srv, code):
    """RFC 9112 6.1: 'A server MUST NOT send a Transfer-Encoding header field
    in any response with a status code of 1xx or 204'; RFC 9110 15.3.5 /
    15.4.5: 204 and 304 responses end at the header section.  The next
    response on the connection must parse cleanly."""
    with srv.connect() as c:
        c.request("GET", f"/status/{code}")
        resp = c.read_response()
        c.request("GET", "/after")
        nxt = c.read_response()
    assert resp.status == code
    if code == 204:
        assert resp.header("Transfer-Encoding") is None
        assert resp.header("Content-Length") in (None, "0")
    assert nxt.status == 200
    assert nxt.body == basic.default_body("GET", "/after")


def test_app_status_and_reason_are_sent(srv):
    """The status line carries the app's status code."""
    resp = srv.get("/status/418")
    assert resp.status == 418


def test_request_target_query_is_kept(srv):
    """RFC 9112 3.2.1 origin-form: absolute-path [ "?" query ]."""
    resp = srv.get("/q?x=1&y=two")
    assert resp.body == basic.default_body("GET", "/q?x=1&y=two")


def test_absolute_form_target_is_accepted(srv):
    """RFC 9112 3.2.2: 'a server MUST accept the absolute-form in requests';
    the path and query come from the absolute URI."""
    with srv.connect() as c:
        c.request("GET", f"http://{c.authority}/abs/path?k=v")
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == basic.default_body("GET", "/abs/path?k=v")


def test_leading_empty_lines_before_request_are_ignored(srv):
    """RFC 9112 2.2: 'a server that is expecting to receive and parse a
    request-line SHOULD ignore at least one empty line (CRLF) received prior
    to the request-line.'"""
    with srv.connect() as c:
        c.send(b"\r\nGET /after-crlf HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == basic.default_body("GET", "/after-crlf")


def test_large_streamed_response_arrives_complete(run_server):
    """A 16 MiB body streamed in 64 KiB blocks (chunked) arrives whole: the
    server copes with partial writes and a client reading slower than the
    app produces."""
    srv = run_server("closing")
    size = 16 * 1024 * 1024
    with srv.connect(timeout=30) as c:
        c.request("GET", f"/big?size={size}&tag=large")
        resp = c.read_response(timeout=30)
    assert resp.status == 200
    assert len(resp.body) == size
    assert resp.body == b"x" * size


def test_large_single_block_response(run_server, tmp_path):
    """A 12 MiB response given as one block with its Content-Length."""
    srv = run_server("wsgi_rules")
    data = os.urandom(12 * 1024 * 1024)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    with srv.connect(timeout=30) as c:
        c.request("GET", f"/file?path={f}&length=1")
        resp = c.read_response(timeout=30)
    assert resp.header("Content-Length") == str(len(data))
    assert resp.body == data


def test_post_with_zero_content_length(srv):
    """Content-Length: 0 is a valid, empty body (RFC 9110 8.6)."""
    with srv.connect() as c:
        c.request("POST", "/echo", [("Content-Length", "0")])
        resp = c.read_response()
        c.request("GET", "/after-empty-post")
        nxt = c.read_response()
    assert resp.status == 200 and resp.body == b""
    assert nxt.body == basic.default_body("GET", "/after-empty-post")


@pytest.mark.parametrize("te_name,te_value", [
    ("transfer-encoding", "chunked"),
    ("TRANSFER-ENCODING", "Chunked"),
    ("Transfer-Encoding", "CHUNKED"),
])
def test_field_names_and_transfer_coding_names_are_case_insensitive(srv, te_name, te_value):
    """RFC 9110 5.1: field names are case-insensitive; RFC 9112 7: 'Transfer
    coding names are case-insensitive'."""
    with srv.connect() as c:
        c.request("POST", "/echo", [(te_name, te_value), ("content-type", "text/x-case")],
                  chunked([b"case ", b"insensitive"]))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.body == b"case insensitive"
    assert resp.header("Content-Type") == "text/x-case"
