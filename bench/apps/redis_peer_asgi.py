"""The peer for bench/redis.sh: uvicorn + websockets with a redis-py asyncio broadcast, the
way `broadcaster` (encode/broadcaster's Redis backend) does it: one PUBLISH per message on a
shared connection, one SUBSCRIBE connection per process whose reader task fans each message
out to the local WebSocket subscribers' queues.

Run: REDIS_URL=redis://127.0.0.1:RPORT/0 uvicorn redis_peer_asgi:app --app-dir bench/apps \
         --host 127.0.0.1 --port PORT --ws websockets --loop uvloop --http httptools

Same routes as bench/apps/redis_wsgi.py: ws /sub, ws /pub, GET /flood?rate=R&secs=S&size=B,
GET /flood-result, GET / (hello).
"""

import asyncio
import json
import os
import time

import redis.asyncio as aioredis

CHANNEL = "bench"
URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Broadcast:
    def __init__(self):
        self.pub = None
        self.queues = set()
        self.reader = None

    async def start(self):
        if self.pub is not None:
            return
        self.pub = aioredis.from_url(URL)
        sub = aioredis.from_url(URL).pubsub()
        await sub.subscribe(CHANNEL)
        self.reader = asyncio.ensure_future(self._read(sub))

    async def _read(self, sub):
        async for m in sub.listen():
            if m["type"] != "message":
                continue
            data = m["data"].decode()
            for q in list(self.queues):
                q.put_nowait(data)

    async def publish(self, msg):
        await self.pub.publish(CHANNEL, msg)


bc = Broadcast()
state = {"published": 0, "refused": 0, "running": False}


async def flood(rate, secs, size):
    pad = "x" * max(0, size - 32)
    start = time.monotonic()
    state.update(published=0, refused=0, running=True)
    n = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= secs:
            break
        per_tick = max(1, rate // 1000)
        due = min(int(elapsed * rate) + per_tick, n + 2 * per_tick)  # as in redis_wsgi.py
        while n < due:
            await bc.publish(f"{time.monotonic_ns():016x}{n:016x}{pad}")
            n += 1
            state["published"] += 1
        await asyncio.sleep(0.001)
    state["running"] = False


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await bc.start()
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        if scope["path"] == "/sub":
            q = asyncio.Queue()
            bc.queues.add(q)

            async def pump():  # broadcaster's shape: a queue per subscriber
                while True:
                    await send({"type": "websocket.send", "text": await q.get()})

            task = asyncio.ensure_future(pump())
            try:
                await receive()  # websocket.disconnect
            finally:
                task.cancel()
                bc.queues.discard(q)
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await bc.publish(m.get("text") if m.get("text") is not None else m.get("bytes"))
    path = scope["path"]
    if path == "/flood":
        q = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
        asyncio.ensure_future(flood(int(q.get("rate", "100000")), float(q.get("secs", "5")),
                                    int(q.get("size", "64"))))
        body = b'{"ok": true}'
    elif path == "/flood-result":
        body = json.dumps(dict(state, queued=0)).encode()
    else:
        body = b"Hello World!"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
