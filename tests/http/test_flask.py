"""A real Flask application served by iodine-py."""

from __future__ import annotations

import json
import subprocess
import urllib.parse

import pytest

from tests.rawhttp import chunked
from tests.server import PYTHON, base_env


def _flask_importable() -> bool:
    try:
        r = subprocess.run([PYTHON, "-c", "import flask"], env=base_env(),
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


pytestmark = pytest.mark.skipif(
    not _flask_importable(),
    reason=f"flask is not importable by the server's python ({PYTHON}); "
           "add flask to the project's test extras")


@pytest.fixture
def srv(run_server):
    return run_server("flask_app", "-t", "2")


def test_route_returns_text(srv):
    resp = srv.get("/")
    assert resp.status == 200
    assert resp.body == b"flask index"
    assert resp.header("Content-Type").startswith("text/html")


def test_route_with_converter_and_query_returns_json(srv):
    resp = srv.get("/items/42?q=hello%20there")
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/json"
    assert json.loads(resp.body) == {"id": 42, "name": "item-42", "q": "hello there"}


def test_json_post(srv):
    payload = {"a": [1, 2, 3], "b": "caf\u00e9", "c": {"nested": True}}
    body = json.dumps(payload).encode()
    resp = srv.request("POST", "/json", [("Content-Type", "application/json")], body)
    assert resp.status == 200
    assert json.loads(resp.body) == {"received": payload, "count": 3}


def test_form_post(srv):
    form = [("name", "Ada Lovelace"), ("lang", "en"), ("lang", "fr"), ("sym", "a&b=c")]
    body = urllib.parse.urlencode(form).encode()
    resp = srv.request("POST", "/form", [("Content-Type", "application/x-www-form-urlencoded")],
                       body)
    assert resp.status == 200
    assert json.loads(resp.body) == {"form": {"name": ["Ada Lovelace"], "lang": ["en", "fr"],
                                              "sym": ["a&b=c"]}}


def test_multipart_upload(srv):
    data = bytes(range(256)) * 400
    boundary = "----iodine-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"blob.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    resp = srv.request("POST", "/upload",
                       [("Content-Type", f"multipart/form-data; boundary={boundary}")], body,
                       timeout=10)
    assert resp.status == 200
    assert json.loads(resp.body) == {"filename": "blob.bin", "size": len(data)}


def test_chunked_json_post(srv):
    """Werkzeug reads a chunked body through wsgi.input (no CONTENT_LENGTH);
    the server must present it (and signal EOF) correctly."""
    payload = {"chunked": list(range(50))}
    body = json.dumps(payload).encode()
    with srv.connect() as c:
        c.request("POST", "/json", [("Content-Type", "application/json"),
                                    ("Transfer-Encoding", "chunked")],
                  chunked([body[:10], body[10:]]))
        resp = c.read_response()
    assert resp.status == 200
    assert json.loads(resp.body)["received"] == payload


def test_streamed_response(srv):
    pytest.importorskip("flask")  # to import the app module here too
    from tests.apps.flask_app import STREAM_PARTS
    with srv.connect() as c:
        c.request("GET", "/stream")
        resp = c.read_response()
    assert resp.status == 200
    assert resp.chunked
    assert resp.body == "".join(STREAM_PARTS).encode()


def test_404_from_flask(srv):
    resp = srv.get("/no/such/route")
    assert resp.status == 404
    srv.assert_alive()
