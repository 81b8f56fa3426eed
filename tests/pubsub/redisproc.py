"""A real redis-server child process for tests (see conftest.redis_server)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

REDIS_SERVER = "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") \
    else shutil.which("redis-server")
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_missing() -> Optional[str]:
    """Why Redis tests cannot run here, or None."""
    if not REDIS_SERVER:
        return "redis-server is not installed (looked for /usr/bin/redis-server and $PATH)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "redis-py is not installed in the test venv (pip install redis)"
    return None


class RedisServer:
    def __init__(self, workdir: Path, password: Optional[str] = None,
                 acl_user: Optional[tuple[str, str]] = None, persist: bool = False):
        self.workdir = workdir
        self.persist = persist  # AOF, fsync'd on every write: a restart keeps the data
        self.password = password
        self.acl_user = acl_user
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = workdir / "redis.log"

    # -- addresses ---------------------------------------------------------
    def url(self, db: int = 0, password: Optional[str] = None,
            user: Optional[str] = None) -> str:
        """redis://[user:password@]127.0.0.1:PORT/db (password defaults to
        the server's own, user to the ACL user's name when there is one)."""
        if user is None and self.acl_user:
            user = self.acl_user[0]
        if password is None:
            password = self.acl_user[1] if self.acl_user else self.password
        auth = ""
        if password is not None:
            auth = f"{user or ''}:{password}@"
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def argv(self) -> list[str]:
        argv = [REDIS_SERVER, "--port", str(self.port), "--save", "",
                "--appendonly", "yes" if self.persist else "no",
                "--bind", "127.0.0.1", "--dir", str(self.workdir), "--daemonize", "no",
                "--protected-mode", "no"]
        if self.persist:
            argv += ["--appendfsync", "always"]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        if self.acl_user is not None:
            name, pw = self.acl_user
            acl = self.workdir / "users.acl"
            acl.write_text(f"user {name} on >{pw} ~* &* +@all\nuser default off\n")
            argv += ["--aclfile", str(acl)]
        return argv

    # -- lifecycle -----------------------------------------------------------
    def start(self, port: Optional[int] = None) -> "RedisServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.port = port or self.port or free_port()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"redis-server did not answer PING within "
                                     f"{START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.01)
        return self

    def ping(self, timeout: float = 0.5) -> bool:
        """True when something on the port answers a PING with a RESP reply
        (an error such as NOAUTH counts: the server is up)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                data = s.recv(64)
                return data[:1] in (b"+", b"-")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def restart(self) -> "RedisServer":
        self.kill()
        return self.start(self.port)

    def freeze(self) -> None:
        """SIGSTOP: the socket stays open and nothing answers (a stuck or
        swapping Redis looks like this)."""
        assert self.running
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def client(self, **kw):
        """A redis-py client for the test itself."""
        import redis

        kw.setdefault("socket_timeout", 5.0)
        kw.setdefault("socket_connect_timeout", 5.0)
        return redis.Redis.from_url(self.url(), **kw)
