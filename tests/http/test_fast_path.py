"""The request hand-off through the C API (iodine_py/_fast.c: the environ
built in C, one call per event instead of three cffi calls; the app called
and the common answer sent from C) keeps every guarantee the cffi path
gave: pipelined answers in request order, one event at a time per
connection (also with -t 4), request bodies, streaming, close() called once
per iterable, the environ the blob describes, start_response's checks, and
what Python answered for everything but the common case."""
from __future__ import annotations

import json

import pytest

from tests.rawhttp import build_request

PIPELINED = 40
CONNS = 4


def _stats(srv):
    return json.loads(srv.get("/stats").body)


@pytest.mark.parametrize("flags", [["-t", "1"], ["-t", "4"], ["-t", "1", "-v"]],
                         ids=["t1", "t4", "t1-access-log"])
def test_pipelined_requests_with_and_without_bodies_answer_in_order_one_at_a_time(
        run_server, flags):
    """160 pipelined requests on 4 connections: more than a loop turn's
    budget (64), so the C loop's budget hand-back to Python is crossed;
    -v (the access log) sends every request through Python instead."""
    srv = run_server("fastpath", *flags)
    conns = [srv.connect(timeout=20) for _ in range(CONNS)]
    closing = 0
    try:
        for c in conns:
            batch = b""
            for i in range(PIPELINED):
                # every third has a body (the request then reaches Python
                # with its http_req), every fifth returns an iterable with
                # close()
                path = "/closing" if i % 5 == 0 else "/seq"
                body = b"body-%d" % i if i % 3 == 0 else b""
                method = "POST" if body else "GET"
                batch += build_request(method, f"{path}?i={i}", None, body, "HTTP/1.1",
                                       c.authority)
            closing += (PIPELINED + 4) // 5
            c.send(batch)  # all of them in one write
        for c in conns:
            port = str(c.sock.getsockname()[1])
            for i in range(PIPELINED):
                r = c.read_response(timeout=30)
                want = f"{port} {i} " + (f"body-{i}" if i % 3 == 0 else "")
                assert r.status == 200 and r.body.decode() == want, (i, r)
    finally:
        for c in conns:
            c.close()
    stats = _stats(srv)
    assert stats["overlaps"] == 0, stats
    assert stats["closes"] == closing, stats


def test_environ_built_in_c_matches_the_request(run_server):
    srv = run_server("fastpath")
    with srv.connect(timeout=10) as c:
        c.send(build_request(
            "GET", "/environ?a=1&b=%20", [
                ("X-Repeat", "one"), ("X-Repeat", "two"), ("Cookie", "a=1"),
                ("Cookie", "b=2"), ("X-Empty", ""), ("X-Latin", "caf\xe9"),
            ], b"", "HTTP/1.1", c.authority))
        r = c.read_response(timeout=10)
        port = c.sock.getsockname()[1]
    env = json.loads(r.body)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["REQUEST_URI"] == "/environ?a=1&b=%20"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&b=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(port)
    assert env["HTTP_X_REPEAT"] == "one, two"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_X_EMPTY"] == ""
    assert env["HTTP_X_LATIN"] == "caf\xe9"
    assert env["SCRIPT_NAME"] == "" and env["wsgi.url_scheme"] == "http"
    assert env["input"] == ""  # the shared empty wsgi.input
    assert "CONTENT_LENGTH" not in env


def test_body_reaches_the_app_and_environ_says_its_length(run_server):
    srv = run_server("fastpath")
    body = bytes(range(256)) * 40
    r = srv.request("POST", "/environ", body=body)
    env = json.loads(r.body)
    assert env["CONTENT_LENGTH"] == str(len(body))
    assert env["input"].encode("latin-1") == body


def test_streamed_chunks_arrive_in_order_and_pipelined_answers_follow(run_server):
    srv = run_server("fastpath")
    with srv.connect(timeout=10) as c:
        c.send(build_request("GET", "/stream?n=50", None, b"", "HTTP/1.1", c.authority)
               + build_request("GET", "/seq?i=7", None, b"", "HTTP/1.1", c.authority))
        r = c.read_response(timeout=10)
        assert r.body == b"".join(b"chunk-%d;" % i for i in range(50))
        r2 = c.read_response(timeout=10)
        assert r2.body.decode().split(" ")[1] == "7"


def test_start_response_made_in_c_checks_types_like_the_python_one(run_server):
    srv = run_server("fastpath")
    r = srv.get("/types")
    assert r.status == 200
    assert r.body == b"status must be str, not bytes|headers must be a list, not tuple"


@pytest.mark.parametrize("path", ["/bad-latin", "/twice"])
def test_answers_c_does_not_send_still_fail_as_500_and_log(run_server, path):
    srv = run_server("fastpath")
    srv.allow_tracebacks = True  # the app's error is logged, as it must be
    mark = srv.stderr_mark()
    r = srv.get(path)
    assert r.status == 500 and b"never" not in r.body
    srv.wait_for_stderr("Traceback", timeout=10, start=mark)
    assert srv.get("/hello").body == b"hello"  # the server goes on


def test_common_answer_to_head_and_to_connection_close(run_server):
    srv = run_server("fastpath", "-t", "1")
    with srv.connect(timeout=10) as c:
        c.request("HEAD", "/hello")
        r = c.read_response("HEAD", timeout=10)
        assert r.status == 200 and r.header("Content-Length") == "5" and r.body == b""
        c.request("GET", "/hello", headers=[("Connection", "close")])
        r = c.read_response(timeout=10)
        assert r.body == b"hello" and r.has_token("Connection", "close")
        c.sock.settimeout(10)
        assert c.sock.recv(1) == b""  # closed after the answer
