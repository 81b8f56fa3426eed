"""Hello-world WSGI app used by bench/http.sh (iodine, granian, gunicorn).

Must send exactly what apps/hello_asgi.py sends: status 200, the same two
headers and the same 11-byte body.
"""

BODY = b"Hello World"
HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(BODY))),
]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


application = app
