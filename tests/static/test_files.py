"""Files under the public folder (-www DIR) are answered from C before the
application: MIME types, folders and index.html, HEAD, which methods and
requests are the app's, keep-alive, pipelining order, and a large file that
must stream (sendfile) rather than pass through memory."""

from __future__ import annotations

import hashlib
import socket

import pytest

from tests.rawhttp import Connection
from tests.static.conftest import BIG_SIZE, DIGITS, HELLO, MIME_TYPES


def app_body(method: str, path: str) -> bytes:
    return f"app {method} {path}".encode()


# -- what is served, and as what ------------------------------------------------

@pytest.mark.parametrize("ext", sorted(MIME_TYPES))
def test_mime_type_by_extension(static_srv, ext):
    resp = static_srv.get(f"/a.{ext}")
    assert resp.status == 200
    assert resp.header("Content-Type") == MIME_TYPES[ext]
    assert resp.body == f"a.{ext}".encode()


@pytest.mark.parametrize("name", ["noext", "a.unknownext"])
def test_unknown_type_is_octet_stream(static_srv, name):
    resp = static_srv.get(f"/{name}")
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/octet-stream"


def test_file_with_validators_and_exact_length(static_srv):
    resp = static_srv.get("/hello.txt")
    assert resp.status == 200
    assert resp.body == HELLO
    assert resp.header("Content-Length") == str(len(HELLO))
    assert resp.header("Accept-Ranges") == "bytes"
    assert resp.header("ETag").startswith('"') and resp.header("ETag").endswith('"')
    assert resp.header("Last-Modified").endswith(" GMT")
    assert resp.header("Date") and resp.header("Server") == "iodine-py"
    assert resp.header("Vary") is None  # no .gz sibling


def test_query_string_is_ignored_for_lookup(static_srv):
    resp = static_srv.get("/hello.txt?v=3&x=../../outside")
    assert resp.status == 200 and resp.body == HELLO


def test_percent_encoded_names_are_decoded(static_srv):
    resp = static_srv.get("/%68ello.txt")
    assert resp.status == 200 and resp.body == HELLO


def test_symlink_inside_the_root_is_followed(static_srv):
    resp = static_srv.get("/link-in")
    assert resp.status == 200 and resp.body == HELLO


def test_missing_file_goes_to_the_app(static_srv):
    resp = static_srv.get("/no-such-file.txt")
    assert resp.status == 200
    assert resp.body == app_body("GET", "/no-such-file.txt")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_on_a_file_go_to_the_app(static_srv, method):
    resp = static_srv.request(method, "/hello.txt")
    assert resp.status == 200
    assert resp.body == app_body(method, "/hello.txt")


def test_get_with_a_body_goes_to_the_app(static_srv):
    resp = static_srv.request("GET", "/hello.txt", body=b"a body")
    assert resp.body == app_body("GET", "/hello.txt")


def test_fifo_is_404_and_never_blocks(static_srv):
    resp = static_srv.get("/fifo", timeout=3)
    assert resp.status == 404
    assert static_srv.get("/hello.txt").body == HELLO


# -- folders ------------------------------------------------------------------------------

def test_root_serves_index_html(static_srv):
    resp = static_srv.get("/")
    assert resp.status == 200
    assert resp.body == b"<h1>root index</h1>"
    assert resp.header("Content-Type") == "text/html; charset=utf-8"


def test_folder_with_slash_serves_its_index(static_srv):
    resp = static_srv.get("/docs/")
    assert resp.status == 200 and resp.body == b"docs index"


@pytest.mark.parametrize("target,location", [
    ("/docs", "/docs/"),
    ("/docs?x=1&y=2", "/docs/?x=1&y=2"),
    ("//docs", "/docs/"),  # never a protocol-relative Location
])
def test_folder_without_slash_redirects(static_srv, target, location):
    with static_srv.connect() as c:
        c.request("GET", target)
        resp = c.read_response()
        assert resp.status == 301
        assert resp.header("Location") == location
        assert resp.header("Content-Length") == "0"
        c.request("GET", location)  # keep-alive goes on
        assert c.read_response().body == b"docs index"


def test_folder_without_index_goes_to_the_app(static_srv):
    assert static_srv.get("/empty/").body == app_body("GET", "/empty/")
    assert static_srv.get("/empty").body == app_body("GET", "/empty")


def test_file_in_a_subfolder(static_srv):
    assert static_srv.get("/sub/page.txt").body == b"a page in sub"


# -- HEAD, keep-alive, connection handling ------------------------------------------------

def test_head_sends_headers_only_and_the_connection_goes_on(static_srv):
    with static_srv.connect() as c:
        c.request("HEAD", "/hello.txt")
        head = c.read_response("HEAD")
        assert head.status == 200
        assert head.header("Content-Length") == str(len(HELLO))
        assert head.header("ETag")
        # a stray body byte would corrupt the next response's status line
        c.request("GET", "/digits.txt")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == DIGITS
        assert not c.readable(0.2), "bytes after the response"


def test_keep_alive_across_static_and_app_requests(static_srv):
    with static_srv.connect() as c:
        for i in range(5):
            c.request("GET", "/hello.txt")
            resp = c.read_response()
            assert resp.body == HELLO and resp.header("Connection") is None
            c.request("GET", f"/dyn{i}")
            assert c.read_response().body == app_body("GET", f"/dyn{i}")


def test_connection_close_is_honoured(static_srv):
    with static_srv.connect() as c:
        c.request("GET", "/hello.txt", [("Connection", "close")])
        resp = c.read_response()
        assert resp.body == HELLO
        assert resp.header("Connection") == "close"
        assert c.wait_closed(3)


