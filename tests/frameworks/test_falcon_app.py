"""Falcon on iodine-py over real sockets (tests/apps/falcon_app.py): a
resource with GET and POST JSON, and an SSE stream accepted from a
responder with iodine_py.upgrade(req, handler, resp), fed by pub/sub."""

from __future__ import annotations

import json

import pytest

from tests.frameworks.helpers import EventStream, json_body, needs

pytestmark = needs("falcon")

JSON = [("Content-Type", "application/json")]


@pytest.fixture
def srv(run_server):
    return run_server("falcon_app", "-t", "2")


def post_note(srv, text):
    resp = srv.request("POST", "/notes", JSON, json.dumps({"text": text}).encode())
    assert resp.status == 201, resp
    return json_body(resp)


def test_get_and_post_json(srv):
    assert json_body(srv.get("/notes")) == {"notes": []}
    assert post_note(srv, "first \u2713") == {"id": 1, "text": "first \u2713"}
    assert post_note(srv, "second") == {"id": 2, "text": "second"}
    assert json_body(srv.get("/notes")) == {"notes": [{"id": 1, "text": "first \u2713"},
                                                       {"id": 2, "text": "second"}]}
    assert json_body(srv.get("/notes/2")) == {"id": 2, "text": "second"}
    assert srv.get("/notes/9").status == 404
    bad = srv.request("POST", "/notes", JSON, b'{"nope": 1}')
    assert bad.status == 400
    assert srv.request("DELETE", "/notes").status == 405


def test_sse_from_a_responder(srv):
    post_note(srv, "before the stream")
    with EventStream(srv, "/feed") as es:
        assert es.head.status == 200
        assert es.head.header("Content-Type") == "text/event-stream"
        backlog = es.next_event()
        assert backlog == {"type": "note", "id": "1",
                           "data": json.dumps({"id": 1, "text": "before the stream"})}
        srv.wait_for_stderr("falcon-app sse-open")
        post_note(srv, "live")
        live = es.next_event()
        assert live["type"] == "note" and live["id"] == "2"
        assert json.loads(live["data"]) == {"id": 2, "text": "live"}
    srv.wait_for_stderr("falcon-app sse-close")


def test_plain_get_of_the_stream_is_refused(srv):
    resp = srv.get("/feed-strict")
    assert resp.status == 400
    assert resp.body == b"This address expects an EventSource (text/event-stream) request.\n"
    assert resp.header("Content-Type").startswith("text/plain")
    with EventStream(srv, "/feed-strict") as es:
        assert es.head.status == 200
        srv.wait_for_stderr("falcon-app sse-open")
        post_note(srv, "strict")
        assert json.loads(es.next_event()["data"]) == {"id": 1, "text": "strict"}
