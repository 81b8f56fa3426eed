"""WSGI app for request bodies read as they arrive (issue 18, point 3).

  /first    says "called" on stderr, reads 5 bytes with read1, answers
            them with the seconds since the app was called
  /echo     reads the body with read(n) in 64 KiB blocks, answers
            "<bytes> <sha256>"
  /slow?ms=N&block=B   reads B bytes (read1) every N ms, answers the count
            (and says "read N" on stderr every 8 MiB)
  /noread   answers at once without reading the body
  /lines    answers the number of lines (iteration)
"""

import hashlib
import sys
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    qs = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    inp = environ["wsgi.input"]
    if path == "/first":
        t0 = time.monotonic()
        sys.stderr.write("called\n")
        sys.stderr.flush()
        got = inp.read1(5)
        body = f"{got.decode()} {time.monotonic() - t0:.3f}".encode()
    elif path == "/echo":
        h = hashlib.sha256()
        n = 0
        while True:
            block = inp.read(65536)
            if not block:
                break
            n += len(block)
            h.update(block)
        body = f"{n} {h.hexdigest()}".encode()
    elif path == "/slow":
        ms, block = int(qs.get("ms", "10")), int(qs.get("block", "65536"))
        n = step = 0
        while True:
            data = inp.read1(block)
            if not data:
                break
            n += len(data)
            if n // (8 << 20) != step:  # progress, every 8 MiB
                step = n // (8 << 20)
                sys.stderr.write(f"read {n}\n")
                sys.stderr.flush()
            time.sleep(ms / 1000.0)  # the app's own pace: a slow consumer
        body = str(n).encode()
    elif path == "/lines":
        body = str(sum(1 for _ in inp)).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
