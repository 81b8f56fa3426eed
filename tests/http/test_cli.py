"""The command line (`python -m iodine_py`) and the programmatic API."""

from __future__ import annotations

import os

import pytest

from tests.apps import hello, programmatic
from tests.server import REPO_ROOT, base_env, repo_on_path_env, run_cli

FLAGS = ["-p", "--port", "-b", "--bind", "-t", "--threads", "-w", "--workers", "-v", "-q",
         "-maxbd", "-maxhd", "--max-header-line", "--max-headers", "-k", "--body-spill",
         "-h", "--help"]


def assert_one_line_error(proc, code=2):
    err = proc.stderr.decode("utf-8", "replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}; stderr:\n{err}"
    assert "Traceback" not in err, f"a traceback instead of an error message:\n{err}"
    assert len(lines) == 1, f"expected a one-line error, got {len(lines)} lines:\n{err}"
    return lines[0]


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_exits_0_and_lists_every_flag(flag):
    proc = run_cli(flag)
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode == 0, out
    missing = [f for f in FLAGS if f not in out.split() and f" {f}" not in out
               and f"{f}," not in out and f"{f}=" not in out]
    assert not missing, f"--help does not mention {missing}:\n{out}"


@pytest.mark.parametrize("args", [
    pytest.param(["-p", "notaport"], id="port-not-a-number"),
    pytest.param(["-p", "70000"], id="port-out-of-range"),
    pytest.param(["-t", "0"], id="zero-threads"),
    pytest.param(["-t", "many"], id="threads-not-a-number"),
    pytest.param(["-maxbd", "-1"], id="negative-max-body"),
    pytest.param(["-k", "soon"], id="keepalive-not-a-number"),
    pytest.param(["--no-such-flag"], id="unknown-flag"),
])
def test_bad_flag_value_is_a_one_line_error_exit_2(args):
    proc = run_cli("tests/apps/hello.py", *args)
    line = assert_one_line_error(proc)
    assert args[0] in line or args[-1] in line, \
        f"the error line does not name the flag or value: {line!r}"


def test_missing_app_file_is_a_one_line_error_exit_2():
    proc = run_cli("tests/apps/no_such_app_file.py", "-p", "0")
    line = assert_one_line_error(proc)
    assert "no_such_app_file" in line


def test_missing_module_is_a_one_line_error_exit_2():
    proc = run_cli("no_such_module_xyz:app", "-p", "0")
    line = assert_one_line_error(proc)
    assert "no_such_module_xyz" in line


def test_missing_attribute_is_a_one_line_error_exit_2():
    proc = run_cli("tests.apps.hello:no_such_attr", "-p", "0")
    line = assert_one_line_error(proc)
    assert "no_such_attr" in line


def test_app_given_as_file_path(run_server):
    srv = run_server("tests/apps/hello.py")
    assert srv.get("/").body == hello.BODY


def test_app_given_as_module_and_attr(run_server):
    """`module:attr` picks that attribute."""
    srv = run_server("tests.apps.hello:other")
    assert srv.get("/").body == hello.OTHER_BODY


def test_app_given_as_module_defaults_to_app(run_server):
    srv = run_server("tests.apps.hello")
    assert srv.get("/").body == hello.BODY


def test_module_found_through_pythonpath(run_server, tmp_path):
    """`module:attr` is looked up on sys.path: here a package that lives
    only in a directory named by PYTHONPATH, with the server started from an
    unrelated directory."""
    pkg = tmp_path / "lib" / "elsewhere_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "webapp.py").write_text((REPO_ROOT / "tests" / "apps" / "hello.py").read_text())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = repo_on_path_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "lib"),
                                                      env.get("PYTHONPATH")]))
    srv = run_server("elsewhere_pkg.webapp:other", cwd=run_dir, env=env)
    assert srv.get("/").body == hello.OTHER_BODY


def test_absolute_file_path(run_server, tmp_path):
    srv = run_server(str(REPO_ROOT / "tests" / "apps" / "hello.py"), cwd=tmp_path,
                     env=repo_on_path_env())
    assert srv.get("/").body == hello.BODY


def test_port_from_environment(run_server, free_port):
    """$PORT is used when -p is not given."""
    srv = run_server("hello", "-b", "127.0.0.1", default_args=False, env={"PORT": str(free_port)})
    assert srv.port == free_port
    assert srv.get("/").body == hello.BODY


def test_port_flag_wins_over_environment(run_server, free_port):
    srv = run_server("hello", env={"PORT": str(free_port)})  # with -p 0
    assert srv.port != free_port
    assert srv.get("/").body == hello.BODY


def test_verbose_logs_each_request(run_server):
    """-v writes an access log line to stderr naming the path and status."""
    srv = run_server("basic", "-v")
    mark = srv.stderr_mark()
    srv.get("/logged/path-7c1e")
    line = srv.wait_for_stderr("/logged/path-7c1e", timeout=5, start=mark).string
    assert "200" in line, f"access log line without the status: {line!r}"
    assert "GET" in line, f"access log line without the method: {line!r}"


def test_bind_address_is_used(run_server):
    srv = run_server("hello", "-p", "0", "-b", "127.0.0.1", default_args=False)
    assert srv.host == "127.0.0.1"
    assert srv.get("/").status == 200


def test_workers_serve_requests(run_server):
    """-w 2: requests are answered (by either worker) and SIGTERM stops all."""
    srv = run_server("hello", "-w", "2")
    for _ in range(10):
        assert srv.get("/").body == hello.BODY


def test_programmatic_api(run_server, server_python):
    """Iodine.listen(app, port=0, address='127.0.0.1'); Iodine.threads = 2;
    Iodine.start() serves like the CLI and stops on SIGTERM with exit 0."""
    srv = run_server(argv=[server_python, "tests/apps/programmatic.py", "2"],
                     env=repo_on_path_env())
    resp = srv.get("/")
    assert resp.status == 200
    assert resp.body == programmatic.BODY + b" multithread=1"


def test_programmatic_start_gives_sigusr1_back(server_python):
    """While serving without workers SIGUSR1 is ignored (it would kill the
    process); once Iodine.start() returns, the process's own handler is
    back."""
    script = (
        "import signal\n"
        "from iodine_py import Iodine\n"
        "mine = lambda *a: None\n"
        "signal.signal(signal.SIGUSR1, mine)\n"
        "seen = []\n"
        "def during():\n"
        "    seen.append(signal.getsignal(signal.SIGUSR1))\n"
        "    Iodine.stop()\n"
        "Iodine.listen(lambda e, s: [], port=0, address='127.0.0.1')\n"
        "Iodine.run_after(1, during)\n"
        "Iodine.start()\n"
        "print('during', seen == [signal.SIG_IGN])\n"
        "print('after', signal.getsignal(signal.SIGUSR1) is mine)\n")
    import subprocess
    out = subprocess.run([server_python, "-c", script], env=base_env(repo_on_path_env()),
                         cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert "during True" in out.stdout and "after True" in out.stdout, out.stdout + out.stderr


def test_quiet_still_reports_where_it_listens(run_server):
    """-q silences the banner and logs but keeps the `Listening on` line,
    which supervisors and these tests rely on to learn an ephemeral port."""
    srv = run_server("hello", "-q")
    assert srv.get("/").body == hello.BODY
