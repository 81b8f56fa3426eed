"""A general-purpose WSGI app for the HTTP/1.1 and PEP 3333 tests.

Paths:
  /echo              the request body (read with read()), Content-Type echoed
  /sha256            {"sha256", "length"} of the body read with read(65536)
  /read-n?n=K        the body read with read(K) until b'': piece sizes + body
  /read-past?n=K     read(K) twice where K > CONTENT_LENGTH: both lengths
  /readline          the body split with repeated readline()
  /readline-size?n=K the body split with repeated readline(K)
  /readlines         the body split with readlines()
  /iter              the body split by iterating over wsgi.input
  /mixed             readline(), then read(5), then readlines()
  /ignore-body       answers without reading the body at all
  /environ[/...]     a JSON description of the environ (types and values)
  /stream?n=N        N chunks from a generator, no Content-Length
  /stream-length?n=N N chunks from a generator, Content-Length given
  /status/CODE       an empty response with that status
  anything else      "METHOD PATH_INFO?QUERY_STRING" with a Content-Length
JSON bodies encode byte strings as latin-1 text.
"""

import hashlib
import json
from urllib.parse import parse_qs


def _qs(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode("ascii")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _text(start_response, body, status="200 OK", ctype="text/plain"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _l1(data):
    return data.decode("latin-1")


def stream_chunk(i):
    return b"chunk-%d;" % i


def describe(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, tuple):
        return [describe(v) for v in value]
    return repr(value)


def environ_report(environ):
    inp = environ.get("wsgi.input")
    err = environ.get("wsgi.errors")
    qs = _qs(environ)
    if "errors" in qs:
        err.write(qs["errors"] + "\n")
        err.flush()
    report = {
        "environ_type": type(environ).__name__,
        "keys": {k: {"type": type(v).__name__, "value": describe(v)}
                 for k, v in environ.items()},
        "input_attrs": {a: hasattr(inp, a) for a in ("read", "readline", "readlines", "__iter__")},
        "errors_attrs": {a: hasattr(err, a) for a in ("write", "writelines", "flush")},
        "file_wrapper_callable": callable(environ.get("wsgi.file_wrapper")),
    }
    body = inp.read() if inp is not None else b""
    report["body"] = _l1(body)
    report["body_type"] = type(body).__name__
    return report


def app(environ, start_response):
    path = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    qs = _qs(environ)

    if path == "/echo":
        body = inp.read()
        start_response("200 OK", [
            ("Content-Type", environ.get("CONTENT_TYPE") or "application/octet-stream"),
            ("Content-Length", str(len(body))),
            ("X-Request-Method", environ["REQUEST_METHOD"]),
        ])
        return [body]

    if path == "/sha256":
        h = hashlib.sha256()
        n = 0
        while True:
            piece = inp.read(65536)
            if not piece:
                break
            h.update(piece)
            n += len(piece)
        return _json(start_response, {"sha256": h.hexdigest(), "length": n})

    if path == "/read-n":
        k = int(qs.get("n", "7"))
        pieces = []
        while True:
            piece = inp.read(k)
            if not piece:
                break
            pieces.append(piece)
        return _json(start_response, {"sizes": [len(p) for p in pieces],
                                      "types": sorted({type(p).__name__ for p in pieces}),
                                      "body": _l1(b"".join(pieces))})

    if path == "/read-past":
        k = int(qs["n"])
        first = inp.read(k)
        second = inp.read(k)
        return _json(start_response, {"first": _l1(first), "second": _l1(second)})

    if path == "/readline":
        lines = []
        while True:
            line = inp.readline()
            if not line:
                break
            lines.append(_l1(line))
        return _json(start_response, {"lines": lines})

    if path == "/readline-size":
        k = int(qs["n"])
        lines = []
        while True:
            line = inp.readline(k)
            if not line:
                break
            lines.append(_l1(line))
        return _json(start_response, {"lines": lines})

    if path == "/readlines":
        lines = inp.readlines()
        return _json(start_response, {"lines": [_l1(x) for x in lines],
                                      "type": type(lines).__name__})

    if path == "/iter":
        return _json(start_response, {"lines": [_l1(x) for x in inp]})

    if path == "/mixed":
        first = inp.readline()
        five = inp.read(5)
        rest = inp.readlines()
        return _json(start_response, {"first": _l1(first), "five": _l1(five),
                                      "rest": [_l1(x) for x in rest]})

    if path == "/ignore-body":
        return _text(start_response, b"ignored")

    if path == "/environ" or path.startswith("/environ/"):
        return _json(start_response, environ_report(environ))

    if path == "/stream":
        n = int(qs.get("n", "3"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (stream_chunk(i) for i in range(n))

    if path == "/stream-length":
        n = int(qs.get("n", "3"))
        total = sum(len(stream_chunk(i)) for i in range(n))
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(total))])
        return (stream_chunk(i) for i in range(n))

    if path.startswith("/status/"):
        code = int(path[len("/status/"):])
        headers = [] if code in (204, 304) else [("Content-Type", "text/plain")]
        start_response("%d Status" % code, headers)
        return iter([])

    target = path + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
    body = ("%s %s" % (environ["REQUEST_METHOD"], target)).encode("latin-1")
    return _text(start_response, body)


def default_body(method, target):
    """What the catch-all route answers (for tests to compute expectations)."""
    return ("%s %s" % (method, target)).encode("latin-1")
