"""Pub/sub test app for tests/pubsub.

WebSocket (any path; query: name=NAME, sub=CHANNEL, psub=PATTERN, ready=1)
  on_open subscribes to `sub` / `psub` (direct delivery, from C), then, with
  ready=1, writes the text "ready". Messages from the peer are JSON commands,
  each answered by the text {"ack": ID, "r": RESULT} once done:
    {"op": "sub",   "ch": C, "pattern": bool, "cb": bool,
     "since": ID, "as_binary": bool, "with_id": bool}       client.subscribe
                  (with since=: r is [replayed, complete])
    {"op": "write", "data": D, "hex": bool, "event": E, "id": I, "retry": R}
                                                            client.write (r: True,
                                                            or the error's class name)
    {"op": "unsub", "ch": C, "pattern": bool}               client.unsubscribe
    {"op": "pub",   "ch": C, "msg": M, "bytes": bool, "engine": E}
                                                            client.publish
    {"op": "pubn",  "ch": C, "n": N, "prefix": P, "engine": E}
                                                            N publishes P0..P(N-1)
    {"op": "pid"}                                           r: this worker's pid
    {"op": "close"}                                         client.close()
  A callback subscription (cb) writes, per message, the text
  {"cb": [CHANNEL, MESSAGE-or-hex], "type": "str"|"bytes", "same": bool}
  ("same": the callback got this very client object; with with_id also
  "id": the message id).
  Every connection logs "ps-log NAME open|close" on stderr.

SSE (Accept: text/event-stream; query as above, plus since=ID): subscribes
  (an SSE request's Last-Event-ID resumes by default), then writes the event
  "ready" (event: ready) whose data is JSON {"pid": PID, "resume":
  [replayed, complete] or null}. With write=1 instead, writes the events of
  the JSON list in the query's `events` ([data, event, id, retry] each) and
  then "ready" with data {"errors": [error class name or null, ...]}.

Plain HTTP:
  POST /publish?ch=C[&bytes=1][&engine=local|default|NAME]   body = message
        Iodine.publish -> {"r": bool}
  POST /reach?ch=C          publish locally from C directly: {"reached": N}
                            (the number of subscriptions the message reached)
  GET  /stats               {"subs": N, "chans": N, "hist_bytes": N,
                            "hist_chans": N, "pid": PID}
  POST /thread-publish?ch=C&n=N&prefix=P   a new threading.Thread publishes
                            P0..P(N-1) with Iodine.publish; logs
                            "ps-thread done THREADNAME" when done
  GET  /global/sub?name=NAME&ch=C[&pattern=1]   Iodine.subscribe with a
                            callback recording (channel, message) under NAME
                            and logging "ps-global NAME JSON[channel, message]"
  GET  /global/unsub?ch=C[&pattern=1]
  GET  /global/log?name=NAME   the recorded [channel, message] pairs
  POST /glob/sub   JSON {"patterns": [...]}: a global pattern subscription
                   each, recording (pattern, channel) pairs
  POST /glob/pub   JSON {"channels": [...], "token": T}: publish each channel
                   once (this process only), then log "ps-glob done T"
  GET  /glob/results   the recorded [pattern, channel] pairs
  GET  /engine/attach?name=N   attach a recording engine N (created once)
  GET  /engine/detach?name=N  /engine/reset?name=N
  GET  /engine/calls?name=N    [[what, channel, pattern-or-message], ...]
  GET  /engine/default[?set=N|cluster|process|none]   {"default": NAME}
  POST /redis/cmd   JSON list of args: Iodine.PubSub.default.cmd(*args)
  GET  /redis/state {"connected": bool, "queued": N}

Engine from the environment (ps_redis-style setups): PS_REDIS_URL makes
Iodine.PubSub.default = Iodine.PubSub.Redis(PS_REDIS_URL, queue_size=
$PS_QUEUE_SIZE, backoff_max=$PS_BACKOFF_MAX, ping=$PS_PING).
"""

import json
import os
import threading

from iodine_py import Iodine
from iodine_py._native import lib
from ws_common import Log, json_response, query, say, text_response

LOG = Log("ps-log")
_glock = threading.Lock()
_global_log = {}
_glob_hits = []
ENGINES = {}


def _engine(name):
    if name in (None, "", "default"):
        return None
    if name == "local":
        return False
    if name == "cluster":
        return Iodine.PubSub.CLUSTER
    if name == "process":
        return Iodine.PubSub.PROCESS
    return ENGINES[name]


def _result(r):
    if isinstance(r, bytes):
        return r.decode("utf-8", "replace")
    if isinstance(r, (list, tuple)):
        return [_result(x) for x in r]
    return r


