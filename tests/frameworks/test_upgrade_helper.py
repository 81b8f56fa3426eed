"""iodine_py.upgrade / upgrade_type in process, without a server: what
they store in the environ and what they return for each kind of request
object and response."""

from __future__ import annotations

import types

import pytest

import iodine_py
from iodine_py.upgrade import UPGRADE_KEY, UpgradeResponse, environ_of


class Handler:
    pass


def env(kind=None):
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "rack.upgrade?": kind}


def call(app, environ):
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


@pytest.mark.parametrize("kind,status", [("websocket", "101 Switching Protocols"),
                                         ("sse", "200 OK")])
def test_accepts_each_kind(kind, status):
    e = env(kind)
    h = Handler()
    resp = iodine_py.upgrade(e, h)
    assert e[UPGRADE_KEY] is h
    assert isinstance(resp, UpgradeResponse)
    assert call(resp, e) == (status, [], b"")
    assert resp.status_code == int(status[:3])


def test_refuses_a_plain_request():
    e = env(None)
    resp = iodine_py.upgrade(e, Handler())
    assert UPGRADE_KEY not in e
    status, headers, body = call(resp, e)
    assert status == "400 Bad Request"
    assert ("Content-Type", "text/plain; charset=utf-8") in headers
    assert ("Content-Length", str(len(body))) in headers
    assert body == (b"This address expects a WebSocket or an EventSource "
                    b"(text/event-stream) request.\n")


def test_refuses_a_kind_not_listed_in_protocols():
    e = env("sse")
    resp = iodine_py.upgrade(e, Handler(), protocols=("websocket",))
    assert UPGRADE_KEY not in e
    assert resp.status == "400 Bad Request"
    e = env("websocket")
    assert iodine_py.upgrade(e, Handler, protocols=["websocket"]).status_code == 101
    assert e[UPGRADE_KEY] is Handler  # a class is stored as is (the server instantiates it)


def test_without_the_upgrade_extension_at_all():
    e = {"REQUEST_METHOD": "GET"}  # another server: no rack.upgrade? key
    assert iodine_py.upgrade_type(e) is None
    assert iodine_py.upgrade(e, Handler()).status_code == 400


def test_extra_headers():
    e = env("websocket")
    resp = iodine_py.upgrade(e, Handler(), headers=[("Sec-WebSocket-Protocol", "chat")])
    assert call(resp, e)[1] == [("Sec-WebSocket-Protocol", "chat")]


def test_upgrade_type_and_request_objects():
    e = env("sse")
    flask_like = types.SimpleNamespace(environ=e)
    falcon_like = types.SimpleNamespace(env=e)
    for req in (e, flask_like, falcon_like):
        assert iodine_py.upgrade_type(req) == "sse"
        assert environ_of(req) is e
    assert iodine_py.upgrade_type(env("bogus")) is None
    with pytest.raises(TypeError):
        iodine_py.upgrade_type(object())
    h = Handler()
    iodine_py.upgrade(falcon_like, h)
    assert e[UPGRADE_KEY] is h


def test_werkzeug_response_passed_in():
    wz = pytest.importorskip("werkzeug.wrappers")
    e = env("websocket")
    resp = wz.Response()
    assert iodine_py.upgrade(e, Handler(), resp) is resp
    assert resp.status_code == 101
    refused = wz.Response()
    iodine_py.upgrade(env(None), Handler(), refused, headers=[("X-Why", "no")])
    assert refused.status_code == 400
    assert refused.get_data().startswith(b"This address expects")
    assert refused.headers["X-Why"] == "no"


def test_falcon_response_passed_in():
    falcon = pytest.importorskip("falcon")
    e = env("sse")
    resp = falcon.Response()
    assert iodine_py.upgrade(types.SimpleNamespace(env=e), Handler(), resp) is resp
    assert resp.status_code == 200
    refused = falcon.Response()
    iodine_py.upgrade(types.SimpleNamespace(env=env(None)), Handler(), refused,
                      protocols=("sse",))
    assert refused.status_code == 400
    assert refused.text == "This address expects an EventSource (text/event-stream) request.\n"
    assert refused.content_type.startswith("text/plain")
