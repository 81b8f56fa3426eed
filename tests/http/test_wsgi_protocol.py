"""The application side of PEP 3333: start_response, write(), the response
iterable's close(), wsgi.file_wrapper and application errors."""

from __future__ import annotations

import pytest

from tests.apps import closing, wsgi_rules
from tests.rawhttp import ConnectionClosed


@pytest.fixture
def rules(run_server):
    srv = run_server("wsgi_rules")
    srv.allow_tracebacks = True  # several of these apps raise on purpose
    return srv


# --- application errors -------------------------------------------------

@pytest.mark.parametrize("path,message", [
    ("/raise-before", "raised-before-start-response"),
    ("/raise-after-start", "raised-after-start-response"),
])
def test_app_exception_before_output_is_500_and_logged(rules, path, message):
    """PEP 3333 'Error Handling': when the app raises before any output was
    sent, the server sends an error response (500); it logs the traceback;
    and it keeps serving."""
    mark = rules.stderr_mark()
    with rules.connect() as c:
        c.request("GET", path)
        resp = c.read_response()
    assert resp.status == 500, resp
    assert message.encode() not in resp.body, "the exception text leaked to the client"
    rules.wait_for_stderr("Traceback", timeout=5, start=mark)
    rules.wait_for_stderr(message, timeout=5, start=mark)
    rules.assert_alive()


def test_connection_survives_an_app_error(rules):
    """After a 500 produced before any output, the connection (keep-alive)
    can carry the next request, or the server closes it cleanly."""
    with rules.connect() as c:
        c.request("GET", "/raise-before")
        first = c.read_response()
        assert first.status == 500
        if first.has_token("Connection", "close"):
            assert c.wait_closed(3.0)
            return
        c.request("GET", "/")
        assert c.read_response().body == b"ok"


# --- start_response and exc_info --------------------------------------------

def test_start_response_with_exc_info_before_output_replaces_the_status(rules):
    """PEP 3333: 'if exc_info is provided, and the HTTP headers have not
    been sent yet, start_response should replace the currently-stored HTTP
    response headers with the newly-supplied ones'."""
    with rules.connect() as c:
        c.request("GET", "/exc-info-replace")
        resp = c.read_response()
    assert resp.status == 503
    assert resp.header("X-Second") == "1"
    assert resp.header("X-First") is None
    assert resp.body == b"replaced"


def test_start_response_with_exc_info_after_output_reraises(rules):
    """PEP 3333: 'If exc_info is provided, and the HTTP headers have already
    been sent, start_response must raise an error, and should re-raise using
    the exc_info tuple.'  The response is already under way, so the server
    can only abort it: the body must end without the chunked terminator
    and the connection must close."""
    mark = rules.stderr_mark()
    with rules.connect() as c:
        c.request("GET", "/exc-info-after-sent")
        resp = c.read_response(allow_incomplete=True)
        assert resp.status == 200
        assert resp.body.startswith(b"partial")
        assert b"should-not-be-sent" not in resp.body
        assert not resp.complete, "an aborted response must not look complete"
        assert c.eof
    rules.wait_for_stderr("exc-info-reraised", timeout=5, start=mark)
    assert "exc-info-NOT-reraised" not in rules.stderr
    rules.assert_alive()


def test_start_response_twice_without_exc_info_is_an_error(rules):
    """PEP 3333: 'It is a fatal error to call start_response without the
    exc_info argument if start_response has already been called within the
    current invocation of the application.'  Nothing was sent yet -> 500."""
    resp = rules.get("/start-twice")
    assert resp.status == 500
    assert resp.body != b"twice"


# --- write() -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/write", "/write-length"])
def test_legacy_write_callable(rules, path):
    """PEP 3333 'The write() Callable': data passed to write() is sent
    before the data from the returned iterable."""
    rules.allow_tracebacks = False
    resp = rules.get(path)
    expected = b"".join(wsgi_rules.WRITE_PARTS) + wsgi_rules.RETURN_PART
    assert resp.status == 200
    assert resp.body == expected
    if path == "/write-length":
        assert resp.header("Content-Length") == str(len(expected))


def test_write_only_with_empty_iterable(rules):
    rules.allow_tracebacks = False
    resp = rules.get("/write-only")
    assert resp.status == 200
    assert resp.body == b"".join(wsgi_rules.WRITE_PARTS)


# --- close() -------------------------------------------------------------

@pytest.fixture
def closer(run_server):
    srv = run_server("closing")
    return srv


@pytest.mark.parametrize("path", ["/normal", "/with-length"])
def test_close_is_called_after_a_normal_response(closer, path):
    """PEP 3333: the server must call the iterable's close() 'upon completion
    of the current request'."""
    mark = closer.stderr_mark()
    tag = "normal" + path.replace("/", "-")
    resp = closer.get(f"{path}?tag={tag}")
    assert resp.body == b"".join(closing.PARTS)
    closer.wait_for_stderr(f"close-called {tag}", timeout=5, start=mark)


