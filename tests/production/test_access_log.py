"""-v access log: Common Log Format plus the response time, written by a
thread of its own, so a stderr nobody reads never stalls the server."""
import re
import subprocess
import time

from tests.rawhttp import Connection
from tests.server import base_env, iodine_argv

LINE = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                  r'"GET /status/404 HTTP/1\.1" 404 \d+ \d+\.\d{3}ms$')


def test_access_log_line_format(run_server):
    srv = run_server("basic", "-v")
    assert srv.get("/status/404").status == 404
    m = srv.wait_for_stderr(re.compile(r'"GET /status/404 '), timeout=5)
    line = next(s for s in srv.stderr_lines if m.group(0) in s).strip()
    assert LINE.match(line), line


def test_quiet_has_no_access_log_and_one_line_banner(run_server):
    srv = run_server("basic", "-v", "-q")
    assert srv.get("/status/404").status == 404
    srv.stop()
    assert not any('"GET /status/404' in s for s in srv.stderr_lines), srv.stderr
    assert srv.stderr_lines[0].startswith("Listening on http://"), srv.stderr


def test_banner_is_one_block(run_server):
    srv = run_server("basic", "-t", "2")
    head = "".join(srv.stderr_lines[:3])
    assert re.search(r"iodine-py \d+\.\d+\.\d+ .*pid \d+", head), head
    assert "Listening on http://127.0.0.1:" in head
    assert "threads: 2, workers: 1" in head


def test_a_stderr_nobody_reads_does_not_stall_the_server(free_port):
    # stderr goes to a pipe we never read: once its 64 KiB fill up, a
    # blocking log write would freeze the loop. 3,000 lines are ~250 KiB.
    proc = subprocess.Popen(iodine_argv("basic", "-v", default_args=False)
                            + ["-p", str(free_port), "-b", "127.0.0.1"],
                            env=base_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = Connection("127.0.0.1", free_port, timeout=10)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)  # polling for the port: the banner is in the unread pipe
        started = time.monotonic()
        with conn:
            for _ in range(3000):
                conn.request("GET", "/status/404")
                assert conn.read_response(timeout=5).status == 404
        assert time.monotonic() - started < 30
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert b"lines dropped" in err or err.count(b'"GET /status/404') == 3000
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_answers_from_the_core_are_logged_too(run_server, tmp_path):
    # Static files and error answers never reach Python's response code;
    # the core formats their lines and the same writer prints them.
    (tmp_path / "page.txt").write_bytes(b"static body\n")
    srv = run_server("basic", "-v", "-www", str(tmp_path))
    assert srv.get("/page.txt").status == 200
    line = srv.wait_for_stderr(re.compile(r'"GET /page\.txt HTTP/1\.1" 200 12 \d+\.\d{3}ms$'),
                               timeout=5).string.strip()
    assert re.match(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /page\.txt HTTP/1\.1" 200 12 ', line), line
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        assert c.read_response().status == 400
    srv.wait_for_stderr(re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "- - HTTP/1\.1" 400 \d+ '),
                        timeout=5)
