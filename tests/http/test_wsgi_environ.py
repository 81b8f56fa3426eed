"""The WSGI environ (PEP 3333 "environ Variables")."""

from __future__ import annotations

import json

import pytest


def environ_of(srv, method="GET", target="/environ", headers=None, body=b"",
               version="HTTP/1.1", host=True):
    with srv.connect() as c:
        c.request(method, target, headers, body, version=version, host=host)
        resp = c.read_response()
    assert resp.status == 200, resp
    return json.loads(resp.body)


def value(report, key):
    assert key in report["keys"], f"{key} missing from environ: {sorted(report['keys'])}"
    return report["keys"][key]["value"]


def type_of(report, key):
    assert key in report["keys"], f"{key} missing from environ: {sorted(report['keys'])}"
    return report["keys"][key]["type"]


@pytest.fixture
def srv(run_server):
    return run_server("basic")


def test_environ_is_a_builtin_dict(srv):
    """PEP 3333: 'The environ parameter is a dictionary object... it must be
    a builtin Python dictionary (not a subclass, UserDict or other dictionary
    emulation)'."""
    assert environ_of(srv)["environ_type"] == "dict"


def test_required_cgi_variables(srv):
    """PEP 3333 lists REQUEST_METHOD, SCRIPT_NAME, PATH_INFO, QUERY_STRING,
    SERVER_NAME, SERVER_PORT and SERVER_PROTOCOL; SERVER_NAME and SERVER_PORT
    'can never be empty strings'."""
    r = environ_of(srv, target="/environ?a=1")
    assert value(r, "REQUEST_METHOD") == "GET"
    assert value(r, "SCRIPT_NAME") == ""
    assert value(r, "PATH_INFO") == "/environ"
    assert value(r, "QUERY_STRING") == "a=1"
    assert isinstance(value(r, "SERVER_NAME"), str) and value(r, "SERVER_NAME") != ""
    assert value(r, "SERVER_PORT") == str(srv.port)
    assert value(r, "SERVER_PROTOCOL") == "HTTP/1.1"
    assert value(r, "REMOTE_ADDR") == "127.0.0.1"


def test_all_cgi_variables_are_native_strings(srv):
    """PEP 3333 'A Note On String Types': CGI-style environ values are native
    strings (str)."""
    r = environ_of(srv, "POST", "/environ?q=1", [("X-Thing", "v"), ("Content-Type", "text/plain")],
                   body=b"abc")
    for key, info in r["keys"].items():
        if "." not in key:
            assert info["type"] == "str", f"{key} is {info['type']}, not str"


def test_wsgi_variables(srv):
    """PEP 3333: wsgi.version (1, 0); wsgi.url_scheme 'http'; wsgi.input,
    wsgi.errors; wsgi.multithread, wsgi.multiprocess, wsgi.run_once."""
    r = environ_of(srv)
    assert type_of(r, "wsgi.version") == "tuple"
    assert value(r, "wsgi.version") == [1, 0]
    assert value(r, "wsgi.url_scheme") == "http"
    assert type_of(r, "wsgi.multithread") == "bool"
    assert type_of(r, "wsgi.multiprocess") == "bool"
    assert value(r, "wsgi.run_once") is False
    assert r["input_attrs"] == {"read": True, "readline": True, "readlines": True, "__iter__": True}
    assert r["errors_attrs"] == {"write": True, "writelines": True, "flush": True}
    assert r["body_type"] == "bytes"


@pytest.mark.parametrize("threads,expected", [("1", False), ("2", True)])
def test_wsgi_multithread_follows_thread_count(run_server, threads, expected):
    """wsgi.multithread: 'true if the application object may be
    simultaneously invoked by another thread in the same process' (-t N)."""
    srv = run_server("basic", "-t", threads)
    assert value(environ_of(srv), "wsgi.multithread") is expected


def test_wsgi_multiprocess_false_with_one_worker(run_server):
    srv = run_server("basic", "-w", "1")
    assert value(environ_of(srv), "wsgi.multiprocess") is False


def test_wsgi_multiprocess_true_with_several_workers(run_server):
    """wsgi.multiprocess: 'true if an equivalent application object may be
    simultaneously invoked by another process' (-w 2)."""
    srv = run_server("basic", "-w", "2")
    assert value(environ_of(srv), "wsgi.multiprocess") is True


def test_path_info_is_percent_decoded_then_latin1(srv):
    """PEP 3333: environ strings hold bytes decoded as ISO-8859-1; the path
    is URL-decoded first (CGI).  '/caf%C3%A9' -> bytes 'caf\\xc3\\xa9' ->
    'cafÃ©'."""
    r = environ_of(srv, target="/environ/caf%C3%A9")
    assert value(r, "PATH_INFO") == b"/environ/caf\xc3\xa9".decode("latin-1")
    assert value(r, "PATH_INFO") == "/environ/caf\u00c3\u00a9"


