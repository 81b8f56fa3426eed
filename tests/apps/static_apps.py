"""The application behind the static-file tests (tests/static/).

`app` answers every request the C core hands it with
``app <METHOD> <PATH_INFO>`` (so a test can tell an app answer from a static
one), except ``/xsend``, which answers with an ``X-Sendfile`` header:

    /xsend?path=/abs/file[&status=203 Whatever][&stream=1]

path is the file to send (percent-encoded), status the status line to use
(default "200 OK"), and stream=1 makes the body a generator of several
chunks instead of one list item (either way the body must never be sent).

Run through the programmatic API:

    python tests/apps/static_apps.py DIR [THREADS]

is ``Iodine.listen(app, port=0, address='127.0.0.1', public=DIR)``."""

import sys
from urllib.parse import parse_qs

APP_BODY_FOR_XSEND = b"THE APP'S OWN BODY, WHICH X-SENDFILE DROPS"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/xsend":
        q = parse_qs(environ.get("QUERY_STRING", ""))
        status = q.get("status", ["200 OK"])[0]
        start_response(status, [("Content-Type", "application/x-test"),
                                ("X-Sendfile", q["path"][0]),
                                ("X-From-App", "yes"),
                                ("Content-Length", str(len(APP_BODY_FOR_XSEND)))])
        if q.get("stream"):
            def chunks():
                for _ in range(3):
                    yield APP_BODY_FOR_XSEND
            return chunks()
        return [APP_BODY_FOR_XSEND]
    body = f"app {environ['REQUEST_METHOD']} {path}".encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    from iodine_py import Iodine

    Iodine.listen(app, port=0, address="127.0.0.1", public=sys.argv[1])
    Iodine.threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    Iodine.start()
