"""Upgrading a request: the app's view (rack.upgrade? / rack.upgrade) and
the opening handshake on the wire (RFC 6455 section 4).

App: tests/apps/ws_upgrade.py.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.websocket import wsraw
from tests.websocket.wsraw import RFC_SAMPLE_ACCEPT, RFC_SAMPLE_KEY, accept_for


@pytest.fixture
def srv(run_server):
    return run_server("ws_upgrade")


def app_calls(srv) -> dict:
    resp = srv.get("/calls")
    assert resp.status == 200
    return json.loads(resp.body)


def read_sse_event(conn, timeout=5.0) -> bytes:
    """Bytes of one event-stream event (up to and including the blank line)."""
    deadline = time.monotonic() + timeout
    while b"\n\n" not in conn.buf:
        if not conn._fill(deadline):
            raise AssertionError(f"stream ended before an event: {bytes(conn.buf)!r}")
    i = conn.buf.index(b"\n\n") + 2
    event = bytes(conn.buf[:i])
    del conn.buf[:i]
    return event


# -- what the app is told: rack.upgrade? ------------------------------------------

def test_valid_websocket_handshake_sets_rack_upgrade_to_websocket(srv):
    with wsraw.connect_srv(srv, "/detect") as ws:
        assert ws.recv_text() == "rack.upgrade?=websocket"


def test_get_accepting_event_stream_sets_rack_upgrade_to_sse(srv):
    with srv.connect() as c:
        c.request("GET", "/detect", [("Accept", "text/event-stream")])
        resp = c.read_head()
        assert resp.status == 200, resp
        assert read_sse_event(c) == b"data: rack.upgrade?=sse\n\n"


@pytest.mark.parametrize("accept", ["text/html, text/event-stream;q=0.9", "TEXT/EVENT-STREAM"])
def test_event_stream_among_other_media_types_is_still_sse(srv, accept):
    with srv.connect() as c:
        c.request("GET", "/detect", [("Accept", accept)])
        assert c.read_head().status == 200
        assert read_sse_event(c) == b"data: rack.upgrade?=sse\n\n"


@pytest.mark.parametrize("method,headers", [
    ("GET", []),
    ("GET", [("Accept", "text/html")]),
    ("POST", [("Accept", "text/event-stream")]),  # an EventSource only ever GETs
    ("GET", [("Upgrade", "websocket")]),           # no Connection: Upgrade: not a handshake
    ("GET", [("Connection", "Upgrade")]),          # no Upgrade: websocket
], ids=["plain", "accept-html", "post-event-stream", "upgrade-without-connection",
        "connection-without-upgrade"])
def test_other_requests_leave_rack_upgrade_none(srv, method, headers):
    resp = srv.request(method, "/detect", headers)
    assert resp.status == 200, resp
    assert resp.body == b"rack.upgrade?=None"


# -- the app declines: a status >= 300 cancels the upgrade -------------------------------

@pytest.mark.parametrize("status", [403, 404, 302, 500])
def test_status_300_or_more_cancels_websocket_upgrade(srv, status):
    """The app set rack.upgrade but answered >= 300: a normal HTTP response
    with the app's body goes out, no 101, and the callback object is never
    opened."""
    with wsraw.connect_srv(srv, f"/deny?status={status}", expect_status=status) as ws:
        resp = ws.conn.read_body(ws.response)
        assert resp.body == b"denied by app"
        assert resp.header("Upgrade") is None, resp
        assert resp.header("Sec-WebSocket-Accept") is None, resp
        # The connection still speaks HTTP (or was closed cleanly): nothing
        # frame-like follows the response.
        assert not ws.conn.readable(0.2) or ws.conn.read_some(1) == b"", \
            "bytes after a refused upgrade's response"
    assert srv.get("/log/deny").body == b"[]", "on_open ran for a refused upgrade"


def test_status_300_or_more_cancels_sse(srv):
    with srv.connect() as c:
        c.request("GET", "/deny?status=403", [("Accept", "text/event-stream")])
        resp = c.read_response()
    assert resp.status == 403
    assert resp.body == b"denied by app"
    assert "text/event-stream" not in (resp.header("Content-Type") or "")
    assert srv.get("/log/deny").body == b"[]", "on_open ran for a refused SSE upgrade"


def test_refused_upgrade_connection_stays_usable_for_http(srv):
    """After a refused upgrade the connection is an ordinary HTTP/1.1
    connection: if the server keeps it open, the next request is answered."""
    with wsraw.connect_srv(srv, "/deny?status=403", expect_status=403) as ws:
        resp = ws.conn.read_body(ws.response)
        assert resp.body == b"denied by app"
        if resp.has_token("Connection", "close"):
            assert ws.conn.wait_closed(3)
            return
        ws.conn.request("GET", "/detect")
        again = ws.conn.read_response()
        assert again.status == 200 and again.body == b"rack.upgrade?=None"


def test_app_that_does_not_set_rack_upgrade_answers_over_http(srv):
    """A valid handshake the app ignores gets the app's ordinary response
    (4.2.2: the server may answer with any non-101 status)."""
    with wsraw.connect_srv(srv, "/ignore", expect_status=200) as ws:
        resp = ws.conn.read_body(ws.response)
    assert resp.body == b"not upgraded"
    assert resp.header("Sec-WebSocket-Accept") is None


@pytest.mark.parametrize("headers", [[], [("Accept", "text/html")]], ids=["plain", "html"])
def test_rack_upgrade_on_a_request_that_cannot_upgrade_is_ignored(srv, headers):
    resp = srv.get("/upgrade-anyway", headers)
    assert resp.status == 200 and resp.body == b"plain response"
    assert srv.get("/log/deny").body == b"[]", "a handler was opened for a plain request"


# -- the 101 response (RFC 6455 4.2.2) ---------------------------------------------

def test_accept_key_for_rfc_sample_key(srv):
    """RFC 6455 1.3 / 4.2.2 step 5.4: the worked example's key
    dGhlIHNhbXBsZSBub25jZQ== must be answered with s3pPLMBiTxaQ9kYGzzhZRbK+xOo=."""
    with wsraw.connect_srv(srv, "/detect", key=RFC_SAMPLE_KEY) as ws:
        assert ws.response.header("Sec-WebSocket-Accept") == RFC_SAMPLE_ACCEPT
        assert ws.recv_text() == "rack.upgrade?=websocket"


def test_101_head(srv):
    """4.2.2 step 5: 101, Upgrade: websocket, Connection: Upgrade, the
    accept key for this key; a 1xx carries no Content-Length (RFC 9110 8.6)
    nor Transfer-Encoding."""
    key = wsraw.new_key()
    with wsraw.connect_srv(srv, "/protocol", key=key) as ws:
        r = ws.response
        assert r.version == "HTTP/1.1"
        assert r.status == 101
        assert [v.lower() for v in r.header_values("Upgrade")] == ["websocket"]
        assert r.has_token("Connection", "Upgrade")
        assert r.header_values("Sec-WebSocket-Accept") == [accept_for(key)]
        assert r.header("Content-Length") is None, r
        assert r.header("Transfer-Encoding") is None, r


def test_101_carries_the_apps_subprotocol_and_headers(srv):
    """4.2.2 step 5.5: the app's choice of subprotocol goes into the 101,
    as do its other headers."""
    with wsraw.connect_srv(srv, "/protocol",
                           extra_headers=[("Sec-WebSocket-Protocol", "chat.v2, chat.v1")]) as ws:
        assert ws.response.header_values("Sec-WebSocket-Protocol") == ["chat.v2"]
        assert ws.response.header("X-App-Header") == "yes"
        assert ws.recv_text() == "opened"


def test_no_subprotocol_header_when_the_app_chose_none(srv):
    with wsraw.connect_srv(srv, "/protocol") as ws:
        assert ws.response.header("Sec-WebSocket-Protocol") is None
        assert ws.recv_text() == "opened"


def test_the_apps_body_is_never_sent(srv):
    """The bytes right after the 101 head are WebSocket frames: the first
    is on_open's "opened", not the body the app returned."""
    with wsraw.connect_srv(srv, "/protocol") as ws:
        first = ws.recv_frame()
        assert (first.opcode, first.payload) == (wsraw.OP_TEXT, b"opened")
        ws.send_close(1000)
        ws.expect_close(1000)


