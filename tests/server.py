"""Run the real iodine-py server in a child process, for tests.

A ServerProcess starts `python -m iodine_py APP -p 0 -b 127.0.0.1 ...`,
collects its stderr on a reader thread (so the pipe never fills and tests can
wait for a line), learns the real port from the `Listening on
http://HOST:PORT` line, and on stop() sends SIGTERM and waits, bounded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence, Union

from tests.rawhttp import Connection, Response

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
APPS_DIR = TESTS_DIR / "apps"

_VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable

def inplace_build() -> bool:
    """True when the source tree holds a built core (an in-place build)."""
    return any((REPO_ROOT / "iodine_py").glob("_native*"))


def server_cmd() -> list[str]:
    """How to run the server.  Servers run with cwd = the repo root (so app
    paths like tests/apps/hello.py work).  With an in-place build, `-m
    iodine_py` imports the source tree.  Otherwise the package is the one
    `pip install .` put in the venv, and -P (Python 3.11+: do not put the cwd
    on sys.path) keeps the unbuilt source tree from shadowing it."""
    if inplace_build():
        return [PYTHON, "-m", "iodine_py"]
    return [PYTHON, "-P", "-m", "iodine_py"]


def repo_on_path_env() -> dict:
    """Environment that lets a script outside the repo import iodine_py and
    the tests package, without shadowing an installed build."""
    if inplace_build():
        return {"PYTHONPATH": str(REPO_ROOT)}
    return {}


LISTENING_RE = re.compile(r"Listening on https?://(?P<host>[^\s:/]+|\[[^\]]+\]):(?P<port>\d+)")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0

# Lines that mean the process crashed or corrupted memory, whatever the test.
CRASH_MARKERS = (
    "Segmentation fault",
    "Fatal Python error",
    "AddressSanitizer",
    "LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "runtime error:",          # UBSan report
    "core dumped",
    "double free",
    "corrupted size",
    "malloc(): ",
    "free(): invalid",
    "Fatal glibc error",
    "Iterator garbage collected without being closed",  # wsgiref.validate
)


def app_arg(app: str) -> str:
    """'hello' -> 'tests/apps/hello.py'; a path or 'module:attr' is kept."""
    if "/" in app or ":" in app or app.endswith(".py") or "." in app:
        return app
    return f"tests/apps/{app}.py"


def base_env(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ)
    env.pop("PORT", None)            # only tests that mean to set $PORT do
    env["PYTHONFAULTHANDLER"] = "1"  # a crash prints a Python-level stack
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
    return env


class ServerProcess:
    def __init__(self, argv: Sequence[str], env: Optional[dict] = None,
                 cwd: Union[str, Path, None] = None, preexec_fn=None, pass_fds=()):
        self.argv = list(argv)
        self.cwd = str(cwd or REPO_ROOT)
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._cond = threading.Condition()
        self.host: Optional[str] = None
        self.port: Optional[int] = None
        self.returncode: Optional[int] = None
        self.allow_tracebacks = False
        self.expected_returncode = 0
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, env=env if env is not None else base_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=preexec_fn, pass_fds=tuple(pass_fds))
        self._readers = [
            threading.Thread(target=self._reader, args=(self.proc.stderr, self.stderr_lines),
                             daemon=True),
            threading.Thread(target=self._reader, args=(self.proc.stdout, self.stdout_lines),
                             daemon=True),
        ]
        for t in self._readers:
            t.start()

    # -- output collection ------------------------------------------------
    def _reader(self, pipe, sink: list[str]) -> None:
        for raw in iter(pipe.readline, b""):
            with self._cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.stderr_lines)

    def wait_for_stderr(self, pattern: Union[str, re.Pattern], timeout: float = 5.0,
                        start: int = 0) -> re.Match:
        """Wait until a stderr line (from index `start` on) matches `pattern`
        (a substring or compiled regex).  Fails with the stderr so far."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.stderr_lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no stderr line matching {rx.pattern!r} within {timeout}s; "
                        f"stderr so far:\n{self.stderr}")
                if self.proc.poll() is not None and not any(t.is_alive() for t in self._readers):
                    raise AssertionError(
                        f"server exited (code {self.proc.returncode}) before printing "
                        f"{rx.pattern!r}; stderr:\n{self.stderr}")
                self._cond.wait(min(remaining, 0.2))

    def wait_for_lines(self, pattern: Union[str, re.Pattern], count: int,
                       timeout: float = 5.0) -> list:
        """Wait until `count` stderr lines match `pattern`; returns the matches."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in map(rx.search, self.stderr_lines) if m]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None
                                      and not any(t.is_alive() for t in self._readers)):
                    raise AssertionError(
                        f"{len(found)} of {count} stderr lines matching {rx.pattern!r} "
                        f"within {timeout}s; stderr so far:\n{self.stderr}")
                self._cond.wait(min(remaining, 0.2))

    def stderr_mark(self) -> int:
        """An index to pass as wait_for_stderr(start=...) to see only new lines."""
        with self._cond:
            return len(self.stderr_lines)

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        m = self.wait_for_stderr(LISTENING_RE, timeout)
        self.host = m.group("host").strip("[]")
        self.port = int(m.group("port"))
        assert self.port > 0, f"server reported port 0: {m.group(0)!r}"

    # -- talking to it ----------------------------------------------------
    def connect(self, timeout: float = 5.0) -> Connection:
        assert self.port, "server is not listening"
        return Connection(self.host, self.port, timeout=timeout)

    def request(self, method: str, target: str, headers=None, body: bytes = b"",
                timeout: float = 5.0, **kw) -> Response:
        """One request on a fresh connection; returns the final response."""
        with self.connect(timeout) as c:
            c.request(method, target, headers, body, **kw)
            return c.read_final_response(method, timeout=timeout)

    def get(self, target: str, headers=None, **kw) -> Response:
        return self.request("GET", target, headers, **kw)

    def assert_alive(self, target: str = "/") -> Response:
        """The server still answers a normal request on a new connection."""
        assert self.proc.poll() is None, \
            f"server exited with {self.proc.returncode}; stderr:\n{self.stderr}"
        resp = self.get(target)
        assert resp.status == 200, f"server answered {resp!r} to a plain GET {target}"
        return resp

    # -- stopping -----------------------------------------------------------
    def send_signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            # Reported here; keep the fixture's teardown from repeating it.
            self.returncode = self.expected_returncode = self.proc.returncode
            raise AssertionError(
                f"server did not exit within {timeout}s; killed it. stderr:\n{self.stderr}")
        for t in self._readers:
            t.join(5.0)
        return self.returncode

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        """Last resort: SIGKILL the process group this test created."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def problems(self, check_exit: bool = True) -> list[str]:
        """What is wrong with how the process ended (empty when all is well)."""
        out = []
        text = self.stderr
        if check_exit and self.returncode != self.expected_returncode:
            out.append(f"exit code {self.returncode}, expected {self.expected_returncode}")
        for marker in CRASH_MARKERS:
            if marker in text:
                out.append(f"stderr shows {marker!r}")
        if not self.allow_tracebacks:
            for marker in ("Traceback (most recent call last)", "AssertionError", "WSGIWarning",
                           "Exception ignored in"):
                if marker in text:
                    out.append(f"stderr shows {marker!r}")
        return out


def iodine_argv(app: Optional[str], *flags: str, default_args: bool = True) -> list[str]:
    argv = server_cmd()
    if app is not None:
        argv.append(app_arg(app))
    if default_args:
        argv += ["-p", "0", "-b", "127.0.0.1"]
    argv += list(flags)
    return argv


def run_cli(*args: str, env: Optional[dict] = None, cwd=None, timeout: float = 20.0
            ) -> subprocess.CompletedProcess:
    """Run `python -m iodine_py ARGS` to completion (for flags that exit)."""
    return subprocess.run([*server_cmd(), *args], cwd=str(cwd or REPO_ROOT),
                          env=env if env is not None else base_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
