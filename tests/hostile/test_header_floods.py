"""Header floods and giant header lines: 431 (RFC 6585 5) and a close.

tests/http/test_bad_requests.py checks each limit just past its edge (200
headers, a 9000-byte line); these go far past them, the way an attacker
would, and check the answer comes as soon as a limit is crossed (not when
the head ends, which it may never do) with memory bounded.
"""

from __future__ import annotations

import time

import pytest

from tests.hostile.common import KiB, MiB, RssWatch, drain_until_closed, raw_socket
from tests.rawhttp import ConnectionClosed

# A refused head costs one read buffer of at most -maxhd (32 KiB) and a
# header array; a flood must not make it buffer what it sends past that.
FLOOD_RSS_CEILING = 16 * MiB


def expect_431_and_close(srv, payload: bytes, *, finish: bool = True, timeout: float = 5.0):
    """Send `payload` (with the final CRLF when `finish`), expect 431 within
    `timeout`, then the connection closed."""
    with srv.connect(timeout=timeout) as c:
        t = time.monotonic()
        try:
            c.send(payload + (b"\r\n" if finish else b""))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: the answer is still there to read
        try:
            resp = c.read_response(timeout=timeout)
        except ConnectionClosed as e:
            raise AssertionError(f"closed without an answer; got {e.partial[:200]!r}")
        took = time.monotonic() - t
        assert resp.status == 431, resp
        assert c.wait_closed(3.0), "connection left open after 431"
    return took


@pytest.fixture
def srv(run_server):
    return run_server("hostile_app")


@pytest.mark.parametrize("count", [1000, 5000, 50000])
def test_thousands_of_headers_are_431(srv, count):
    rss = RssWatch(srv)
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-F-%d: v\r\n" % i for i in range(count))
    expect_431_and_close(srv, head)
    rss.assert_growth_under(FLOOD_RSS_CEILING, f"{count} headers ")
    srv.assert_alive()


def test_thousands_of_tiny_headers_under_the_size_limit_are_431_by_count(srv):
    """3000 headers of 5 bytes (15 KiB, under -maxhd 32 KiB): the count
    limit (128) refuses them."""
    expect_431_and_close(srv, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"a: b\r\n" * 3000)
    srv.assert_alive()


def test_header_flood_that_never_ends_is_431_without_waiting(srv):
    """An endless stream of header lines (no blank line ever): 431 as soon
    as the head passes -maxhd, long before the 10 s header timeout."""
    s = raw_socket(srv, timeout=10)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t = time.monotonic()
        sent = 0
        answer = b""
        try:
            while sent < 4 * MiB:
                s.sendall(b"X-Endless: " + b"e" * 80 + b"\r\n")
                sent += 93
                if sent % (93 * 100) == 0:
                    s.settimeout(0.001)
                    try:
                        answer += s.recv(4096)
                    except (TimeoutError, BlockingIOError):
                        pass
                    s.settimeout(10)
                    if answer:
                        break
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed, rest = drain_until_closed(s, 5)
        answer += rest
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert closed
        assert time.monotonic() - t < 5
        assert sent < 1 * MiB, f"the server read {sent} bytes of headers before refusing"
    finally:
        s.close()
    srv.assert_alive()


def test_many_headers_under_raised_limits_are_served_quickly(run_server):
    """20000 headers (about 500 KiB) with --max-headers 30000 and -maxhd
    1024 KiB are legitimate: served, and quickly (a linear pass takes a few
    ms; the bound is 1 s)."""
    srv = run_server("hostile_app", "--max-headers", "30000", "-maxhd", "1024")
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Many-%05d: value-%d\r\n" % (i, i) for i in range(20000)) + b"\r\n"
    with srv.connect(timeout=30) as c:
        t = time.monotonic()
        c.send(head)
        resp = c.read_response(timeout=30)
        took = time.monotonic() - t
    assert resp.status == 200 and resp.body == b"ok"
    assert took < 1.0, f"a 20000-header request took {took:.2f} s"


def test_headers_at_the_default_count_limit_are_served(srv):
    """128 fields (the default cap), all with one name: merged into one
    environ value, answered at once."""
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Same: v\r\n" * 127 + b"\r\n"
    with srv.connect() as c:
        c.send(head)
        assert c.read_response().status == 200


LINE = 64 * KiB


def test_64k_header_line_is_431(srv):
    rss = RssWatch(srv)
    expect_431_and_close(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * LINE + b"\r\n")
    rss.assert_growth_under(FLOOD_RSS_CEILING, "a 64 KiB line ")
    srv.assert_alive()


def test_64k_header_line_never_terminated_is_431_at_once(srv):
    """The line never ends: 431 as soon as it passes the 8 KiB line cap,
    not after a timeout."""
    took = expect_431_and_close(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * LINE,
                                finish=False, timeout=5)
    assert took < 3


def test_64k_header_line_under_a_raised_line_cap_is_still_431_by_head_size(run_server):
    """--max-header-line 128 (KiB) lets the line through the line cap;
    the whole-head cap (-maxhd 32 KiB) still refuses it."""
    srv = run_server("hostile_app", "--max-header-line", "128")
    expect_431_and_close(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * LINE + b"\r\n")
    srv.assert_alive()


def test_64k_header_name_is_431(srv):
    expect_431_and_close(srv, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"N" * LINE + b": v\r\n")
    srv.assert_alive()


def test_64k_request_target_is_refused(srv):
    """A 64 KiB target: 414 (URI Too Long) or 431, then a close."""
    with srv.connect() as c:
        c.send(b"GET /" + b"t" * LINE + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = c.read_response()
        assert resp.status in (414, 431), resp
        assert c.wait_closed(3.0)
    srv.assert_alive()


def test_thousands_of_repeats_are_merged_in_order(run_server):
    """Repeats of one name, interleaved with other names, join in arrival
    order (RFC 9110 5.3), linearly: 4000 repeats of X-Same among 4000 other
    headers."""
    import json
    srv = run_server("basic", "--max-headers", "9000", "-maxhd", "1024")
    lines = []
    for i in range(4000):
        lines.append(b"X-Same: %d\r\n" % i)
        lines.append(b"X-Other-%d: o\r\n" % i)
    head = b"GET /environ HTTP/1.1\r\nHost: x\r\n" + b"".join(lines) + b"\r\n"
    with srv.connect(timeout=30) as c:
        t = time.monotonic()
        c.send(head)
        resp = c.read_response(timeout=30)
        took = time.monotonic() - t
    assert resp.status == 200
    keys = json.loads(resp.body)["keys"]
    assert keys["HTTP_X_SAME"]["value"] == ", ".join(str(i) for i in range(4000))
    assert keys["HTTP_X_OTHER_3999"]["value"] == "o"
    assert took < 5, took