class Recorder(Iodine.PubSub.Engine):
    """An engine that records what the server tells it and delivers what is
    published through it to this process."""

    def __init__(self, name):
        self.name = name
        self.calls = []
        self.lock = threading.Lock()

    def _rec(self, what, channel, arg):
        with self.lock:
            self.calls.append([what, channel, arg])
        say(f"ps-engine {self.name} {what} {json.dumps([channel, arg])}")

    def subscribe(self, channel, pattern=False):
        self._rec("subscribe", channel, bool(pattern))
        return True

    def unsubscribe(self, channel, pattern=False):
        self._rec("unsubscribe", channel, bool(pattern))
        return True

    def publish(self, channel, message):
        self._rec("publish", channel, message if isinstance(message, str) else message.hex())
        return self.deliver(channel, message)

    def __repr__(self):
        return f"<Recorder {self.name}>"


def _engine_name(e):
    for name, eng in ENGINES.items():
        if eng is e:
            return name
    if e is Iodine.PubSub.CLUSTER:
        return "cluster"
    if e is Iodine.PubSub.PROCESS:
        return "process"
    return repr(e)


if os.environ.get("PS_REDIS_URL"):
    Iodine.PubSub.default = Iodine.PubSub.Redis(
        os.environ["PS_REDIS_URL"],
        queue_size=int(os.environ.get("PS_QUEUE_SIZE", "10000")),
        backoff_max=float(os.environ.get("PS_BACKOFF_MAX", "5")),
        ping=float(os.environ.get("PS_PING", "30")))


class Peer:
    def __init__(self, name, q):
        self.name = name
        self.q = q
        self.client = None

    def on_open(self, client):
        self.client = client
        LOG.add(self.name, "open")
        resume = None
        if "sub" in self.q:
            r = client.subscribe(self.q["sub"], since=self.q.get("since"))
            if isinstance(r, tuple):
                resume = list(r)
        if "psub" in self.q:
            client.subscribe(self.q["psub"], pattern=True)
        if client.protocol == "sse" and self.q.get("write") == "1":
            errors = []
            for data, event, ident, retry in json.loads(self.q["events"]):
                try:
                    raw = bytes.fromhex(data[4:]) if data.startswith("hex:") else data
                    client.write(raw, event=event, id=ident, retry=retry)
                    errors.append(None)
                except Exception as e:  # noqa: BLE001
                    errors.append(type(e).__name__)
            client.write(json.dumps({"errors": errors}), event="ready")
            return
        if self.q.get("ready") == "1":
            if client.protocol == "sse":
                client.write(json.dumps({"pid": os.getpid(), "resume": resume}), event="ready")
            else:
                client.write("ready")

    def _cb(self, client, channel, message, **kw):
        if isinstance(message, str):
            body, kind = message, "str"
        else:
            body, kind = message.hex(), "bytes"
        report = {"cb": [channel, body], "type": kind, "same": client is self.client}
        if "id" in kw:
            report["id"] = kw["id"]
        client.write(json.dumps(report))

    def on_message(self, client, data):
        cmd = json.loads(data)
        op = cmd["op"]
        r = None
        if op == "sub":
            try:
                r = client.subscribe(cmd["ch"], self._cb if cmd.get("cb") else None,
                                     pattern=bool(cmd.get("pattern")), since=cmd.get("since"),
                                     as_binary=cmd.get("as_binary"),
                                     with_id=bool(cmd.get("with_id")))
            except ValueError as e:
                r = f"ValueError: {e}"
            if isinstance(r, tuple):
                r = list(r)
        elif op == "unsub":
            r = client.unsubscribe(cmd["ch"], pattern=bool(cmd.get("pattern")))
        elif op == "pub":
            msg = cmd["msg"]
            if cmd.get("bytes"):
                msg = msg.encode("utf-8")
            r = client.publish(cmd["ch"], msg, _engine(cmd.get("engine")))
        elif op == "pubn":
            eng = _engine(cmd.get("engine"))
            prefix = cmd.get("prefix", "")
            r = all([client.publish(cmd["ch"], f"{prefix}{i}", eng) for i in range(cmd["n"])])
        elif op == "pid":
            r = os.getpid()
        elif op == "close":
            client.close()
            return
        client.write(json.dumps({"ack": cmd.get("id"), "r": _result(r)}))

    def on_close(self, client):
        LOG.add(self.name, "close")


def _global_cb(name):
    def cb(channel, message):
        m = message if isinstance(message, str) else {"bytes": message.hex()}
        with _glock:
            _global_log.setdefault(name, []).append([channel, m])
        say(f"ps-global {name} {json.dumps([channel, m])}")
    return cb


def _glob_cb(pattern):
    def cb(channel, message):
        if channel != "__glob_done__":
            _glob_hits.append([pattern, channel])
    return cb


def _glob_done(channel, message):
    say(f"ps-glob done {message}")


