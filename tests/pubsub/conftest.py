"""Fixtures for the pub/sub tests: real Redis servers.

    def test_x(redis_server):
        r = redis_server()                       # plain
        r = redis_server(password="secret")      # --requirepass secret
        r = redis_server(acl_user=("alice", "pw"))
        r = redis_server(run=False); ...; r.start()   # a port now, Redis later
        r = redis_server(persist=True)           # AOF: a restart keeps the stream
        r.port, r.url(), r.kill(), r.restart(), r.ping(), r.client()

Each server runs `redis-server --port P --save "" --appendonly no --bind
127.0.0.1` on a port that was free a moment ago; start() waits until a PING
is answered (bounded, no fixed sleep). kill() sends SIGKILL and waits;
restart() starts it again on the same port; freeze()/thaw() send
SIGSTOP/SIGCONT. Teardown kills what is left (a frozen one too).

No /usr/bin/redis-server (or no redis-py): the tests that need Redis skip,
unless $REQUIRE_REDIS is set, when they fail.
"""

from __future__ import annotations

import os
from typing import Optional

import pytest

from tests.pubsub.redisproc import RedisServer, free_port, redis_missing


def need_redis() -> None:
    """Skip (or, with $REQUIRE_REDIS, fail) when Redis cannot run here."""
    why = redis_missing()
    if why is None:
        return
    if os.environ.get("REQUIRE_REDIS"):
        pytest.fail(f"{why} (REQUIRE_REDIS is set, so this is a failure)", pytrace=False)
    pytest.skip(f"{why}; set REQUIRE_REDIS=1 to make this a failure")


@pytest.fixture
def redis_server(tmp_path):
    need_redis()
    servers: list[RedisServer] = []

    def start(password: Optional[str] = None, acl_user: Optional[tuple[str, str]] = None,
              run: bool = True, persist: bool = False) -> RedisServer:
        workdir = tmp_path / f"redis{len(servers)}"
        workdir.mkdir()
        last: Optional[Exception] = None
        for _ in range(3):  # a port taken between probe and bind: try another
            srv = RedisServer(workdir, password, acl_user, persist)
            servers.append(srv)
            if not run:  # a port for a Redis that starts later (srv.start())
                srv.port = free_port()
                return srv
            try:
                return srv.start()
            except RuntimeError as e:
                last = e
                srv.port = None
        raise AssertionError(f"could not start redis-server: {last}")

    yield start
    for srv in servers:
        if srv.running:
            srv.thaw()
        srv.kill()
