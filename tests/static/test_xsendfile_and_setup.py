"""X-Sendfile from the application, and how static serving is switched on:
the -www / --public flag and Iodine.listen(app, public=DIR)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.apps.static_apps import APP_BODY_FOR_XSEND
from tests.server import repo_on_path_env, run_cli
from tests.static.conftest import HELLO


def xsend_target(path, **extra) -> str:
    q = f"/xsend?path={quote(str(path), safe='')}"
    for k, v in extra.items():
        q += f"&{k}={quote(v)}"
    return q


# -- X-Sendfile -----------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["list-body", "generator-body"])
def test_x_sendfile_sends_the_file_with_the_apps_status_and_headers(static_srv, site, stream):
    data = (site.xs / "data.bin").read_bytes()
    extra = {"stream": "1"} if stream else {}
    with static_srv.connect(timeout=10) as c:
        c.request("GET", xsend_target(site.xs / "data.bin", **extra))
        resp = c.read_response(timeout=10)
        assert resp.status == 200
        assert resp.header("Content-Length") == str(len(data))
        assert resp.header("Content-Type") == "application/x-test"
        assert resp.header("X-From-App") == "yes"
        assert resp.header("X-Sendfile") is None, "the header is for the server only"
        assert resp.body == data
        assert APP_BODY_FOR_XSEND not in resp.body
        # keep-alive goes on, and nothing of the app's body trails behind
        c.request("GET", "/hello.txt")
        assert c.read_response().body == HELLO
        assert not c.readable(0.2)


def test_x_sendfile_keeps_a_custom_status(static_srv, site):
    resp = static_srv.get(xsend_target(site.xs / "data.bin", status="203 Non-Authoritative"))
    assert resp.status == 203
    assert resp.body == (site.xs / "data.bin").read_bytes()


def test_x_sendfile_head_sends_the_length_only(static_srv, site):
    size = (site.xs / "data.bin").stat().st_size
    with static_srv.connect() as c:
        c.request("HEAD", xsend_target(site.xs / "data.bin"))
        resp = c.read_response("HEAD")
        assert resp.status == 200 and resp.header("Content-Length") == str(size)
        c.request("GET", "/hello.txt")
        assert c.read_response().body == HELLO


@pytest.mark.parametrize("what", ["missing", "folder", "relative"])
def test_x_sendfile_without_a_sendable_file_is_404_and_logged(static_srv, site, what):
    path = {"missing": str(site.xs / "nope.bin"), "folder": str(site.xs),
            "relative": "xs/data.bin"}[what]
    mark = static_srv.stderr_mark()
    with static_srv.connect() as c:
        c.request("GET", xsend_target(path))
        resp = c.read_response()
        assert resp.status == 404
        assert APP_BODY_FOR_XSEND not in resp.body
        c.request("GET", "/hello.txt")  # the connection survives
        assert c.read_response().body == HELLO
    static_srv.wait_for_stderr(f"X-Sendfile {path}", start=mark)


def test_x_sendfile_404_is_what_the_access_log_shows(run_server, site):
    srv = run_server("static_apps", "-www", str(site.pub), "-v")
    target = xsend_target(str(site.xs / "nope.bin"))
    assert srv.get(target).status == 404
    # the app said 200; the line must carry the status that was sent
    srv.wait_for_stderr(f'"GET {target} HTTP/1.1" 404 ')


def test_x_sendfile_pipelined_between_static_and_app(static_srv, site):
    from tests.rawhttp import build_request

    data = (site.xs / "data.bin").read_bytes()
    with static_srv.connect(timeout=10) as c:
        c.send(build_request("GET", "/hello.txt", host=c.authority)
               + build_request("GET", xsend_target(site.xs / "data.bin"), host=c.authority)
               + build_request("GET", "/dyn", host=c.authority)
               + build_request("GET", xsend_target(site.xs / "data.bin", stream="1"),
                               host=c.authority)
               + build_request("GET", "/digits.txt", host=c.authority))
        assert c.read_response(timeout=10).body == HELLO
        assert c.read_response(timeout=10).body == data
        assert c.read_response(timeout=10).body == b"app GET /dyn"
        assert c.read_response(timeout=10).body == data
        assert c.read_response(timeout=10).body == b"0123456789"


def test_x_sendfile_works_without_a_public_folder(run_server, site):
    srv = run_server("static_apps")
    resp = srv.get(xsend_target(site.xs / "data.bin"))
    assert resp.status == 200 and resp.body == (site.xs / "data.bin").read_bytes()
    # and without -www, files are the app's business
    assert srv.get("/hello.txt").body == b"app GET /hello.txt"


# -- switching it on ---------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["-www", "--public"])
def test_cli_flag(run_server, site, flag):
    srv = run_server("static_apps", flag, str(site.pub))
    assert srv.get("/hello.txt").body == HELLO
    assert srv.get("/dynamic").body == b"app GET /dynamic"


def test_cli_flag_with_workers(run_server, site):
    srv = run_server("static_apps", "-w", "2", "-www", str(site.pub))
    for _ in range(6):
        assert srv.get("/hello.txt").body == HELLO


def test_cli_relative_folder(run_server, site):
    """A relative DIR is resolved once, at start, against the server's
    working directory."""
    from tests.server import REPO_ROOT, server_cmd

    srv = run_server(argv=[*server_cmd(), str(REPO_ROOT / "tests/apps/static_apps.py"),
                           "-p", "0", "-b", "127.0.0.1", "-www", "pub"],
                     cwd=site.base, env=repo_on_path_env())
    assert srv.get("/hello.txt").body == HELLO


@pytest.mark.parametrize("what", ["missing", "file"])
def test_cli_bad_folder_is_a_one_line_error(site, what):
    folder = str(site.base / "no-such-folder") if what == "missing" else str(site.pub / "hello.txt")
    proc = run_cli("tests/apps/static_apps.py", "-p", "0", "-www", folder)
    err = proc.stderr.decode()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert folder in lines[0]


def test_help_lists_the_flag():
    out = run_cli("--help").stdout.decode()
    assert "-www" in out and "--public" in out


def test_programmatic_listen_public(run_server, server_python, site):
    srv = run_server(argv=[server_python, "tests/apps/static_apps.py", str(site.pub), "2"],
                     env=repo_on_path_env())
    resp = srv.get("/hello.txt")
    assert resp.status == 200 and resp.body == HELLO and resp.header("ETag")
    assert srv.get("/docs/").body == b"docs index"
    assert srv.get("/x").body == b"app GET /x"
    assert srv.get("/../outside/secret.txt").status == 403


def test_listen_checks_the_folder(site):
    from iodine_py.config import Config, ConfigError

    cfg = Config()
    lst = cfg.listener(lambda e, s: [], public=site.pub)  # a Path is fine
    assert lst.public == str(site.pub)
    assert cfg.listener(lambda e, s: []).public is None
    with pytest.raises(ConfigError, match="no such folder"):
        cfg.listener(lambda e, s: [], public=str(site.base / "nope"))
    with pytest.raises(ConfigError, match="not a folder"):
        cfg.listener(lambda e, s: [], public=str(site.pub / "hello.txt"))
