"""Test app for the Redis engine's fault tests (tests/pubsub/test_redis_faults.py).

Run with ``-r redis://...`` (the CLI engine) or RA_REDIS_URL (the engine
built here, with RA_PING / RA_QUEUE_SIZE / RA_TIMEOUT).

WebSocket (any path; query ch=CHANNEL, default "seq"): on_open subscribes
  to the channel (delivery from C, no Python per message) and writes its
  process id as the first text message.

Plain HTTP:
  GET  /pid                       this worker's process id
  GET  /pub?ch=C&msg=M            Iodine.publish in the request handler: {"r": bool}
  POST /run?tag=T&rate=R&n=N      a thread publishes "T:0" ... "T:(N-1)" to
                                  "seq" at R per second; {"ok": true}
  GET  /run-result?tag=T          {"done": bool, "sent": k, "refused": k}
                                  (404 in a worker that runs no such tag)
  POST /cmd-cb?token=T            JSON args: cmd(*args, callback=...) from
                                  the handler; the reply is kept under T
  GET  /cb-result?token=T         {"have": bool, "r": reply}
  POST /cmd-wait?timeout=S        JSON args: cmd_wait(*args): {"r": reply} or
                                  {"error": "Type: text"}
  GET  /stats                     the engine's counters
  GET  /engine?url=URL            make a Redis engine the default now, while serving
  GET  /cmd-seq?n=N               N x cmd("INCR", "seq-n", callback=...) in a row; the
                                  callbacks append the replies to a list
  GET  /cmd-seq-result            that list
"""

import json
import os
import threading
import time

from iodine_py import Iodine
from ws_common import json_response, query, text_response

if os.environ.get("RA_REDIS_URL"):
    Iodine.PubSub.default = Iodine.PubSub.Redis(
        os.environ["RA_REDIS_URL"],
        ping=float(os.environ.get("RA_PING", "30")),
        queue_size=int(os.environ.get("RA_QUEUE_SIZE", "10000")),
        timeout=float(os.environ["RA_TIMEOUT"]) if os.environ.get("RA_TIMEOUT") else None)

_runs = {}
_seq = []
_cb = {}
_lock = threading.Lock()


def _plain(r):
    if isinstance(r, bytes):
        return r.decode("utf-8", "replace")
    if isinstance(r, list):
        return [_plain(x) for x in r]
    if isinstance(r, Exception):
        return {"error": f"{type(r).__name__}: {r}"}
    return r


class Sub:
    def __init__(self, ch):
        self.ch = ch

    def on_open(self, client):
        client.subscribe(self.ch)
        client.write(str(os.getpid()))


def _runner(tag, rate, n):
    st = _runs[tag]
    start = time.monotonic()
    for i in range(n):
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        if Iodine.publish("seq", f"{tag}:{i}"):
            st["sent"] += 1
        else:
            st["refused"] += 1
    st["done"] = True


def _body(environ):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(n) if n else b""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    if environ["rack.upgrade?"]:
        environ["rack.upgrade"] = Sub(q.get("ch", "seq"))
        start_response("200 OK", [])
        return []
    if path == "/pid":
        return json_response(start_response, {"pid": os.getpid()})
    if path == "/pub":
        return json_response(start_response, {"r": bool(Iodine.publish(q["ch"], q["msg"]))})
    if path == "/run":
        tag = q["tag"]
        _runs[tag] = {"done": False, "sent": 0, "refused": 0}
        threading.Thread(target=_runner, args=(tag, float(q["rate"]), int(q["n"])),
                         daemon=True).start()
        return json_response(start_response, {"ok": True, "pid": os.getpid()})
    if path == "/run-result":
        st = _runs.get(q["tag"])
        if st is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return []
        return json_response(start_response, st)
    if path == "/cmd-cb":
        token = q["token"]

        def done(reply, token=token):
            with _lock:
                _cb[token] = _plain(reply)

        args = json.loads(_body(environ))
        return json_response(start_response,
                             {"r": Iodine.PubSub.default.cmd(*args, callback=done)})
    if path == "/cb-result":
        with _lock:
            have = q["token"] in _cb
            r = _cb.get(q["token"])
        return json_response(start_response, {"have": have, "r": r})
    if path == "/cmd-wait":
        args = json.loads(_body(environ))
        try:
            r = _plain(Iodine.PubSub.default.cmd_wait(*args, timeout=float(q.get("timeout", 5))))
        except Exception as e:
            return json_response(start_response, {"error": f"{type(e).__name__}: {e}"})
        return json_response(start_response, {"r": r})
    if path == "/cmd-seq":
        def note(reply):
            time.sleep(0.001)  # a slow callback: another thread could overtake it
            _seq.append(reply)

        ok = all(Iodine.PubSub.default.cmd("INCR", "seq-n", callback=note)
                 for _ in range(int(q["n"])))
        return json_response(start_response, {"r": ok})
    if path == "/cmd-seq-result":
        return json_response(start_response, list(_seq))
    if path == "/engine":
        Iodine.PubSub.default = Iodine.PubSub.Redis(q["url"])
        return json_response(start_response, {"ok": True})
    if path == "/stats":
        return json_response(start_response, Iodine.PubSub.default.stats())
    return text_response(start_response, "ok")
