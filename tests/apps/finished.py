"""WSGI app for "finished means finished" (issue 18, point 4): every
response reports on stderr when its last chunk was handed to the server
("queued TAG"), when its iterable's close() ran ("close TAG"), and, with
FINISH_HOOKS=1 in the environment, the Iodine.on_request pair ("start TAG",
"finish TAG"). A test compares those moments with what its client read.

Paths (tag from ?tag=, size from ?size= in bytes):
  /big       `size` bytes in 64 KiB chunks, no Content-Length
  /file      wsgi.file_wrapper over a temp file of `size` bytes (sendfile)
  /xsend     X-Sendfile naming that temp file; a list body
  /plain     b"ok" (the fast path's common answer)
"""

import os
import sys
import tempfile
from urllib.parse import parse_qs

from iodine_py import Iodine

BLOCK = b"y" * 65536
LAST = 16 * 1024 * 1024
_files = {}


def say(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _tag(env):
    return parse_qs(env.get("QUERY_STRING", "")).get("tag", ["untagged"])[0]


if os.environ.get("FINISH_HOOKS") == "1":
    Iodine.on_request(start=lambda env: say("start " + _tag(env)),
                      finish=lambda env: say("finish " + _tag(env)))


class Tracked:
    def __init__(self, tag, size):
        self.tag = tag
        self.size = size

    def __iter__(self):
        # all but the last LAST bytes in 64 KiB chunks, then LAST in one:
        # a chunk bigger than any socket buffer, so when "queued" is said
        # part of it must still wait in the server's own queue
        head = max(0, self.size - LAST)
        sent = 0
        while sent < head:
            block = BLOCK[: min(len(BLOCK), head - sent)]
            sent += len(block)
            yield block
        # said as the last chunk is handed over (after it, the generator
        # resumes only once the server's queue drained)
        say("queued " + self.tag)
        yield b"z" * (self.size - head)

    def close(self):
        say("close " + self.tag)


class TrackedFile:
    """A file object whose close() reports (file_wrapper passes it on)."""

    def __init__(self, path, tag):
        self.f = open(path, "rb")
        self.tag = tag

    def fileno(self):
        return self.f.fileno()

    def read(self, n=-1):
        return self.f.read(n)

    def tell(self):
        return self.f.tell()

    def seek(self, *a):
        return self.f.seek(*a)

    def close(self):
        self.f.close()
        say("close " + self.tag)


def _file(size):
    path = _files.get(size)
    if path is None:
        fd, path = tempfile.mkstemp(prefix="iodine-finished-")
        with os.fdopen(fd, "wb") as f:
            for _ in range(size // len(BLOCK)):
                f.write(BLOCK)
            f.write(BLOCK[: size % len(BLOCK)])
        _files[size] = path
    return path


def app(environ, start_response):
    qs = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    tag = qs.get("tag", "untagged")
    size = int(qs.get("size", str(32 * 1024 * 1024)))
    path = environ["PATH_INFO"]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Tracked(tag, size)
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        say("queued " + tag)
        return environ["wsgi.file_wrapper"](TrackedFile(_file(size), tag))
    if path == "/xsend":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Sendfile", _file(size))])
        say("queued " + tag)
        return [b""]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
