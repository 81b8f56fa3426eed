"""Hello-world ASGI app used by bench/http.sh (uvicorn).

Must send exactly what apps/hello_wsgi.py sends: status 200, the same two
headers and the same 11-byte body.
"""

BODY = b"Hello World"
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode()),
]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
RESPONSE = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(START)
    await send(RESPONSE)