def test_http10_closes_unless_keep_alive(static_srv):
    with static_srv.connect() as c:
        c.request("GET", "/hello.txt", version="HTTP/1.0", host=False)
        resp = c.read_response()
        assert resp.body == HELLO and resp.header("Connection") == "close"
        assert c.wait_closed(3)
    with static_srv.connect() as c:
        c.request("GET", "/hello.txt", [("Connection", "keep-alive")], version="HTTP/1.0",
                  host=False)
        resp = c.read_response()
        assert resp.body == HELLO and resp.header("Connection") == "keep-alive"
        c.request("GET", "/digits.txt", [("Connection", "keep-alive")], version="HTTP/1.0",
                  host=False)
        assert c.read_response().body == DIGITS


def test_absolute_form_target(static_srv):
    with static_srv.connect() as c:
        c.request("GET", f"http://{c.authority}/hello.txt")
        assert c.read_response().body == HELLO


# -- pipelining ---------------------------------------------------------------------------

PIPELINE = [
    ("GET", "/hello.txt", [], 200, HELLO),
    ("GET", "/dyn-a", [], 200, b"app GET /dyn-a"),
    ("HEAD", "/hello.txt", [], 200, b""),
    ("GET", "/digits.txt", [("Range", "bytes=2-4")], 206, b"234"),
    ("GET", "/no-such.txt", [], 200, b"app GET /no-such.txt"),
    ("GET", "/docs", [], 301, b""),
    ("POST", "/hello.txt", [], 200, b"app POST /hello.txt"),
    ("GET", "/../outside/secret.txt", [], 403, b"Forbidden\n"),
    ("GET", "/docs/", [], 200, b"docs index"),
    ("GET", "/dyn-b", [], 200, b"app GET /dyn-b"),
]


def _pipeline(srv, rounds: int = 3):
    from tests.rawhttp import build_request

    with srv.connect() as c:
        data = b"".join(build_request(m, t, h, host=c.authority)
                        for _ in range(rounds) for m, t, h, _s, _b in PIPELINE)
        c.send(data)  # all at once: the server reads them in one go
        for _ in range(rounds):
            for method, target, _h, status, body in PIPELINE:
                resp = c.read_response(method, timeout=10)
                assert (resp.status, resp.body) == (status, body), f"{method} {target}"


def test_pipelined_static_and_app_requests_answer_in_order(static_srv):
    _pipeline(static_srv)


def test_pipelined_order_with_app_threads(run_server, site):
    srv = run_server("static_apps", "-t", "4", "-www", str(site.pub))
    _pipeline(srv, rounds=5)


def test_many_pipelined_static_requests_unread_then_read(static_srv):
    """More answers than the queue allows before the server waits for the
    peer (each queued answer holds an open file): all arrive, in order."""
    from tests.rawhttp import build_request

    n = 300
    with static_srv.connect(timeout=10) as c:
        reqs = [build_request("GET", "/digits.txt" if i % 3 else "/hello.txt",
                              [("Range", f"bytes={i % 10}-{i % 10}")] if i % 3 else [],
                              host=c.authority) for i in range(n)]
        c.send(b"".join(reqs))
        for i in range(n):
            resp = c.read_response(timeout=10)
            if i % 3:
                assert resp.status == 206 and resp.body == DIGITS[i % 10:i % 10 + 1], i
            else:
                assert resp.status == 200 and resp.body == HELLO, i


# -- a large file -------------------------------------------------------------------------

def _mem_kib(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


def _read_exact_sock(c: Connection, n: int, h: "hashlib._Hash") -> int:
    got = len(c.buf)
    h.update(bytes(c.buf))
    c.buf.clear()
    while got < n:
        chunk = c.sock.recv(min(1 << 16, n - got))
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
    return got


def test_large_file_streams_with_bounded_memory(static_srv, site):
    """20 MiB, three times back to back on one connection with a small
    receive window: the server's peak RSS must not grow by anything near
    the file size (a body read into memory would add 20 MiB or more)."""
    pid = static_srv.proc.pid
    static_srv.get("/hello.txt")  # warm
    before = _mem_kib(pid)
    want = hashlib.sha256(site.big).hexdigest()
    with static_srv.connect(timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.sock.settimeout(30)
        for _ in range(3):
            c.request("GET", "/big.bin")
        c.request("GET", "/after-big")
        for _ in range(3):
            head = c.read_head(timeout=30)
            assert head.status == 200
            assert head.header("Content-Length") == str(BIG_SIZE)
            assert head.header("Content-Type") == "application/octet-stream"
            h = hashlib.sha256()
            assert _read_exact_sock(c, BIG_SIZE, h) == BIG_SIZE
            assert h.hexdigest() == want
        assert c.read_response(timeout=10).body == b"app GET /after-big"
    after = _mem_kib(pid)
    grew = after["VmHWM"] - before["VmRSS"]
    assert grew < 8 * 1024, f"server peak RSS grew by {grew} KiB for a 20 MiB file ({before} -> {after})"


def test_large_file_range_from_the_middle(static_srv, site):
    start, end = 10_000_000, 10_000_000 + 70_000
    resp = static_srv.get("/big.bin", [("Range", f"bytes={start}-{end - 1}")], timeout=10)
    assert resp.status == 206
    assert resp.header("Content-Range") == f"bytes {start}-{end - 1}/{BIG_SIZE}"
    assert resp.body == site.big[start:end]
