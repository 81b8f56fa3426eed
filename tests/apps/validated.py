"""Apps wrapped in wsgiref.validate.validator: any PEP 3333 violation by the
server (environ types, input/errors streams, iteration after close, close()
never called) raises AssertionError or prints a warning, which the tests look
for on stderr.

Paths: /simple, /stream (generator), /body (reads with read(n), readline(),
readlines()), /write (legacy write()), /empty (204), /errors (wsgi.errors).
"""

import hashlib
from wsgiref.validate import validator

SIMPLE = b"simple body"
STREAM_PARTS = [b"s1,", b"s2,", b"s3"]
WRITE_PARTS = [b"w1,", b"w2"]


def _inner(environ, start_response):
    path = environ["PATH_INFO"]
    plain = [("Content-Type", "text/plain")]

    if path == "/simple":
        start_response("200 OK", plain + [("Content-Length", str(len(SIMPLE)))])
        return [SIMPLE]

    if path == "/stream":
        start_response("200 OK", plain)
        return (p for p in STREAM_PARTS)

    if path == "/body":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        inp = environ["wsgi.input"]
        first_line = inp.readline()
        half = inp.read(max(0, (length - len(first_line)) // 2))
        rest = b"".join(inp.readlines())
        body = first_line + half + rest
        digest = hashlib.sha256(body).hexdigest().encode("ascii")
        start_response("200 OK", plain + [("Content-Length", str(len(digest)))])
        return [digest]

    if path == "/write":
        write = start_response("200 OK", plain)
        for p in WRITE_PARTS:
            write(p)
        return []

    if path == "/empty":
        start_response("204 No Content", [])
        return []

    if path == "/errors":
        err = environ["wsgi.errors"]
        err.write("validated-errors-write\n")
        err.writelines(["validated-errors-writelines\n"])
        err.flush()
        start_response("200 OK", plain + [("Content-Length", "2")])
        return [b"ok"]

    start_response("404 Not Found", plain + [("Content-Length", "0")])
    return []


app = validator(_inner)
