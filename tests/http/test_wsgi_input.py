"""wsgi.input (PEP 3333 "Input and Error Streams") and large bodies.

PEP 3333: wsgi.input provides read(size), readline(), readlines(hint) and
__iter__, with file semantics; the server should simulate end-of-file at
CONTENT_LENGTH, and 'A server should allow read() to be called without an
argument, and return the entire remainder of the client's input stream.'
Bodies larger than --body-spill KiB are kept in a temporary file; the app
must not be able to tell.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.rawhttp import chunked

LINES = [b"first line\n", b"\n", b"third: with \r\n", b"x" * 3000 + b"\n",
         b"caf\xc3\xa9 \xff\x00 binary\n", b"no trailing newline"]
BODY = b"".join(LINES)

# Run every input test twice: body in memory, and spilled to a temp file
# (--body-spill 1 KiB; BODY is ~3 KiB).
MODES = [pytest.param((), id="in-memory"), pytest.param(("--body-spill", "1"), id="spilled")]


@pytest.fixture(params=MODES)
def srv(request, run_server):
    return run_server("basic", *request.param)


def post(srv, path, body=BODY, use_chunked=False):
    with srv.connect(timeout=10) as c:
        if use_chunked:
            parts = [body[i:i + 1000] for i in range(0, len(body), 1000)]
            c.request("POST", path, [("Transfer-Encoding", "chunked")], chunked(parts))
        else:
            c.request("POST", path, body=body)
        resp = c.read_response(timeout=10)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def l1(lines):
    return [x.decode("latin-1") for x in lines]


@pytest.mark.parametrize("use_chunked", [False, True], ids=["content-length", "chunked"])
def test_readline_returns_lines_with_their_newlines(srv, use_chunked):
    """readline() returns one line including its b'\\n'; b'' at the end."""
    assert post(srv, "/readline", use_chunked=use_chunked)["lines"] == l1(LINES)


def test_readlines_returns_a_list_of_all_lines(srv):
    got = post(srv, "/readlines")
    assert got["type"] == "list"
    assert got["lines"] == l1(LINES)


def test_iterating_wsgi_input_yields_lines(srv):
    assert post(srv, "/iter")["lines"] == l1(LINES)


@pytest.mark.parametrize("n", [1, 7, 1000, 65536])
def test_read_n_returns_at_most_n_bytes_until_eof(srv, n):
    """read(n) returns bytes, never more than n, and b'' once the body is
    consumed."""
    got = post(srv, f"/read-n?n={n}")
    assert got["types"] == ["bytes"]
    assert all(0 < s <= n for s in got["sizes"]), got["sizes"]
    assert got["body"] == BODY.decode("latin-1")


def test_read_past_content_length_simulates_eof(srv):
    """PEP 3333: the server 'should simulate an end-of-file condition if the
    application attempts to read past' CONTENT_LENGTH (the client keeps the
    connection open, so a server reading the socket would hang)."""
    got = post(srv, f"/read-past?n={len(BODY) + 100}")
    assert got["first"] == BODY.decode("latin-1")
    assert got["second"] == ""


def test_readline_with_size_limits_the_line(srv):
    """readline(size) returns at most size bytes (PEP 3333 allows servers to
    support the size argument; frameworks' multipart parsers rely on it)."""
    got = post(srv, "/readline-size?n=5")["lines"]
    assert "".join(got) == BODY.decode("latin-1")
    assert all(len(x) <= 5 for x in got)
    assert got[0] == "first"


def test_mixing_readline_read_and_readlines_keeps_the_position(srv):
    got = post(srv, "/mixed")
    assert got["first"] == LINES[0].decode("latin-1")
    assert got["five"] == BODY[len(LINES[0]):len(LINES[0]) + 5].decode("latin-1")
    rest = BODY[len(LINES[0]) + 5:]
    assert "".join(got["rest"]) == rest.decode("latin-1")


def test_empty_body_reads_as_eof(srv):
    """A request without a body gives an input stream at EOF."""
    with srv.connect() as c:
        c.request("GET", "/read-n?n=10")
        got = json.loads(c.read_response().body)
    assert got["sizes"] == []
    assert got["body"] == ""


@pytest.mark.parametrize("use_chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_spill_threshold_reaches_the_app_intact(run_server, use_chunked):
    """A 200 KiB body with --body-spill 1 (KiB) goes through a temporary file;
    the app's sha256 of wsgi.input equals the sent body's."""
    srv = run_server("basic", "--body-spill", "1")
    body = os.urandom(200 * 1024)
    got = post(srv, "/sha256", body=body, use_chunked=use_chunked)
    assert got["length"] == len(body)
    assert got["sha256"] == hashlib.sha256(body).hexdigest()


def test_many_spilled_bodies_in_a_row(run_server):
    """Repeated spilled uploads on one connection each arrive intact (temp
    files are not mixed up or reused while live)."""
    srv = run_server("basic", "--body-spill", "1")
    with srv.connect(timeout=10) as c:
        for i in range(5):
            body = os.urandom(20 * 1024 + i)
            c.request("POST", "/sha256", body=body)
            got = json.loads(c.read_response(timeout=10).body)
            assert got == {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}


def test_large_body_under_default_limits(run_server):
    """A 5 MiB upload (over the default 1 MiB spill threshold, under the
    default 50 MiB body limit) arrives intact."""
    srv = run_server("basic")
    body = os.urandom(5 * 1024 * 1024)
    got = post(srv, "/sha256", body=body)
    assert got == {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}
