"""The smallest WSGI app: a fixed body with a Content-Length.

`other` is a second app in the same module, used to check that the
`module:attr` form picks the named attribute."""

BODY = b"Hello, World!"
OTHER_BODY = b"Hello from the other app"


def _respond(body, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    return _respond(BODY, start_response)


def other(environ, start_response):
    return _respond(OTHER_BODY, start_response)
