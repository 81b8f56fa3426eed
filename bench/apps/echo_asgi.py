"""WebSocket echo ASGI app used by bench/ws.sh (uvicorn with websockets / websockets-sansio /
wsproto, and granian --interface asgi).

Behaves like examples/echo.py (iodine, WSGI + rack.upgrade): every message comes back unchanged,
text stays text and binary stays binary. Any plain HTTP request gets a short 200 text answer.
"""

BODY = b"Connect with a WebSocket (echo).\n"
HTTP_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}
HTTP_BODY = {"type": "http.response.body", "body": BODY}
ACCEPT = {"type": "websocket.accept"}


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "websocket":
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send(ACCEPT)
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
            elif message["type"] == "websocket.disconnect":
                return
    elif kind == "http":
        await send(HTTP_START)
        await send(HTTP_BODY)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
