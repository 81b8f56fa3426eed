"""Accept a WebSocket or an EventSource from inside a framework's view.

The server's side of the contract (SPEC-WebSocket.md) is two environ keys:
it sets ``environ['rack.upgrade?']`` to ``'websocket'``, ``'sse'`` or
``None``, and the application answers by storing a callback object in
``environ['rack.upgrade']`` and returning a response with a status under
300. The server then ignores that response's body (and its Content-Type and
Content-Length) and hands the connection to the callback object.

Frameworks build the response themselves, so the one thing an application
needs is "set the key, give me something this framework accepts as a
response". That is :func:`upgrade`::

    # Flask (Werkzeug routes handshakes only to websocket=True rules)
    @app.route("/ws", websocket=True)
    def ws():
        return iodine_py.upgrade(request, Echo())

    # Django
    def ws(request):
        return iodine_py.upgrade(request, Echo())

    # Falcon: pass resp, the return value is not needed
    def on_get(self, req, resp):
        iodine_py.upgrade(req, Ticker(), resp)

    # plain WSGI: the result is itself a WSGI application
    def app(environ, start_response):
        return iodine_py.upgrade(environ, Echo())(environ, start_response)

A request that is not an upgrade of an accepted kind gets ``400 Bad
Request`` with a one-line explanation, and the callback object is not
installed. This module imports no framework unless the request object
passed in comes from it, and touches nothing of the server: it also works
(by refusing) under a server without the upgrade extension.
"""
from __future__ import annotations

from typing import (Any, Callable, Collection, Iterable, List, Literal, Mapping,
                    MutableMapping, Optional, Tuple, TypeVar, overload)

__all__ = ["upgrade", "upgrade_type", "environ_of", "UpgradeResponse", "UpgradeKind",
           "UPGRADE_QUERY", "UPGRADE_KEY"]

#: What ``rack.upgrade?`` may hold, besides None.
UpgradeKind = Literal["websocket", "sse"]

#: The environ key the server sets (what the client asked for).
UPGRADE_QUERY = "rack.upgrade?"
#: The environ key the application sets (the callback object).
UPGRADE_KEY = "rack.upgrade"

Headers = Iterable[Tuple[str, str]]
StartResponse = Callable[..., Any]
R = TypeVar("R")

_STATUS = {
    "websocket": (101, "101 Switching Protocols"),
    "sse": (200, "200 OK"),
}
_REFUSED = (400, "400 Bad Request")


def environ_of(request: Any) -> MutableMapping[str, Any]:
    """The WSGI environ of `request`: the environ itself (a dict), or a
    framework request object that carries it as ``.environ`` (Werkzeug and
    Flask, Django's WSGIRequest) or ``.env`` (Falcon)."""
    if isinstance(request, MutableMapping):
        return request
    for name in ("environ", "env"):
        env = getattr(request, name, None)
        if isinstance(env, MutableMapping):
            return env
    raise TypeError(
        f"expected a WSGI environ or a request object with .environ or .env, "
        f"not {type(request).__name__}")


def upgrade_type(request: Any) -> Optional[UpgradeKind]:
    """``'websocket'``, ``'sse'`` or ``None``: what the client asked to
    upgrade to, as the server detected it. `request` is the environ or a
    framework request object (see :func:`environ_of`). ``None`` also under
    a server that does not implement the upgrade extension."""
    kind = environ_of(request).get(UPGRADE_QUERY)
    if kind == "websocket":
        return "websocket"
    if kind == "sse":
        return "sse"
    return None


