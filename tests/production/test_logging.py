"""Logging: the server's messages go through logging.getLogger("iodine")
(an application or -C config file can route them), --log-level filters
them, -V N is iodine's verbosity; the access log has a JSON-lines form and
is right for answers the server makes itself (a 500 shows the bytes sent,
a 413 names the method and path)."""
import json
import os
import re
import signal

from tests.server import APPS_DIR


def json_lines(srv, n, timeout=10):
    found = srv.wait_for_lines(re.compile(r"^\{.*\}$"), n, timeout=timeout)
    return [json.loads(m.group(0)) for m in found]


def test_json_access_log_and_answers_the_server_makes(run_server):
    srv = run_server("wsgi_rules", "-v", "--access-log-format", "json", "-maxbd", "1")
    srv.allow_tracebacks = True
    assert srv.get("/raise-before").status == 500
    resp = srv.request("POST", "/upload", {"Content-Length": str(2 * 1024 * 1024)})
    assert resp.status == 413
    first, second = json_lines(srv, 2)
    assert first["status"] == 500 and first["method"] == "GET"
    assert first["path"] == "/raise-before"
    assert first["bytes"] > 0  # the error page was sent, and counted
    assert second["status"] == 413 and second["method"] == "POST"
    assert second["path"] == "/upload"
    assert isinstance(second["duration_ms"], float)


def test_common_log_names_a_refused_request(run_server):
    srv = run_server("hello", "-v", "-maxbd", "1")
    resp = srv.request("PUT", "/big?x=1", {"Content-Length": str(5 * 1024 * 1024)})
    assert resp.status == 413
    srv.wait_for_stderr(re.compile(r'"PUT /big\?x=1 HTTP/1\.1" 413 \d+'), timeout=5)


def test_log_level_filters_server_messages(run_server):
    srv = run_server("whoami", "-w", "2", "--log-level", "warning")
    srv.wait_listening()
    pid = None
    for _ in range(2):  # a worker that dies is a warning: shown
        body = json.loads(srv.get("/").body)
        pid = body["pid"]
    os.kill(pid, signal.SIGKILL)
    srv.wait_for_stderr(f"(pid {pid}) exited with signal 9", timeout=10)
    assert srv.stop() == 0
    assert "started (pid" not in srv.stderr  # info: hidden
    assert "iodine: stopped" not in srv.stderr


def test_verbosity_is_iodines_and_version_is_long(run_server):
    srv = run_server("whoami", "-w", "2", "-V", "1")  # 1: errors only
    srv.wait_listening()
    assert srv.stop() == 0
    assert "started (pid" not in srv.stderr


def test_a_config_file_can_route_server_messages(run_server, tmp_path):
    out = tmp_path / "server.log"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "import logging\n"
        f"h = logging.FileHandler({str(out)!r})\n"
        "h.setFormatter(logging.Formatter('%(levelname)s %(name)s %(message)s'))\n"
        "logging.getLogger('iodine').addHandler(h)\n"
        "from iodine_py import Iodine\n"
        "Iodine.threads = 3\n")
    srv = run_server("whoami", "-w", "2", "-C", str(conf))
    srv.wait_for_lines("started (pid", 2, timeout=10)
    assert "threads: 3" in srv.stderr  # the config file ran before start
    assert srv.stop() == 0
    text = out.read_text()
    assert re.search(r"INFO iodine worker 0 started \(pid \d+\)", text), text
    assert "INFO iodine stopped" in text
    assert APPS_DIR.exists()
