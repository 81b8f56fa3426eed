"""Server-Sent Events: the response head, the event-stream format (HTML
Living Standard, "Server-sent events", 9.2.5 "Parsing an event stream" and
9.2.6 "Interpreting an event stream"), keep-alive comments, and the end of
a stream from either side.

App: tests/apps/sse_events.py.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
import pytest

from tests.rawhttp import Connection

SSE_ACCEPT = [("Accept", "text/event-stream")]


# -- a client-side event-stream parser (9.2.6), independent of the server -------------------

def parse_stream(data: bytes) -> tuple[list[dict], list[str]]:
    """(events, comments). Each event is {"type", "data", "id"} as an
    EventSource would dispatch it ("id" being the last event ID then)."""
    text = data.decode("utf-8")
    assert not text.startswith("\ufeff"), "a BOM is allowed but this server never sends one"
    lines = re.split(r"\r\n|\r|\n", text)
    lines.pop()  # what follows the last line break is an incomplete line
    events, comments = [], []
    data_buf, type_buf, last_id = "", "", ""
    for line in lines:
        if line == "":
            if data_buf == "":
                type_buf = ""
                continue
            if data_buf.endswith("\n"):
                data_buf = data_buf[:-1]
            events.append({"type": type_buf or "message", "data": data_buf, "id": last_id})
            data_buf, type_buf = "", ""
            continue
        if line.startswith(":"):
            comments.append(line[1:])
            continue
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            type_buf = value
        elif field == "data":
            data_buf += value + "\n"
        elif field == "id":
            if "\0" not in value:
                last_id = value
        # "retry" and unknown fields are ignored here
    return events, comments


def open_stream(srv, path: str, headers=(), timeout: float = 5.0) -> tuple[Connection, object]:
    c = srv.connect(timeout=timeout)
    c.request("GET", path, SSE_ACCEPT + list(headers))
    resp = c.read_head()
    return c, resp


def read_until(c: Connection, marker: bytes, timeout: float = 5.0) -> bytes:
    """Everything up to and including `marker` (a whole event's bytes)."""
    deadline = time.monotonic() + timeout
    while marker not in c.buf:
        if not c._fill(deadline):
            raise AssertionError(f"stream ended before {marker!r}; got {bytes(c.buf)!r}")
    i = c.buf.index(marker) + len(marker)
    data = bytes(c.buf[:i])
    del c.buf[:i]
    return data


def read_events(c: Connection, n: int, timeout: float = 5.0) -> list[dict]:
    """The next n dispatched events (comment blocks skipped). This server
    ends every event and comment block with a blank line written as LF LF."""
    deadline = time.monotonic() + timeout
    events: list[dict] = []
    while len(events) < n:
        block = read_until(c, b"\n\n", timeout=max(0.0, deadline - time.monotonic()))
        events += parse_stream(block)[0]
    return events


def wait_log(srv, name: str, event: str, timeout: float = 5.0, start: int = 0) -> None:
    srv.wait_for_stderr(re.compile(rf"^sse-log {re.escape(name)} {event}$"), timeout=timeout,
                        start=start)


@pytest.fixture
def srv(run_server):
    return run_server("sse_events")


# -- the response head -------------------------------------------------------------------------

def test_response_head(srv):
    """200, Content-Type: text/event-stream (9.2.5: the only type an
    EventSource accepts), Cache-Control: no-cache, and no Content-Length
    (the stream has no known end)."""
    c, resp = open_stream(srv, "/basic")
    with c:
        assert resp.status == 200, resp
        assert resp.header_values("Content-Type") == ["text/event-stream"], resp
        assert resp.has_token("Cache-Control", "no-cache"), resp
        assert resp.header("Content-Length") is None, resp
        # The body is the raw event stream (not chunk-framed) ...
        assert resp.header("Transfer-Encoding") is None, resp
        assert read_until(c, b"\n\n") == b"data: hello\n\n"


def test_app_headers_are_added_but_cannot_change_the_content_type(srv):
    c, resp = open_stream(srv, "/headers")
    with c:
        assert resp.status == 200
        assert resp.header("X-App") == "yes"
        assert resp.header_values("Content-Type") == ["text/event-stream"], resp
        assert read_until(c, b"\n\n") == b"data: h\n\n"


# -- the event-stream format ---------------------------------------------------------------------

@pytest.fixture
def basic_stream(srv):
    c, resp = open_stream(srv, "/basic")
    with c:
        assert resp.status == 200
        raw = read_until(c, b"data: end\n\n")
    return raw


def test_raw_bytes_of_data_lines(basic_stream):
    """write(data) is `data: <line>` per line of data, then a blank line;
    LF, CRLF and CR all end a line of data, so each splits it."""
    raw = basic_stream
    assert raw.startswith(b"data: hello\n\n"
                          b"data: line1\ndata: line2\n\n"
                          b"data: a\ndata: b\n\n"
                          b"data: c\ndata: d\n\n"), raw


def test_events_as_an_event_source_sees_them(basic_stream):
    events, comments = parse_stream(basic_stream)
    assert comments == []
    assert events == [
        {"type": "message", "data": "hello", "id": ""},
        {"type": "message", "data": "line1\nline2", "id": ""},
        {"type": "message", "data": "a\nb", "id": ""},      # CRLF arrives as LF
        {"type": "message", "data": "c\nd", "id": ""},      # CR arrives as LF
        {"type": "greet", "data": "payload", "id": ""},     # event=
        {"type": "message", "data": "x", "id": "7"},        # id= (an int)
        {"type": "e", "data": "both", "id": "i-1"},         # both
        {"type": "message", "data": "", "id": "i-1"},       # empty data is an event
        {"type": "message", "data": "trailing\n", "id": "i-1"},
        {"type": "message", "data": "bytes-data", "id": "i-1"},
        {"type": "message", "data": "unicode \u2603", "id": "i-1"},
        {"type": "end", "data": "end", "id": "i-1"},
    ]


def test_event_and_id_fields_are_single_lines(basic_stream):
    lines = basic_stream.split(b"\n")
    assert b"event: greet" in lines
    assert b"id: 7" in lines
    assert b"event: e" in lines and b"id: i-1" in lines


def test_line_breaks_in_event_or_id_raise_value_error(srv):
    """An event name or id with a line break would inject fields (or
    events) into the stream: write() refuses it with ValueError, and
    nothing of the refused event is sent."""
    c, resp = open_stream(srv, "/bad")
    with c:
        raw = read_until(c, b"data: end\n\n")
    events, _ = parse_stream(raw)
    assert json.loads(events[0]["data"]) == {case: "ValueError" for case in (
        "event-cr", "event-crlf", "event-lf", "id-cr", "id-crlf", "id-lf")}
    assert [e["type"] for e in events] == ["message", "end"], \
        f"part of a refused event reached the stream: {raw!r}"
    assert b"data: data" not in raw


# -- the request side ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["42", "evt-7", "abc def"])
def test_last_event_id_header_reaches_env(srv, value):
    """An EventSource reconnecting sends Last-Event-ID (9.2.4); the app
    finds it in environ['HTTP_LAST_EVENT_ID']."""
    c, resp = open_stream(srv, "/lastid", headers=[("Last-Event-ID", value)])
    with c:
        assert read_until(c, b"\n\n") == f"data: {value}\n\n".encode()


def test_no_last_event_id_header(srv):
    c, resp = open_stream(srv, "/lastid")
    with c:
        assert read_until(c, b"\n\n") == b"data: <none>\n\n"


# -- keep-alive and timers ------------------------------------------------------------------------

def test_idle_stream_gets_keep_alive_comments(run_server):
    """-ping 1: an idle stream gets a comment line (ignored by EventSource,
    9.2.6) about every second, so proxies keep it open."""
    srv = run_server("sse_events", "-ping", "1")
    c, resp = open_stream(srv, "/idle")
    with c:
        assert resp.status == 200
        start = time.monotonic()
        first = read_until(c, b"\n\n", timeout=5)
        t1 = time.monotonic() - start
        second = read_until(c, b"\n\n", timeout=5)
        t2 = time.monotonic() - start
    for chunk in (first, second):
        events, comments = parse_stream(chunk)
        assert events == [] and len(comments) == 1, chunk
    assert 0.9 <= t1 < 5, f"first keep-alive after {t1:.2f}s with -ping 1"
    assert t2 - t1 >= 0.8, f"keep-alives {t2 - t1:.2f}s apart with -ping 1"


def test_timer_writes_reach_the_stream(srv):
    c, resp = open_stream(srv, "/timer")
    with c:
        start = time.monotonic()
        events = read_events(c, 2)
        took = time.monotonic() - start
    assert [e["data"] for e in events] == ["first", "second"]
    assert took >= 0.15, f"the 200 ms timer fired after {took:.3f}s"


# -- the end of a stream ----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["fin", "rst"])
def test_on_close_when_the_client_disconnects(srv, how):
    mark = srv.stderr_mark()
    c, resp = open_stream(srv, "/timer?name=gone-" + how)
    assert read_events(c, 1)[0]["data"] == "first"
    wait_log(srv, f"gone-{how}", "open", start=mark)
    if how == "rst":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    wait_log(srv, f"gone-{how}", "close", start=mark)
    assert [line for line in srv.stderr_lines[mark:] if f"gone-{how} close" in line] == \
        [f"sse-log gone-{how} close"], "on_close did not run exactly once"


def test_close_from_the_server_ends_the_stream(srv):
    """client.close(): what was written first is delivered, then the server
    closes the connection (the event stream's end), and on_close runs."""
    mark = srv.stderr_mark()
    c, resp = open_stream(srv, "/close?name=srv-close")
    with c:
        assert resp.status == 200
        rest = c.read_until_close(timeout=5)
    events, _ = parse_stream(rest)
    assert [e["data"] for e in events] == ["bye"]
    wait_log(srv, "srv-close", "close", start=mark)


def test_many_streams_at_once(srv):
    conns = []
    try:
        for _ in range(20):
            c, resp = open_stream(srv, "/timer")
            assert resp.status == 200
            conns.append(c)
        for c in conns:
            assert [e["data"] for e in read_events(c, 2)] == ["first", "second"]
    finally:
        for c in conns:
            c.close()