# -- handshake errors (RFC 6455 4.2.1, 4.4) --------------------------------------------

def _raw_handshake(srv, headers, method="GET"):
    with srv.connect() as c:
        c.request(method, "/detect", headers)
        return c.read_response(method)


@pytest.mark.parametrize("key", [
    None,                              # missing
    "",                                # empty
    "c2hvcnQ=",                        # base64 of 5 bytes
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",    # 28 chars: 21 bytes
    "dGhlIHNhbXBsZSBub25jZQ",          # the sample key without its padding
    "dGhlIHNhbXBsZSBub25jZQ!!",        # not base64
    "dGhlIHNhbXBsZSBub25jZR==",        # non-canonical: padding bits set
], ids=["missing", "empty", "5-bytes", "21-bytes", "unpadded", "not-base64", "noncanonical"])
def test_missing_or_malformed_key_is_400(srv, key):
    """4.2.1 item 5: the key must decode to 16 bytes; otherwise 400 and
    the app is not consulted."""
    resp = _raw_handshake(srv, wsraw.handshake_headers(key=key))
    assert resp.status == 400, resp
    assert resp.header("Sec-WebSocket-Accept") is None
    assert app_calls(srv).get("/detect", 0) == 0
    assert srv.get("/detect").body == b"rack.upgrade?=None"


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8", ""],
                         ids=["8", "12", "14", "list", "empty"])
