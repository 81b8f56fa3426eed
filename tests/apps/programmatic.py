"""Start the server through the programmatic API rather than the CLI:

    python tests/apps/programmatic.py [THREADS]

Iodine.listen(app, port=0, address='127.0.0.1'); Iodine.threads = THREADS;
Iodine.start() blocks until SIGINT/SIGTERM.  Needs the repo root (or an
installed iodine_py) on sys.path."""

import sys

BODY = b"programmatic hello"


def app(environ, start_response):
    body = BODY + b" multithread=%d" % bool(environ["wsgi.multithread"])
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    from iodine_py import Iodine

    Iodine.listen(app, port=0, address="127.0.0.1")
    Iodine.threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    Iodine.start()
