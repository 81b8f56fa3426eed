"""The application behind tests/tls (served with -tls or -tls-cert/-tls-key).

  GET  /               "hello <wsgi.url_scheme>"
  POST /echo           "<body length> <sha256 of the body>"
  GET  /big?mib=N      N MiB (default 10) of PATTERN repeated, with
       &mode=chunks    Content-Length, yielded 64 KiB at a time (default)
       &mode=one       as one body item (one 10 MiB write)
       &mode=stream    yielded 64 KiB at a time without Content-Length (chunked)
  GET  /file?path=P    the file P through wsgi.file_wrapper (the core's
       &seek=N         sendfile path), from offset N (default 0), all of it
       &half=1         or, with half=1, a Content-Length of half what is left
                       (the server must stop there)
  WebSocket, any path  echo (text stays text, binary stays binary)
  SSE /events          on_open writes the events "one", "two", "three", then
                       one of 200 KiB ("big", data "x" * 204800), then "end"
"""

import hashlib
import os
from urllib.parse import parse_qs

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)


def big_body(mib):
    """What /big sends: PATTERN repeated to mib MiB (tests recompute it)."""
    return PATTERN * (mib * 1024 * 1024 // CHUNK)


class Echo:
    def on_message(self, client, data):
        client.write(data)


class Events:
    def on_open(self, client):
        for word in ("one", "two", "three"):
            client.write(word, event="n")
        client.write("x" * 204800, event="big")
        client.write("bye", event="end")


def _text(start_response, text, status="200 OK"):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    upgrade = environ.get("rack.upgrade?")
    if upgrade == "websocket":
        environ["rack.upgrade"] = Echo()
        start_response("101 Switching Protocols", [])
        return []
    if upgrade == "sse":
        environ["rack.upgrade"] = Events()
        start_response("200 OK", [])
        return []
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/echo":
        body = environ["wsgi.input"].read()
        return _text(start_response, f"{len(body)} {hashlib.sha256(body).hexdigest()}")
    if path == "/big":
        mib = int(q.get("mib", "10"))
        size = mib * 1024 * 1024
        mode = q.get("mode", "chunks")
        headers = [("Content-Type", "application/octet-stream")]
        if mode != "stream":
            headers.append(("Content-Length", str(size)))
        start_response("200 OK", headers)
        if mode == "one":
            return [big_body(mib)]
        return (PATTERN for _ in range(size // CHUNK))
    if path == "/file":
        f = open(q["path"], "rb")
        seek = int(q.get("seek", "0"))
        f.seek(seek)
        headers = [("Content-Type", "application/octet-stream")]
        if q.get("half") == "1":
            left = os.fstat(f.fileno()).st_size - seek
            headers.append(("Content-Length", str(left // 2)))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f)
    return _text(start_response, "hello " + environ["wsgi.url_scheme"])
