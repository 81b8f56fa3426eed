"""`iodine --version`, the grouping of `iodine --help`, and the one-line
exit-2 errors that tests/http/test_cli.py does not cover: an app file with
no `app` (or a non-callable one), and a port already in use."""
from __future__ import annotations

import os
import re
import socket
from typing import Dict, List

import pytest

import iodine_py
from tests.server import run_cli


def assert_one_line_error(proc, code: int = 2) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}; stderr:\n{err}"
    assert "Traceback" not in err, f"a traceback instead of an error message:\n{err}"
    assert len(lines) == 1, f"expected a one-line error, got {len(lines)} lines:\n{err}"
    assert lines[0].startswith("iodine: error: "), lines[0]
    return lines[0]


def test_version_prints_the_package_version_and_exits_0():
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == f"iodine-py {iodine_py.__version__}"
    assert proc.stderr == b""


def _help_sections(text: str) -> Dict[str, List[str]]:
    """--help's sections by heading ('listening', ...), each with the
    option strings that start its entries."""
    sections: Dict[str, List[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
            sections[current] = []
        elif current is not None and re.match(r"^  -", line):
            sections[current] += re.findall(r"(?:^|, )(-{1,2}[\w-]+)", line.strip())
    return sections


def test_help_groups_the_flags_by_topic():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    sections = _help_sections(proc.stdout.decode())
    expected = {
        "listening": ["-p", "--port", "-b", "--bind"],
        "concurrency": ["-t", "--threads", "-w", "--workers"],
        "limits": ["-maxbd", "--max-body", "-maxhd", "--max-head", "-k", "--keep-alive"],
        "WebSocket and SSE": ["-maxms", "--max-msg", "-ping", "--ping"],
        "pub/sub": ["-r", "--redis"],
        "restarts and shutdown": ["--grace", "--drain", "--reload", "--max-requests",
                                  "-pid", "--pid"],
        "logging": ["-v", "-log", "--verbose", "-q", "--quiet", "-V", "-verbosity",
                    "--log-level", "--access-log-format"],
        "help": ["-h", "--help", "--version"],
    }
    for heading, flags in expected.items():
        assert heading in sections, f"--help has no {heading!r} section: {list(sections)}"
        missing = [f for f in flags if f not in sections[heading]]
        assert not missing, f"--help's {heading!r} section lacks {missing}: {sections[heading]}"
    # every flag sits in a topic: no catch-all "options" section
    for catch_all in ("options", "optional arguments"):
        assert not sections.get(catch_all), f"flags outside any group: {sections[catch_all]}"


def test_app_file_without_an_app_attribute_is_a_one_line_error(tmp_path):
    path = tmp_path / "no_app_here.py"
    path.write_text("application = None  # named differently\n")
    line = assert_one_line_error(run_cli(str(path), "-p", "0"))
    assert "no_app_here.py" in line and "'app'" in line, line


def test_app_attribute_that_is_not_callable_is_a_one_line_error(tmp_path):
    path = tmp_path / "not_callable.py"
    path.write_text("app = 42\n")
    line = assert_one_line_error(run_cli(str(path), "-p", "0"))
    assert "not callable" in line, line


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_is_a_one_line_error(workers):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_cli("tests/apps/hello.py", "-p", str(port), "-b", "127.0.0.1",
                       "-w", workers)
    line = assert_one_line_error(proc)
    assert str(port) in line and "in use" in line, line


def test_too_many_workers_is_one_line_and_exit_2():
    from tests.server import run_cli

    r = run_cli("tests/apps/hello.py", "-p", "0", "-w", "5000")
    assert r.returncode == 2
    err = r.stderr.decode().strip()
    assert err.count("\n") == 0 and "workers must be at most 512" in err, err


def run_cli_parse(*flags: str):
    """The ConfigError a flag set gives, or None."""
    from iodine_py.cli import build_parser, config_from_args
    from iodine_py.config import ConfigError

    try:
        config_from_args(build_parser().parse_args(["tests/apps/hello.py", *flags])).validate()
    except ConfigError as exc:
        return str(exc)
    return None


def test_the_most_workers_can_still_roll():
    # -w at the limit leaves a relay slot for every replacement a rolling
    # restart makes beside its old worker (ext/cluster.h CL_MAX_WORKERS)
    from iodine_py._native import lib
    from iodine_py.config import MAX_WORKERS

    assert 2 * MAX_WORKERS <= lib.CL_MAX_WORKERS
    r = run_cli_parse("-w", str(MAX_WORKERS + 1))
    assert r is not None and f"at most {MAX_WORKERS}" in r


ASGI_APPS = {
    "function": "async def app(scope, receive, send):\n    pass\n",
    "class": ("class App:\n    async def __call__(self, scope, receive, send):\n"
              "        pass\n\napp = App()\n"),
}


@pytest.mark.parametrize("form", sorted(ASGI_APPS))
def test_an_asgi_app_is_a_one_line_error_at_start(tmp_path, form):
    path = tmp_path / "asgi_app.py"
    path.write_text(ASGI_APPS[form])
    line = assert_one_line_error(run_cli(str(path), "-p", "0", "-b", "127.0.0.1"))
    assert "ASGI" in line and "WSGI" in line, line


def test_an_asgi_app_with_workers_stops_with_one_line_per_worker(tmp_path):
    path = tmp_path / "asgi_app.py"
    path.write_text(ASGI_APPS["class"])
    proc = run_cli(str(path), "-p", "0", "-b", "127.0.0.1", "-w", "2")
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    assert err.count("is an ASGI application") == 2, err


def test_redis_engine_needs_no_redis_py(tmp_path):
    # The Redis engine speaks RESP from C: with redis-py unimportable, -r
    # still starts a server (it logs that Redis cannot be reached yet and
    # keeps retrying off the loop), never a traceback or an exit.
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'redis'\")\n")
    from tests.server import ServerProcess, base_env, iodine_argv, repo_on_path_env

    paths = [str(tmp_path)] + [p for p in [repo_on_path_env().get("PYTHONPATH")] if p]
    srv = ServerProcess(iodine_argv("hello", "-r", "redis://127.0.0.1:1/0"),
                        env=base_env({"PYTHONPATH": os.pathsep.join(paths)}))
    try:
        srv.wait_listening()
        assert srv.get("/").status == 200
        assert "Traceback" not in srv.stderr
    finally:
        srv.stop()
