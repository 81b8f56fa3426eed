"""Pub/sub fan-out app for bench/pubsub.sh: plain ASGI with an in-process broadcast (for uvicorn
with --ws websockets or websockets-sansio).

    /sub   a subscriber: its ASGI `send` joins the set SUBSCRIBERS until it disconnects
    /pub   the publisher: each message it sends goes to every subscriber, as it is (text stays
           text): by default one `await send(...)` after the other in a loop; with
           PUBSUB_GATHER=1, all at once with asyncio.gather
    other  echo (the readiness probe)

A subscriber whose send fails is dropped from the set. The publisher handles its next message
only after the broadcast of the previous one returned, like an app that awaits its broadcast.
"""

import asyncio
import os

SUBSCRIBERS = set()
GATHER = os.environ.get("PUBSUB_GATHER") == "1"
ACCEPT = {"type": "websocket.accept"}
BODY = b"Connect with a WebSocket to /sub (subscriber) or /pub (publisher).\n"


async def _send_one(send, out):
    try:
        await send(out)
    except Exception:
        SUBSCRIBERS.discard(send)


async def broadcast(out):
    if GATHER:
        await asyncio.gather(*[_send_one(s, out) for s in list(SUBSCRIBERS)])
        return
    for send in list(SUBSCRIBERS):
        try:
            await send(out)
        except Exception:
            SUBSCRIBERS.discard(send)


async def websocket(scope, receive, send):
    if (await receive())["type"] != "websocket.connect":
        return
    await send(ACCEPT)
    path = scope["path"]
    if path == "/sub":
        SUBSCRIBERS.add(send)
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            SUBSCRIBERS.discard(send)
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message["type"] != "websocket.receive":
            continue
        text = message.get("text")
        out = ({"type": "websocket.send", "text": text} if text is not None
               else {"type": "websocket.send", "bytes": message.get("bytes") or b""})
        if path == "/pub":
            await broadcast(out)
        else:
            await send(out)


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "websocket":
        await websocket(scope, receive, send)
    elif kind == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", str(len(BODY)).encode())]})
        await send({"type": "http.response.body", "body": BODY})
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
