"""The server passes wsgiref.validate.validator (PEP 3333's reference
checker) for several kinds of application.

The validator sits between server and app and raises AssertionError on
anything off in the environ, the input/error streams, start_response, the
write() callable or the iteration protocol (including iterating after
close(), or never calling close(), which it reports on stderr).  The server
turns an app exception into a 500 and a traceback on stderr, so each test
asserts a 200 and the fixture's teardown asserts that stderr shows no
'AssertionError', 'Traceback', 'WSGIWarning' or 'Iterator garbage collected
without being closed'.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.apps import validated


@pytest.fixture(params=["1", "2"], ids=["t1", "t2"])
def srv(request, run_server):
    return run_server("validated", "-t", request.param)


def check_stderr_clean(srv):
    bad = [m for m in ("AssertionError", "Traceback", "WSGIWarning",
                       "Iterator garbage collected") if m in srv.stderr]
    assert not bad, f"validator complaints {bad}; stderr:\n{srv.stderr}"


def test_simple_app(srv):
    resp = srv.get("/simple")
    assert resp.status == 200
    assert resp.body == validated.SIMPLE
    check_stderr_clean(srv)


def test_head_request(srv):
    with srv.connect() as c:
        c.request("HEAD", "/simple")
        resp = c.read_response("HEAD")
    assert resp.status == 200
    check_stderr_clean(srv)


def test_streaming_app(srv):
    resp = srv.get("/stream")
    assert resp.status == 200
    assert resp.body == b"".join(validated.STREAM_PARTS)
    check_stderr_clean(srv)


@pytest.mark.parametrize("size", [0, 10, 5000, 300_000])
def test_app_reading_the_body(srv, size):
    body = b"line one\nline two\n" + bytes(i % 256 for i in range(size))
    with srv.connect(timeout=10) as c:
        c.request("POST", "/body", [("Content-Type", "application/octet-stream")], body)
        resp = c.read_response(timeout=10)
    assert resp.status == 200
    assert resp.body.decode() == hashlib.sha256(body).hexdigest()
    check_stderr_clean(srv)


def test_app_using_write(srv):
    resp = srv.get("/write")
    assert resp.status == 200
    assert resp.body == b"".join(validated.WRITE_PARTS)
    check_stderr_clean(srv)


def test_204_without_content_type(srv):
    resp = srv.get("/empty")
    assert resp.status == 204
    check_stderr_clean(srv)


def test_wsgi_errors(srv):
    mark = srv.stderr_mark()
    resp = srv.get("/errors")
    assert resp.status == 200
    srv.wait_for_stderr("validated-errors-write", start=mark)
    srv.wait_for_stderr("validated-errors-writelines", start=mark)
    check_stderr_clean(srv)


def test_many_requests_on_one_connection(srv):
    """Repeated use of one connection, mixing the kinds above."""
    with srv.connect(timeout=10) as c:
        for i in range(5):
            c.request("GET", "/simple")
            assert c.read_response().status == 200
            c.request("GET", "/stream")
            assert c.read_response().status == 200
            c.request("POST", "/body", body=b"abc\n" * i)
            assert c.read_response().status == 200
    check_stderr_clean(srv)
