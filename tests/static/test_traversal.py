"""Nothing outside the public folder is ever served. Targets are sent raw
(tests/rawhttp.py) because HTTP clients would normalise them first.

Refused with 403 by the server itself, never handed to the application:
`..` segments in any spelling, encoded slashes and backslashes, NUL, and
paths that leave the root through a symlink."""

from __future__ import annotations

import pytest

from tests.static.conftest import HELLO, SECRET

TRAVERSALS = [
    pytest.param("/../outside/secret.txt", id="dotdot"),
    pytest.param("/../../../../../../etc/passwd", id="dotdot-deep"),
    pytest.param("/docs/../../outside/secret.txt", id="dotdot-after-folder"),
    pytest.param("/docs/..", id="dotdot-last"),
    pytest.param("/%2e%2e/outside/secret.txt", id="pct-2e2e"),
    pytest.param("/%2E%2E/outside/secret.txt", id="pct-2E2E"),
    pytest.param("/.%2e/outside/secret.txt", id="dot-pct2e"),
    pytest.param("/%2e./outside/secret.txt", id="pct2e-dot"),
    pytest.param("/docs%2f..%2f..%2foutside%2fsecret.txt", id="pct-2f"),
    pytest.param("/docs%2F..%2F..%2Foutside%2Fsecret.txt", id="pct-2F"),
    pytest.param("/%2e%2e%2foutside%2fsecret.txt", id="pct-2e2e2f"),
    pytest.param("/hello.txt%00.html", id="nul"),
    pytest.param("/%00", id="nul-alone"),
    pytest.param("/..\\outside\\secret.txt", id="backslash"),
    pytest.param("/docs%5c..%5c..%5coutside%5csecret.txt", id="pct-5c"),
    pytest.param("/link-out", id="symlink-file-out"),
    pytest.param("/dir-out/secret.txt", id="symlink-folder-out"),
    pytest.param("/dir-out/", id="symlink-folder-index-out"),
    pytest.param("/pub-sibling", id="symlink-to-prefix-sibling"),
]


@pytest.mark.parametrize("target", TRAVERSALS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_escape_is_refused_and_the_connection_goes_on(static_srv, target, method):
    with static_srv.connect() as c:
        c.request(method, target)
        resp = c.read_response(method)
        assert resp.status == 403, f"{method} {target}: {resp.status} {resp.body[:100]!r}"
        assert SECRET not in resp.body
        assert not resp.body.startswith(b"app "), "a refused target reached the app"
        assert resp.body == (b"" if method == "HEAD" else b"Forbidden\n")
        c.request("GET", "/hello.txt")
        assert c.read_response().body == HELLO


def test_absolute_form_cannot_climb_either(static_srv):
    with static_srv.connect() as c:
        c.request("GET", f"http://{c.authority}/../outside/secret.txt")
        resp = c.read_response()
        assert resp.status == 403 and SECRET not in resp.body


def test_dotted_names_that_do_not_climb_are_files(static_srv, site):
    (site.pub / "..dots..txt").write_bytes(b"just a name")
    resp = static_srv.get("/..dots..txt")
    assert resp.status == 200 and resp.body == b"just a name"


def test_other_methods_with_traversal_are_the_apps_business(static_srv):
    """Only GET and HEAD look at the file system; a POST with the same target
    reaches the app (which sees the decoded PATH_INFO), never a file."""
    resp = static_srv.request("POST", "/../outside/secret.txt")
    assert resp.status == 200 and SECRET not in resp.body
    assert resp.body.startswith(b"app POST")
