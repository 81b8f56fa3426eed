"""WSGI app exercising PEP 3333's start_response, write() and file_wrapper rules.

Paths:
  /raise-before          raises before start_response            -> 500
  /raise-after-start     start_response, then raises before returning -> 500
  /exc-info-replace      start_response(200, X-First), then in an except:
                         start_response(503, X-Second, exc_info)  -> 503
  /exc-info-after-sent   yields one chunk, then calls start_response with
                         exc_info: the server must re-raise; the app prints
                         "exc-info-reraised" and lets it propagate
  /start-twice           start_response twice without exc_info (a fatal
                         error per PEP 3333) -> the server raises -> 500
  /write                 write(b"one,"), write(b"two,"), return [b"three"]
  /write-length          the same with the total Content-Length declared
  /write-only            write() calls, returns []
  /file?path=P&length=1  wsgi.file_wrapper(open(P, 'rb'), 8192)
                         (Content-Length from the file size when length=1)
  /yield-str             yields a str instead of bytes (an app error)
  /return-none           returns None instead of an iterable (an app error)
  /header-injection      a header value containing CRLF + another header
  /short-body            declares Content-Length 10, yields 5 bytes
  /long-body             declares Content-Length 5, yields 10 bytes
  /filelike?size=N       wsgi.file_wrapper over a file-like object with read()
                         and close() but no fileno(); prints
                         "filelike-closed" when closed
"""

import io
import os
import sys
from urllib.parse import parse_qs

WRITE_PARTS = [b"one,", b"two,"]
RETURN_PART = b"three"


def say(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def pattern_bytes(size):
    unit = bytes(range(256))
    return (unit * (size // 256 + 1))[:size]


class FileLike:
    """read() and close() only: file_wrapper must not need fileno()."""

    def __init__(self, data):
        self._io = io.BytesIO(data)

    def read(self, n=-1):
        return self._io.read(n)

    def close(self):
        say("filelike-closed")
        self._io.close()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    qs = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    plain = [("Content-Type", "text/plain")]

    if path == "/raise-before":
        raise RuntimeError("raised-before-start-response")

    if path == "/raise-after-start":
        start_response("200 OK", plain)
        raise RuntimeError("raised-after-start-response")

    if path == "/exc-info-replace":
        start_response("200 OK", plain + [("X-First", "1")])
        try:
            raise ValueError("replace-me")
        except ValueError:
            start_response("503 Service Unavailable", plain + [("X-Second", "1")],
                           sys.exc_info())
        return [b"replaced"]

    if path == "/exc-info-after-sent":
        def body():
            yield b"partial"
            try:
                raise ValueError("late-error")
            except ValueError:
                try:
                    start_response("500 Internal Server Error", plain, sys.exc_info())
                except ValueError:
                    say("exc-info-reraised")
                    raise
                say("exc-info-NOT-reraised")
                yield b"should-not-be-sent"

        start_response("200 OK", plain)
        return body()

    if path == "/start-twice":
        start_response("200 OK", plain)
        start_response("201 Created", plain)
        return [b"twice"]

    if path in ("/write", "/write-length", "/write-only"):
        headers = list(plain)
        tail = [] if path == "/write-only" else [RETURN_PART]
        if path == "/write-length":
            total = sum(map(len, WRITE_PARTS)) + sum(map(len, tail))
            headers.append(("Content-Length", str(total)))
        write = start_response("200 OK", headers)
        for part in WRITE_PARTS:
            write(part)
        return tail

    if path == "/yield-str":
        start_response("200 OK", plain)
        return ["a str, not bytes"]

    if path == "/return-none":
        start_response("200 OK", plain)
        return None

    if path == "/header-injection":
        start_response("200 OK", plain + [("X-Injected", "a\r\nSet-Cookie: injected=1")])
        return [b"injection"]

    if path == "/short-body":
        start_response("200 OK", plain + [("Content-Length", "10")])
        return [b"12345"]

    if path == "/long-body":
        start_response("200 OK", plain + [("Content-Length", "5")])
        return [b"12345", b"EXTRA"]

    if path == "/file":
        fpath = qs["path"]
        headers = [("Content-Type", "application/octet-stream")]
        if qs.get("length") == "1":
            headers.append(("Content-Length", str(os.path.getsize(fpath))))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](open(fpath, "rb"), 8192)

    if path == "/filelike":
        size = int(qs["size"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](FileLike(pattern_bytes(size)), 4096)

    body = b"ok"
    start_response("200 OK", plain + [("Content-Length", str(len(body)))])
    return [body]
