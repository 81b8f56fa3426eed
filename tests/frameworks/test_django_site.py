"""Django on iodine-py over real sockets: the project in
tests/apps/django_site/ (DEBUG off, ALLOWED_HOSTS, CSRF middleware), a form
POST with and without its CSRF token, a WebSocket accepted from a Django
view with iodine_py.upgrade, and the collected static files served by the
server's -www folder."""

from __future__ import annotations

import re
import subprocess
import urllib.parse

import pytest

from tests.frameworks.helpers import needs
from tests.server import PYTHON, REPO_ROOT, base_env, run_cli
from tests.websocket.wsraw import connect_srv

pytestmark = needs("django")

APP = "tests.apps.django_site.wsgi:application"
FORM = [("Content-Type", "application/x-www-form-urlencoded")]


def _www_flag_exists() -> bool:
    try:
        out = run_cli("-h")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"-www" in out.stdout + out.stderr


@pytest.fixture
def srv(run_server):
    return run_server(APP, "-t", "2")


def cookie_from(resp, name: str) -> str:
    for value in resp.header_values("Set-Cookie"):
        key, _, rest = value.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {name} cookie in {resp!r}")


def test_view(srv):
    resp = srv.get("/")
    assert resp.status == 200
    assert resp.body == b"django index"
    assert resp.header("X-Frame-Options") == "DENY"  # the middleware ran


def test_disallowed_host_is_refused(srv):
    resp = srv.get("/", host="evil.example")
    assert resp.status == 400
    assert srv.get("/nowhere").status == 404


def test_form_post_with_csrf_token(srv):
    page = srv.get("/form")
    assert page.status == 200
    cookie = cookie_from(page, "csrftoken")
    m = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    assert m, page.body
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": m.group(1).decode(),
                                   "name": "Ada Lovelace"}).encode()
    resp = srv.request("POST", "/form", FORM + [("Cookie", f"csrftoken={cookie}")], body)
    assert resp.status == 200, resp
    assert resp.body == b"thanks, Ada Lovelace"


def test_form_post_without_csrf_token_is_forbidden(srv):
    body = urllib.parse.urlencode({"name": "Mallory"}).encode()
    assert srv.request("POST", "/form", FORM, body).status == 403
    # a cookie alone is not enough either: the form field must match it
    page = srv.get("/form")
    cookie = cookie_from(page, "csrftoken")
    resp = srv.request("POST", "/form", FORM + [("Cookie", f"csrftoken={cookie}")], body)
    assert resp.status == 403


def test_websocket_from_a_django_view(srv):
    with connect_srv(srv, "/ws") as ws:
        srv.wait_for_stderr("django-site ws-open /ws")
        ws.send_text("quiet words")
        assert ws.recv_text() == "QUIET WORDS"
        ws.send_close(1000)
        ws.expect_close(1000)
    srv.wait_for_stderr("django-site ws-close")
    resp = srv.get("/ws")  # not a handshake: the helper's refusal, through Django
    assert resp.status == 400
    assert resp.body == b"This address expects a WebSocket request.\n"


@pytest.mark.skipif(not _www_flag_exists(),
                    reason="the server has no -www flag yet (static file service)")
def test_collected_static_files_served_by_www(run_server, tmp_path):
    public = tmp_path / "public"
    env = base_env({"DJANGO_SETTINGS_MODULE": "tests.apps.django_site.settings",
                    "DJANGO_SITE_STATIC_ROOT": str(public / "static")})
    done = subprocess.run([PYTHON, "-m", "django", "collectstatic", "--noinput"],
                          cwd=str(REPO_ROOT), env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    css = (public / "static" / "site.css").read_bytes()

    srv = run_server(APP, "-www", str(public),
                     env={"DJANGO_SITE_STATIC_ROOT": str(public / "static")})
    page = srv.get("/page")
    assert page.status == 200
    m = re.search(rb'href="([^"]+)"', page.body)
    assert m and m.group(1) == b"/static/site.css", page.body
    resp = srv.get("/static/site.css")
    assert resp.status == 200
    assert resp.body == css
    assert resp.header("Content-Type").startswith("text/css")
    # Django itself never serves static files with DEBUG off: it was the server
    assert resp.header("X-Frame-Options") is None