def test_raw_non_ascii_path_is_latin1_decoded_or_rejected(srv):
    """Raw non-ASCII octets are not valid in a request-target (RFC 9112 3.2,
    RFC 3986): a server may reject them with 400; if it accepts them, the
    app sees them decoded as latin-1 like everything else (PEP 3333)."""
    with srv.connect() as c:
        c.send(b"GET /environ/\xc3\xa9t\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = c.read_response()
    assert resp.status in (200, 400), resp
    if resp.status == 200:
        assert json.loads(resp.body)["keys"]["PATH_INFO"]["value"] == \
            b"/environ/\xc3\xa9t\xc3\xa9".decode("latin-1")


def test_query_string_is_raw(srv):
    """QUERY_STRING is the part after '?', not decoded."""
    r = environ_of(srv, target="/environ?a=%20b&c=d%2Fe&f")
    assert value(r, "PATH_INFO") == "/environ"
    assert value(r, "QUERY_STRING") == "a=%20b&c=d%2Fe&f"


def test_empty_query_string(srv):
    """QUERY_STRING 'may be empty or absent' when there is no query."""
    r = environ_of(srv)
    assert r["keys"].get("QUERY_STRING", {"value": ""})["value"] == ""


def test_encoded_slash_in_path_is_decoded(srv):
    r = environ_of(srv, target="/environ/a%2Fb%20c")
    assert value(r, "PATH_INFO") == "/environ/a/b c"


def test_content_type_and_length(srv):
    """CONTENT_TYPE and CONTENT_LENGTH carry those headers, and PEP 3333 /
    CGI do not also present them as HTTP_CONTENT_TYPE / HTTP_CONTENT_LENGTH."""
    r = environ_of(srv, "POST", headers=[("Content-Type", "application/x-thing; q=1")],
                   body=b"12345")
    assert value(r, "CONTENT_TYPE") == "application/x-thing; q=1"
    assert value(r, "CONTENT_LENGTH") == "5"
    assert "HTTP_CONTENT_TYPE" not in r["keys"]
    assert "HTTP_CONTENT_LENGTH" not in r["keys"]
    assert r["body"] == "12345"


def test_content_length_absent_or_empty_without_body(srv):
    """CONTENT_LENGTH 'may be empty or absent' for a request without a body."""
    r = environ_of(srv)
    assert r["keys"].get("CONTENT_LENGTH", {"value": ""})["value"] in ("", "0")


def test_http_variables(srv):
    """HTTP_ Variables: one per request header, name upper-cased with '-'
    replaced by '_'."""
    r = environ_of(srv, headers=[("X-Custom-Header", "custom value"),
                                 ("Accept", "text/html"), ("user-agent", "tests/1.0")])
    assert value(r, "HTTP_X_CUSTOM_HEADER") == "custom value"
    assert value(r, "HTTP_ACCEPT") == "text/html"
    assert value(r, "HTTP_USER_AGENT") == "tests/1.0"
    assert value(r, "HTTP_HOST") == f"127.0.0.1:{srv.port}"


def test_repeated_headers_are_joined_with_comma(srv):
    """RFC 9110 5.3: field lines with the same name combine into one value
    joined with ', ' in order."""
    r = environ_of(srv, headers=[("X-Multi", "a"), ("X-Other", "o"), ("X-Multi", "b, c"),
                                 ("x-multi", "d")])
    assert value(r, "HTTP_X_MULTI") == "a, b, c, d"
    assert value(r, "HTTP_X_OTHER") == "o"


def test_header_value_whitespace_is_trimmed(srv):
    """RFC 9112 5: leading and trailing OWS is not part of the field value."""
    with srv.connect() as c:
        c.send(b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Padded: \t padded value \t\r\n\r\n")
        r = json.loads(c.read_response().body)
    assert value(r, "HTTP_X_PADDED") == "padded value"


def test_latin1_header_values(srv):
    """Header values are bytes decoded as ISO-8859-1 (PEP 3333)."""
    with srv.connect() as c:
        c.send(b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Bytes: caf\xc3\xa9\xff\r\n\r\n")
        r = json.loads(c.read_response().body)
    assert value(r, "HTTP_X_BYTES") == b"caf\xc3\xa9\xff".decode("latin-1")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"])
def test_request_method_is_passed_through(srv, method):
    r = environ_of(srv, method, body=b"x" if method in ("POST", "PUT", "PATCH") else b"")
    assert value(r, "REQUEST_METHOD") == method


def test_server_protocol_for_http10(srv):
    r = environ_of(srv, version="HTTP/1.0", host=False)
    assert value(r, "SERVER_PROTOCOL") == "HTTP/1.0"


def test_wsgi_errors_goes_to_the_server_log(srv):
    """wsgi.errors: 'An output stream (file-like object) to which error
    output can be written ... this will usually be the server's error log.'"""
    mark = srv.stderr_mark()
    environ_of(srv, target="/environ?errors=marker-from-wsgi-errors-7f3a")
    srv.wait_for_stderr("marker-from-wsgi-errors-7f3a", timeout=5, start=mark)


def test_file_wrapper_is_offered(srv):
    """wsgi.file_wrapper (optional in PEP 3333, promised by this server)."""
    assert environ_of(srv)["file_wrapper_callable"] is True
