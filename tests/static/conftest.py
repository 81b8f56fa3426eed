"""Fixtures for the static-file tests: a public folder and a server on it.

`site` builds, once per session, a scratch tree:

    <tmp>/pub/               the public folder (-www)
        index.html hello.txt digits.txt changing.txt app.js app.js.gz
        a.<ext> for every extension in MIME_TYPES, noext, a.unknownext
        docs/index.html  empty/  sub/page.txt
        link-in -> hello.txt             (a symlink inside the root)
        link-out -> ../outside/secret.txt, dir-out -> ../outside
        pub-sibling -> ../pubx/f.txt     (a folder whose name starts like the root's)
        fifo                             (not a regular file)
        big.bin                          (20 MiB of random bytes)
    <tmp>/outside/secret.txt index.html  (must never be served)
    <tmp>/pubx/f.txt
    <tmp>/xs/data.bin                    (for X-Sendfile, outside the public folder)

`static_srv` is one server (tests/apps/static_apps.py, -www <tmp>/pub) per
test module, with the same end-of-life checks as the run_server fixture
(exit 0 on SIGTERM, no crash or traceback on stderr). Tests that need their
own flags use run_server.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server import ServerProcess, base_env, iodine_argv

SECRET = b"TOP SECRET, NEVER SERVED"
HELLO = b"hello, static world\n"
DIGITS = b"0123456789"
APP_JS = b"console.log('identity representation');\n" * 40
BIG_SIZE = 20 * 1024 * 1024

MIME_TYPES = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "json": "application/json",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "ico": "image/x-icon",
    "txt": "text/plain; charset=utf-8",
    "xml": "application/xml",
    "pdf": "application/pdf",
    "wasm": "application/wasm",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mp3": "audio/mpeg",
    "map": "application/json",
}


@dataclass
class Site:
    base: Path
    pub: Path
    outside: Path
    xs: Path
    big: bytes


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Site:
    base = tmp_path_factory.mktemp("static")
    pub, outside, pubx, xs = (base / n for n in ("pub", "outside", "pubx", "xs"))
    for d in (pub, outside, pubx, xs, pub / "docs", pub / "empty", pub / "sub"):
        d.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "index.html").write_bytes(SECRET)
    (pubx / "f.txt").write_bytes(SECRET)
    (pub / "index.html").write_bytes(b"<h1>root index</h1>")
    (pub / "hello.txt").write_bytes(HELLO)
    (pub / "digits.txt").write_bytes(DIGITS)
    (pub / "changing.txt").write_bytes(b"version 1")
    (pub / "app.js").write_bytes(APP_JS)
    (pub / "app.js.gz").write_bytes(gzip.compress(APP_JS, mtime=0))
    (pub / "docs" / "index.html").write_bytes(b"docs index")
    (pub / "sub" / "page.txt").write_bytes(b"a page in sub")
    for ext in MIME_TYPES:
        (pub / f"a.{ext}").write_bytes(f"a.{ext}".encode())
    (pub / "noext").write_bytes(b"no extension")
    (pub / "a.unknownext").write_bytes(b"unknown")
    os.symlink("hello.txt", pub / "link-in")
    os.symlink(outside / "secret.txt", pub / "link-out")
    os.symlink("../outside", pub / "dir-out")
    os.symlink("../pubx/f.txt", pub / "pub-sibling")
    os.mkfifo(pub / "fifo")
    big = os.urandom(BIG_SIZE)
    (pub / "big.bin").write_bytes(big)
    (xs / "data.bin").write_bytes(os.urandom(300 * 1024))
    return Site(base=base, pub=pub, outside=outside, xs=xs, big=big)


@pytest.fixture(scope="module")
def static_srv(site):
    srv = ServerProcess(iodine_argv("static_apps", "-www", str(site.pub)), env=base_env())
    try:
        srv.wait_listening()
    except AssertionError:
        srv.kill()
        raise
    yield srv
    srv.stop()
    problems = srv.problems()
    assert not problems, "; ".join(problems) + "\n--- stderr ---\n" + srv.stderr