class UpgradeResponse:
    """An empty response as a tiny WSGI application.

    Flask and other Werkzeug-based frameworks accept a WSGI callable as a
    view's return value; a plain WSGI app calls it with its own
    ``(environ, start_response)``. Once the connection is upgraded the
    server sends none of the body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: str, headers: Optional[Headers] = None,
                 body: bytes = b"") -> None:
        self.status = status
        self.headers: List[Tuple[str, str]] = list(headers or ())
        self.body = body

    @property
    def status_code(self) -> int:
        return int(self.status[:3])

    def __call__(self, environ: Mapping[str, Any], start_response: StartResponse
                 ) -> List[bytes]:
        headers = list(self.headers)
        if self.body:
            headers.append(("Content-Length", str(len(self.body))))
        start_response(self.status, headers)
        return [self.body] if self.body else []

    def __repr__(self) -> str:
        return f"<UpgradeResponse {self.status!r}>"


def _is_django_request(request: Any) -> bool:
    if isinstance(request, Mapping):
        return False
    return any(cls.__module__.startswith("django.") for cls in type(request).__mro__)


def _refusal_text(protocols: Collection[str]) -> bytes:
    names = {"websocket": "a WebSocket", "sse": "an EventSource (text/event-stream)"}
    wanted = " or ".join(names.get(p, repr(p)) for p in protocols) or "an upgrade"
    return f"This address expects {wanted} request.\n".encode("utf-8")


def _shape(response: Any, code: int, status: str, body: Optional[bytes],
           headers: List[Tuple[str, str]]) -> None:
    """Set status, body (when refusing) and headers on a framework's own
    response object: Django's HttpResponse, Werkzeug's Response, Falcon's
    Response or an UpgradeResponse."""
    if isinstance(response, UpgradeResponse):
        response.status = status
        response.headers.extend(headers)
        if body is not None:
            response.body = body
            response.headers.append(("Content-Type", "text/plain; charset=utf-8"))
        return
    if hasattr(response, "set_header"):  # Falcon (a str status works in every version)
        response.status = status
        if body is not None:
            response.content_type = "text/plain; charset=utf-8"
            if hasattr(type(response), "text"):
                response.text = body.decode("utf-8")
            else:  # Falcon 2
                response.body = body
        for name, value in headers:
            response.append_header(name, value)
        return
    if hasattr(response, "status_code"):  # Django, Werkzeug
        response.status_code = code
        if body is not None:
            if hasattr(response, "set_data"):  # Werkzeug
                response.set_data(body)
            else:  # Django
                response.content = body
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
        for name, value in headers:
            response.headers[name] = value
        return
    raise TypeError(f"cannot set the status of a {type(response).__name__}")


@overload
def upgrade(request: Any, handler: object, response: R, *,
            protocols: Collection[str] = ..., headers: Optional[Headers] = ...) -> R: ...


@overload
def upgrade(request: MutableMapping[str, Any], handler: object, response: None = ..., *,
            protocols: Collection[str] = ..., headers: Optional[Headers] = ...
            ) -> UpgradeResponse: ...


@overload
def upgrade(request: Any, handler: object, response: None = ..., *,
            protocols: Collection[str] = ..., headers: Optional[Headers] = ...) -> Any: ...


def upgrade(request: Any, handler: object, response: Any = None, *,
            protocols: Collection[str] = ("websocket", "sse"),
            headers: Optional[Headers] = None) -> Any:
    """Accept this request's WebSocket or EventSource with `handler` as its
    callback object, and return a response for the framework to return.

    `request`: the WSGI environ, or the framework's request object (Flask's
    ``request``, Django's ``request``, Falcon's ``req``).

    `handler`: the callback object (an instance, a class instantiated per
    connection, or a module), with any of on_open, on_message, on_drained,
    on_shutdown, on_close.

    `response`: the framework's own response object, when it has one to
    fill in (Falcon's ``resp``; or any Django/Werkzeug response): its status
    is set and it is returned. Without it the result is a Django
    ``HttpResponse`` for a Django request, and otherwise an
    :class:`UpgradeResponse`, which Flask returns as it is and a plain WSGI
    app calls.

    `protocols`: the kinds this address accepts, by default both.

    `headers`: extra response headers, e.g. ``[("Sec-WebSocket-Protocol",
    "chat")]`` to agree on a subprotocol the client offered, or cookies.

    When the request is an upgrade of an accepted kind, the callback object
    is stored in ``environ['rack.upgrade']`` and the response's status is
    101 (WebSocket) or 200 (SSE). Otherwise nothing is stored and the
    response is ``400 Bad Request`` with a short text body."""
    env = environ_of(request)
    kind = upgrade_type(env)
    extra = list(headers or ())
    if kind is not None and kind in protocols:
        env[UPGRADE_KEY] = handler
        code, status = _STATUS[kind]
        body: Optional[bytes] = None
    else:
        code, status = _REFUSED
        body = _refusal_text(protocols)
    if response is None:
        if _is_django_request(request):
            # optional dependency: only a Django request gets here, so Django is there
            from django.http import HttpResponse

            response = HttpResponse(status=code)
        else:
            response = UpgradeResponse(status)
    _shape(response, code, status, body, extra)
    return response

