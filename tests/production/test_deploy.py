"""Deploys: a rolling restart (SIGHUP, SIGUSR1) runs the code as it is on
disk now, with zero failed requests under load; a deploy that cannot be
imported is one log line and leaves the old workers serving; --preload
keeps the code imported once in the master."""
import re
import signal
import threading
import time

from tests.rawhttp import Connection

APP = '''
import os
VERSION = {version!r}
def app(environ, start_response):
    body = ("%s %d" % (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''
LOAD_LIMIT_S = 40.0


class Load:
    """Threads asking on fresh connections until stopped, recording
    (time, body) of each answer; anything but a whole 200 is an error."""

    def __init__(self, srv, threads=3):
        self.srv = srv
        self.answers = []
        self.errors = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.deadline = time.monotonic() + LOAD_LIMIT_S
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                with Connection(self.srv.host, self.srv.port, timeout=10) as c:
                    c.request("GET", "/", {"Connection": "close"})
                    resp = c.read_response(timeout=10)
                assert resp.status == 200, resp
                with self.lock:
                    self.answers.append((time.monotonic(), resp.body.decode()))
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.errors.append(repr(e))

    def count(self):
        with self.lock:
            return len(self.answers)

    def wait_more(self, n, timeout=20.0):
        target = self.count() + n
        end = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < end, f"load stalled at {self.count()} answers"
            assert not self.errors, self.errors[:3]
            time.sleep(0.01)  # polling a counter, not synchronising with the server

    def since(self, t):
        with self.lock:
            return [body for when, body in self.answers if when > t]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def write_app(path, version=None, text=None):
    path.write_text(text if text is not None else APP.format(version=version))


def test_rolling_restart_loads_new_code_and_survives_a_broken_deploy(run_server, tmp_path):
    app = tmp_path / "deployed.py"
    write_app(app, "v1")
    srv = run_server(str(app), "-w", "2")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    with Load(srv) as load:
        load.wait_more(30)
        assert all(b.startswith("v1 ") for b in load.since(0))
        # a deploy: new code, then SIGHUP
        write_app(app, "v2")
        mark = srv.stderr_mark()
        srv.send_signal(signal.SIGHUP)
        srv.wait_for_stderr("SIGHUP: rolling restart of 2 workers", timeout=10, start=mark)
        srv.wait_for_lines(re.compile(r"worker \d \(pid \d+\) retired"), 2, timeout=30)
        done = time.monotonic()
        load.wait_more(40)
        after = load.since(done)
        assert after and all(b.startswith("v2 ") for b in after), set(after)
        # SIGUSR1 rolls too
        write_app(app, "v3")
        srv.send_signal(signal.SIGUSR1)
        srv.wait_for_lines(re.compile(r"worker \d \(pid \d+\) retired"), 4, timeout=30)
        done = time.monotonic()
        load.wait_more(40)
        after = load.since(done)
        assert after and all(b.startswith("v3 ") for b in after), set(after)
        # a broken deploy: one line, the roll stops, the old workers serve on
        write_app(app, text="def app(environ, start_response:\n")
        mark = srv.stderr_mark()
        srv.send_signal(signal.SIGHUP)
        line = srv.wait_for_stderr(re.compile(r"cannot load the application: (.*)"),
                                   timeout=20, start=mark)
        assert "SyntaxError" in line.group(1) and "deployed.py:1" in line.group(1), line.group(0)
        srv.wait_for_stderr("rolling restart stopped, the old workers keep serving",
                            timeout=20, start=mark)
        t = time.monotonic()
        load.wait_more(40)
        assert all(b.startswith("v3 ") for b in load.since(t))
    assert not load.errors, f"{len(load.errors)} failed requests: {load.errors[:5]}"
    new_lines = srv.stderr_lines[mark:]
    assert not any("Traceback" in x for x in new_lines), "\n".join(new_lines)
    srv.assert_alive()
    assert srv.stop() == 0


def test_preload_imports_once_in_the_master(run_server, tmp_path):
    app = tmp_path / "preloaded.py"
    write_app(app, text=APP.format(version="p1") + "import sys\nsys.stderr.write("
                                                   "'imported in %d\\n' % os.getpid())\n")
    srv = run_server(str(app), "-w", "2", "--preload")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    master = srv.proc.pid
    imported = srv.wait_for_lines(re.compile(r"imported in (\d+)"), 1, timeout=5)
    assert [int(m.group(1)) for m in imported] == [master]
    write_app(app, "p2")
    srv.send_signal(signal.SIGHUP)
    srv.wait_for_lines("retired", 2, timeout=30)
    assert srv.get("/").body.startswith(b"p1 ")  # preloaded: the master's copy of the code
    assert srv.stop() == 0


def test_a_broken_app_at_start_is_one_line_and_exit_3(run_server, tmp_path):
    app = tmp_path / "broken.py"
    app.write_text("import no_such_module_here\n")
    srv = run_server(str(app), "-w", "2", wait=False)
    srv.expected_returncode = 3
    srv.allow_tracebacks = False
    assert srv.wait_exit(20) == 3
    assert "cannot load the application: ModuleNotFoundError" in srv.stderr
    assert "Traceback" not in srv.stderr


def test_sighup_without_workers_imports_the_app_again_in_place(run_server, tmp_path):
    app = tmp_path / "single.py"
    write_app(app, "s1")
    srv = run_server(str(app))
    pid = srv.proc.pid
    assert srv.get("/").body == f"s1 {pid}".encode()
    write_app(app, "s2")
    srv.send_signal(signal.SIGHUP)
    srv.wait_for_stderr("reload: application imported again", timeout=5)
    assert srv.get("/").body == f"s2 {pid}".encode()
    write_app(app, text="def app(:\n")
    mark = srv.stderr_mark()
    srv.send_signal(signal.SIGUSR1)
    srv.wait_for_stderr("reload failed, the running code stays: SyntaxError", timeout=5,
                        start=mark)
    assert srv.get("/").body == f"s2 {pid}".encode()
    assert srv.stop() == 0