def test_close_is_called_when_the_app_raises_mid_iteration(closer):
    """... 'or terminated early due to an application error during
    iteration'.  Headers are already out, so the response is cut short."""
    closer.allow_tracebacks = True
    mark = closer.stderr_mark()
    with closer.connect() as c:
        c.request("GET", "/raise-mid?tag=raised")
        resp = c.read_response(allow_incomplete=True)
        assert resp.status == 200
        assert not resp.complete
    closer.wait_for_stderr("close-called raised", timeout=5, start=mark)
    closer.wait_for_stderr("raised-mid-iteration", timeout=5, start=mark)
    closer.assert_alive()


def test_close_is_called_when_the_client_disconnects(closer):
    """... 'or an early disconnect of the browser'."""
    mark = closer.stderr_mark()
    with closer.connect() as c:
        c.request("GET", "/big?tag=disconnected")
        assert c.read_head().status == 200
        assert c.read_some()
    closer.wait_for_stderr("close-called disconnected", timeout=10, start=mark)
    closer.assert_alive()


def test_close_is_called_once(closer):
    mark = closer.stderr_mark()
    closer.get("/normal?tag=once")
    closer.wait_for_stderr("close-called once", timeout=5, start=mark)
    # The next request's close is a later event: once it shows up, any
    # duplicate close of the first would have been printed before it.
    closer.get("/normal?tag=second")
    closer.wait_for_stderr("close-called second", timeout=5, start=mark)
    assert closer.stderr_lines[mark:].count("close-called once") == 1


# --- wsgi.file_wrapper ----------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 8191, 8192, 300_000])
@pytest.mark.parametrize("length", ["0", "1"], ids=["no-length", "with-length"])
def test_file_wrapper_serves_the_file(run_server, tmp_path, size, length):
    """PEP 3333 'Optional Platform-Specific File Handling': the response is
    the file's content from the current position to the end; with a
    Content-Length from the app, that header is sent as given."""
    srv = run_server("wsgi_rules")
    data = wsgi_rules.pattern_bytes(size)[::-1]
    f = tmp_path / "served.bin"
    f.write_bytes(data)
    with srv.connect(timeout=10) as c:
        c.request("GET", f"/file?path={f}&length={length}")
        resp = c.read_response(timeout=10)
    assert resp.status == 200
    assert resp.body == data
    if length == "1":
        assert resp.header("Content-Length") == str(size)


def test_file_wrapper_over_a_file_like_without_fileno(run_server):
    """file_wrapper must work with any object that has read() (and call its
    close() when done): 'the server must call the wrapper's close'."""
    srv = run_server("wsgi_rules")
    mark = srv.stderr_mark()
    size = 50_000
    resp = srv.get(f"/filelike?size={size}", timeout=10)
    assert resp.status == 200
    assert resp.body == wsgi_rules.pattern_bytes(size)
    srv.wait_for_stderr("filelike-closed", timeout=5, start=mark)


# --- application mistakes the server must contain ---------------------------

@pytest.mark.parametrize("path", ["/yield-str", "/return-none"])
def test_app_returning_the_wrong_type_is_500(rules, path):
    """PEP 3333: the iterable must yield bytestrings ('the value must be of
    type bytes'); a str, or no iterable at all, is an application error that
    the server reports as 500 before any output, and survives."""
    resp = rules.get(path)
    assert resp.status == 500, resp
    rules.assert_alive()


def test_header_value_with_crlf_is_not_sent_as_a_header(rules):
    """A header value containing CR/LF would let the app (or its user input)
    inject header lines (response splitting, RFC 9110 5.5 / 11.1 of RFC
    9112).  The server must refuse it (500) rather than emit it."""
    with rules.connect() as c:
        c.request("GET", "/header-injection")
        resp = c.read_response()
    assert resp.header("Set-Cookie") is None, f"header injected: {resp!r}"
    assert resp.status == 500, resp
    rules.assert_alive()


def test_body_shorter_than_declared_length_closes_the_connection(rules):
    """When the app yields fewer bytes than its Content-Length, the message
    is incomplete (RFC 9112 8): the server must close the connection rather
    than leave the client waiting or reuse the connection."""
    with rules.connect() as c:
        c.request("GET", "/short-body")
        resp = c.read_response(allow_incomplete=True, timeout=5)
        assert resp.status == 200
        assert not resp.complete
        assert resp.body == b"12345"
    rules.assert_alive()


def test_body_longer_than_declared_length_never_leaks_into_the_next_response(rules):
    """Bytes past the app's Content-Length must not be sent: they would be
    read by the client as the start of the next response.  The server
    truncates (keeping the connection) or closes it."""
    with rules.connect() as c:
        c.request("GET", "/long-body")
        resp = c.read_response()
        assert resp.body == b"12345"
        c.request("GET", "/")
        try:
            nxt = c.read_response()
        except ConnectionClosed as e:  # closed after the first response: fine
            assert e.partial == b"", f"extra bytes leaked before the close: {e.partial!r}"
            return
    assert nxt.status == 200 and nxt.body == b"ok", f"extra bytes leaked: {nxt!r}"
