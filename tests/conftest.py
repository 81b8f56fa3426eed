"""Shared fixtures: start the real server on an ephemeral port.

    def test_x(run_server):
        srv = run_server("hello", "-t", "2")      # tests/apps/hello.py
        resp = srv.get("/")

run_server(app, *flags, env=None, argv=None, cwd=None) starts
`<venv python> -m iodine_py APP -p 0 -b 127.0.0.1 FLAGS...`, waits (at most
10 s) for the `Listening on http://HOST:PORT` line on stderr and returns a
ServerProcess with .host, .port, .proc and .stderr_lines.  `argv` replaces the
whole command line (for scripts using the programmatic API).  On teardown each
server still running gets SIGTERM; the test then fails unless it exited with
code 0 within the bound and its stderr shows no crash (and no traceback,
unless the test set `srv.allow_tracebacks = True` because its app raises on
purpose).
"""

from __future__ import annotations

import socket
from typing import Optional

import pytest

from tests.server import (PYTHON, REPO_ROOT, ServerProcess, base_env, iodine_argv)


@pytest.fixture
def run_server():
    started: list[ServerProcess] = []

    def start(app: Optional[str] = "hello", *flags: str, env: Optional[dict] = None,
              argv: Optional[list] = None, cwd=None, default_args: bool = True,
              wait: bool = True, pass_fds=()) -> ServerProcess:
        cmd = argv if argv is not None else iodine_argv(app, *flags, default_args=default_args)
        srv = ServerProcess(cmd, env=base_env(env), cwd=cwd, pass_fds=pass_fds)
        started.append(srv)
        if wait:
            try:
                srv.wait_listening()
            except AssertionError:
                srv.kill()
                started.remove(srv)  # reported here; not again at teardown
                raise
        return srv

    yield start

    failures = []
    for srv in started:
        # A test that stopped its server itself asserted the exit code
        # already; teardown then checks only stderr for crashes.
        check_exit = srv.returncode is None
        if check_exit:
            try:
                srv.stop()
            except AssertionError as e:
                failures.append(f"{srv.argv}: {e}")
                continue
        problems = srv.problems(check_exit=check_exit)
        if problems:
            failures.append(f"{' '.join(map(str, srv.argv))}: " + "; ".join(problems)
                            + "\n--- stderr ---\n" + srv.stderr)
    if failures:
        pytest.fail("server teardown:\n" + "\n\n".join(failures), pytrace=False)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_python() -> str:
    return PYTHON


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT
