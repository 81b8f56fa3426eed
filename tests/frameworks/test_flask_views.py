"""Flask on iodine-py over real sockets (tests/apps/flask_views.py): routes,
JSON, a multi-MiB multipart upload, a response streamed while the view's
generator is still running, and WebSocket + SSE accepted from views with
iodine_py.upgrade."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from tests.frameworks.helpers import EventStream, json_body, multipart, needs
from tests.websocket.wsraw import OP_BINARY, connect_srv

pytestmark = needs("flask")


@pytest.fixture
def srv(run_server):
    # -t 2: the streaming test parks one thread inside the generator
    return run_server("flask_views", "-t", "2")


def test_routes(srv):
    resp = srv.get("/")
    assert resp.status == 200
    assert resp.body == b"flask views index"
    assert srv.get("/nowhere").status == 404
    assert srv.request("POST", "/").status == 405


def test_json_out_with_converter_and_repeated_query(srv):
    resp = srv.get("/users/7?fields=a&fields=b%20c")
    assert resp.status == 200
    assert json_body(resp) == {"id": 7, "name": "user-7", "fields": ["a", "b c"]}


def test_json_round_trip(srv):
    payload = {"zeta": [1, 2.5, None], "alpha": "\u00e9\u00e8\u4e2d", "mid": {"deep": True}}
    resp = srv.request("POST", "/echo-json", [("Content-Type", "application/json")],
                       json.dumps(payload).encode())
    assert resp.status == 200
    assert json_body(resp) == {"keys": ["alpha", "mid", "zeta"], "items": 3, "data": payload}


def test_multipart_upload_of_a_few_mib(srv):
    """3 MiB + 700 KiB in two files: over the 1 MiB body spill, so the body
    reaches Flask from a temp file; every byte is checked by hash."""
    big = os.urandom(3 * 1024 * 1024 + 17)
    small = bytes(range(256)) * 2800
    body, ctype = multipart(fields=[("note", "two files")],
                            files=[("big", "big.bin", big), ("small", "small.bin", small)])
    resp = srv.request("POST", "/upload", [("Content-Type", ctype)], body, timeout=20)
    assert resp.status == 200, resp
    got = json_body(resp)
    assert got["form"] == {"note": "two files"}
    assert got["files"] == [
        {"field": "big", "filename": "big.bin", "size": len(big),
         "sha256": hashlib.sha256(big).hexdigest()},
        {"field": "small", "filename": "small.bin", "size": len(small),
         "sha256": hashlib.sha256(small).hexdigest()},
    ]


def test_streamed_chunks_arrive_while_the_generator_is_still_running(srv):
    with srv.connect(timeout=10) as c:
        c.request("GET", "/stream")
        head = c.read_head()
        assert head.status == 200
        assert head.header("Transfer-Encoding") == "chunked"
        assert c.read_chunk() == b"first\n"
        # The generator cannot finish before the release below: the first
        # chunk came while it was still running. It parks on the event right
        # after its first yield was sent (wait for that, bounded).
        deadline = time.monotonic() + 5
        while srv.get("/stream/state").body != b"waiting":
            assert time.monotonic() < deadline, "the generator never reached its wait"
            time.sleep(0.01)
        assert not c.readable(0.2), "more of the body came before the generator went on"
        assert srv.request("POST", "/stream/release").status == 200
        rest = []
        while True:
            chunk = c.read_chunk()
            if chunk is None:
                break
            rest.append(chunk)
    assert b"".join(rest) == b"second\nthird\n"
    assert srv.get("/stream/state").body == b"released"


def test_websocket_from_a_view(srv):
    with connect_srv(srv, "/ws", extra_headers=[("Sec-WebSocket-Protocol", "chat, other")]) as ws:
        assert ws.response.header("Sec-WebSocket-Protocol") == "chat"
        # the view's response headers that contradict an upgrade are dropped
        assert ws.response.header("Content-Type") is None
        assert ws.response.header("Content-Length") is None
        srv.wait_for_stderr("flask-views ws-open")
        ws.send_text("hello from flask")
        assert ws.recv_text() == "hello from flask"
        ws.send_binary(b"\x00\xff" * 1000)
        assert ws.recv_message() == (OP_BINARY, b"\x00\xff" * 1000)
        ws.send_close(1000)
        ws.expect_close(1000)
    srv.wait_for_stderr("flask-views ws-close")
    srv.assert_alive()


def test_sse_from_a_view(srv):
    with EventStream(srv, "/events?name=ada") as es:
        assert es.head.status == 200
        assert es.head.header("Content-Type") == "text/event-stream"
        assert es.next_event() == {"type": "message", "data": "hello ada", "id": "1"}
        assert es.ended(), "the handler closed the stream"
    srv.wait_for_stderr("flask-views sse-close")


def test_plain_get_to_an_upgrade_view_is_refused(srv):
    resp = srv.get("/ws")
    assert resp.status == 400
    assert b"WebSocket" in resp.body
    resp = srv.get("/only-ws", [("Accept", "text/event-stream")])
    assert resp.status == 400
    assert resp.body == b"This address expects a WebSocket request.\n"
    with connect_srv(srv, "/only-ws") as ws:  # a class: one instance per connection
        ws.send_text("x")
        assert ws.recv_text() == "x"


def test_upgrade_type_reports_what_the_client_asked(srv):
    assert json_body(srv.get("/kind")) == {"kind": None}
    # asked for SSE, but the view did not upgrade: a normal response
    resp = srv.get("/kind", [("Accept", "text/event-stream")])
    assert resp.status == 200
    assert json_body(resp) == {"kind": "sse"}
