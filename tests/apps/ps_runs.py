"""App for tests/pubsub/test_publish_runs.py: scripts of publishes, writes and
closes run inside one callback, so consecutive publishes to one channel form
the runs pubsub.c holds back and delivers in one pass.

WebSocket /sub?name=NAME&ch=A,B&pat=P (text "ready" once subscribed; direct
    delivery from C; `pat` a pattern subscription)
WebSocket /drive: each message is a JSON list of operations, run in order in
    this one on_message, then answered with the text "done":
      ["p", CHANNEL, MESSAGE]   client.publish
      ["w", NAME, MESSAGE]      client.write to subscriber NAME
      ["c", NAME]               client.close() of subscriber NAME
"""

import json
import threading

SUBS = {}
LOCK = threading.Lock()


class Sub:
    def __init__(self, name, channels, pattern):
        self.name, self.channels, self.pattern = name, channels, pattern

    def on_open(self, client):
        for ch in self.channels:
            client.subscribe(ch)
        if self.pattern:
            client.subscribe(self.pattern, pattern=True)
        with LOCK:
            SUBS[self.name] = client
        client.write("ready")

    def on_close(self, client):
        with LOCK:
            if SUBS.get(self.name) is client:
                del SUBS[self.name]


class Driver:
    def on_message(self, client, data):
        for op in json.loads(data):
            if op[0] == "p":
                client.publish(op[1], op[2])
            else:
                with LOCK:
                    target = SUBS.get(op[1])
                if target is None:
                    continue
                if op[0] == "w":
                    target.write(op[2])
                else:
                    target.close()
        client.write("done")


def app(environ, start_response):
    if environ.get("rack.upgrade?") != "websocket":
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    q = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    if environ["PATH_INFO"] == "/sub":
        chs = [c for c in q.get("ch", "").split(",") if c]
        environ["rack.upgrade"] = Sub(q["name"], chs, q.get("pat", ""))
    else:
        environ["rack.upgrade"] = Driver()
    start_response("101 Switching Protocols", [])
    return []