def test_unsupported_version_is_426_naming_13(srv, version):
    """4.4: a version the server does not speak gets 426 Upgrade Required
    with Sec-WebSocket-Version listing the versions it does (13)."""
    resp = _raw_handshake(srv, wsraw.handshake_headers(key=wsraw.new_key(), version=version))
    assert resp.status == 426, resp
    assert resp.header_values("Sec-WebSocket-Version") == ["13"], resp
    assert app_calls(srv).get("/detect", 0) == 0


def test_upgrade_without_any_version_is_426(srv):
    """4.4 / SPEC-WebSocket.md 2: `Upgrade: websocket` without any
    Sec-WebSocket-Version is a handshake with the version missing, answered
    426 naming 13 (the spec's choice), not handed to the app as a plain
    request: a client that asks for a WebSocket learns which version to
    speak instead of getting an unrelated 200."""
    resp = _raw_handshake(srv, wsraw.handshake_headers(key=wsraw.new_key(), version=None))
    assert resp.status == 426, resp
    assert resp.header_values("Sec-WebSocket-Version") == ["13"], resp
    assert resp.header("Sec-WebSocket-Accept") is None
    assert app_calls(srv).get("/detect", 0) == 0


def test_post_with_upgrade_is_400(srv):
    """4.1 item 2 / 4.2.1 item 1: the handshake must be a GET."""
    resp = _raw_handshake(srv, wsraw.handshake_headers(key=wsraw.new_key()), method="POST")
    assert resp.status == 400, resp
    assert resp.header("Sec-WebSocket-Accept") is None
    assert app_calls(srv).get("/detect", 0) == 0


@pytest.mark.parametrize("name", ["Sec-WebSocket-Key", "Sec-WebSocket-Version"])
def test_duplicated_key_or_version_is_refused(srv, name):
    """11.3.1 / 11.3.5: Sec-WebSocket-Key and Sec-WebSocket-Version MUST
    NOT appear more than once in a request. Combined as HTTP combines
    repeated fields, the values ("k1, k2" / "13, 13") are neither a 16-byte
    key nor the version 13, so the handshake must not succeed."""
    key = wsraw.new_key()
    headers = wsraw.handshake_headers(key=key)
    dup = wsraw.new_key() if name == "Sec-WebSocket-Key" else "13"
    headers.append((name, dup))
    resp = _raw_handshake(srv, headers)
    # a repeated field is malformed (400), whatever its values say; in
    # particular a repeated version is not an unsupported one (426)
    assert resp.status == 400, f"a handshake with two {name} fields got {resp!r}"
    assert resp.header("Sec-WebSocket-Accept") is None
    assert app_calls(srv).get("/detect", 0) == 0


@pytest.mark.parametrize("upgrade,connection", [
    ("WebSocket", "Upgrade"),               # 4.2.1: the token is case-insensitive
    ("websocket", "keep-alive, Upgrade"),   # Connection is a token list
    ("websocket", "upgrade"),
])
def test_handshake_header_tokens_are_matched_case_insensitively_in_lists(srv, upgrade,
                                                                         connection):
    key = wsraw.new_key()
    with srv.connect() as c:
        c.request("GET", "/detect", [("Upgrade", upgrade), ("Connection", connection),
                                     ("Sec-WebSocket-Key", key),
                                     ("Sec-WebSocket-Version", "13")])
        resp = c.read_head()
        assert resp.status == 101, resp
        assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
        ws = wsraw.RawWebSocket(c, resp, key)
        assert ws.recv_text() == "rack.upgrade?=websocket"


def test_server_serves_after_handshake_errors(srv):
    for headers in (wsraw.handshake_headers(key=None),
                    wsraw.handshake_headers(key=wsraw.new_key(), version="8")):
        assert _raw_handshake(srv, headers).status in (400, 426)
    with wsraw.connect_srv(srv, "/detect") as ws:
        assert ws.recv_text() == "rack.upgrade?=websocket"