def _body(environ):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(n) if n else b""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    if environ["rack.upgrade?"]:
        environ["rack.upgrade"] = Peer(q.get("name", "anon"), q)
        start_response("200 OK", [])
        return []
    if path == "/publish":
        body = _body(environ)
        msg = body if q.get("bytes") == "1" else body.decode("utf-8")
        return json_response(start_response,
                             {"r": bool(Iodine.publish(q["ch"], msg, _engine(q.get("engine"))))})
    if path == "/reach":
        ch = q["ch"].encode("utf-8")
        body = _body(environ)
        return json_response(start_response,
                             {"reached": int(lib.ps_publish(ch, len(ch), body, len(body), 1))})
    if path == "/stats":
        return json_response(start_response, {"subs": int(lib.ps_sub_count()),
                                              "chans": int(lib.ps_channel_count()),
                                              "hist_bytes": int(lib.ps_history_bytes()),
                                              "hist_chans": int(lib.ps_history_channels()),
                                              "pid": os.getpid()})
    if path == "/thread-publish":
        ch, n, prefix = q["ch"], int(q["n"]), q.get("prefix", "")

        def run():
            for i in range(n):
                Iodine.publish(ch, f"{prefix}{i}")
            say(f"ps-thread done {threading.current_thread().name}")

        t = threading.Thread(target=run, name=f"ps-publisher-{prefix or 'x'}", daemon=True)
        t.start()
        return json_response(start_response, {"thread": t.name})
    if path == "/publish-many":
        # n distinct messages of `size` bytes each (binary), made here so the
        # test does not upload them.
        # ch=C, or chans=K: channel C0..C(K-1) in turn; engine as /publish
        # (default: local)
        n, size = int(q["n"]), int(q["size"])
        k = int(q.get("chans", "0"))
        eng = _engine(q.get("engine", "local"))
        for i in range(n):
            ch = f"{q['ch']}{i % k}" if k else q["ch"]
            Iodine.publish(ch, bytes([i % 256]) * size, eng)
        return json_response(start_response, {"r": n})
    if path == "/global/sub":
        r = Iodine.subscribe(q["ch"], _global_cb(q["name"]), pattern=q.get("pattern") == "1")
        return json_response(start_response, {"r": bool(r)})
    if path == "/global/unsub":
        r = Iodine.unsubscribe(q["ch"], pattern=q.get("pattern") == "1")
        return json_response(start_response, {"r": bool(r)})
    if path == "/global/log":
        with _glock:
            return json_response(start_response, list(_global_log.get(q["name"], [])))
    if path == "/glob/sub":
        patterns = json.loads(_body(environ))["patterns"]
        Iodine.subscribe("__glob_done__", _glob_done)
        for p in patterns:
            Iodine.subscribe(p, _glob_cb(p), pattern=True)
        return json_response(start_response, {"r": len(patterns)})
    if path == "/glob/pub":
        req = json.loads(_body(environ))
        del _glob_hits[:]
        for c in req["channels"]:
            Iodine.publish(c, "x", engine=False)
        Iodine.publish("__glob_done__", req["token"], engine=False)
        return json_response(start_response, {"r": len(req["channels"])})
    if path == "/glob/results":
        return json_response(start_response, list(_glob_hits))
    if path.startswith("/engine/"):
        what = path[len("/engine/"):]
        name = q.get("name")
        if what == "attach":
            eng = ENGINES.setdefault(name, Recorder(name))
            Iodine.PubSub.attach(eng)
        elif what == "detach":
            Iodine.PubSub.detach(ENGINES[name])
        elif what == "reset":
            Iodine.PubSub.reset(ENGINES[name])
        elif what == "calls":
            eng = ENGINES[name]
            with eng.lock:
                return json_response(start_response, list(eng.calls))
        elif what == "default":
            if "set" in q:
                s = q["set"]
                if s == "none":
                    Iodine.PubSub.default = None
                elif s in ("cluster", "process"):
                    Iodine.PubSub.default = _engine(s)
                else:
                    Iodine.PubSub.default = ENGINES.setdefault(s, Recorder(s))
        elif what == "list":
            return json_response(start_response, [_engine_name(e) for e in Iodine.PubSub.engines])
        return json_response(start_response, {"default": _engine_name(Iodine.PubSub.default)})
    if path == "/redis/cmd":  # waits for the reply: needs -t 2 or more
        args = json.loads(_body(environ))
        try:
            r = _result(Iodine.PubSub.default.cmd_wait(*args, timeout=10))
        except Exception as e:  # the error reply, as the client sees it
            r = {"error": f"{type(e).__name__}: {e}"}
        return json_response(start_response, {"r": r})
    if path == "/redis/state":
        e = Iodine.PubSub.default
        return json_response(start_response, {"connected": bool(getattr(e, "connected", False)),
                                              "queued": int(getattr(e, "queued", 0))})
    return text_response(start_response, "ok")
