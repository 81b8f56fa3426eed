"""A Flask application for tests/frameworks/test_flask_views.py.

  GET  /                      text
  GET  /users/<int:uid>       JSON, with ?fields= echoed
  POST /echo-json             JSON in, JSON out (sorted keys, item count)
  POST /upload                multipart: every file's name, size and sha256
  GET  /stream                streamed: "first\\n", then waits (threading.Event,
                              at most 10 s) until POST /stream/release, then
                              "second\\n" and "third\\n"
  GET  /stream/state          "waiting" while the generator is parked, then "released"
  POST /stream/release        sets the event
  /ws                         WebSocket echo via iodine_py.upgrade(request.environ, ...);
                              agrees on the "chat" subprotocol when offered
  /events                     SSE via iodine_py.upgrade(request, ...): one event
                              "hello <name>" with id 1, then closes
  /only-ws                    iodine_py.upgrade(..., protocols=("websocket",))

Callbacks print "flask-views ws-open" etc. on stderr.
"""

import hashlib
import sys
import threading

from flask import Flask, Response, jsonify, request, stream_with_context

import iodine_py

app = Flask(__name__)

RELEASE = threading.Event()
STATE = {"stream": "idle"}


def say(line):
    sys.stderr.write(f"flask-views {line}\n")
    sys.stderr.flush()


@app.route("/")
def index():
    return "flask views index"


@app.route("/users/<int:uid>")
def user(uid):
    return jsonify(id=uid, name=f"user-{uid}", fields=request.args.getlist("fields"))


@app.route("/echo-json", methods=["POST"])
def echo_json():
    data = request.get_json(force=True)
    return jsonify(keys=sorted(data), items=len(data), data=data)


@app.route("/upload", methods=["POST"])
def upload():
    files = []
    for field, storage in request.files.items(multi=True):
        digest = hashlib.sha256()
        size = 0
        while True:
            block = storage.stream.read(65536)
            if not block:
                break
            size += len(block)
            digest.update(block)
        files.append({"field": field, "filename": storage.filename, "size": size,
                      "sha256": digest.hexdigest()})
    return jsonify(files=files, form=request.form.to_dict())


@app.route("/stream")
def stream():
    def generate():
        yield "first\n"
        STATE["stream"] = "waiting"
        released = RELEASE.wait(10)
        STATE["stream"] = "released" if released else "timed-out"
        yield "second\n"
        yield "third\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/stream/state")
def stream_state():
    return STATE["stream"]


@app.route("/stream/release", methods=["POST"])
def stream_release():
    RELEASE.set()
    return "ok"


class Echo:
    def on_open(self, client):
        say("ws-open")

    def on_message(self, client, data):
        client.write(data)

    def on_close(self, client):
        say("ws-close")


class Greeter:
    def __init__(self, name):
        self.name = name

    def on_open(self, client):
        say("sse-open")
        client.write(f"hello {self.name}", id=1)
        client.close()

    def on_close(self, client):
        say("sse-close")


# Werkzeug routes a WebSocket handshake only to rules declared with
# websocket=True (anything else gets its 400); the second rule lets a plain
# GET reach the view too, so the helper can answer it.
@app.route("/ws", websocket=True)
@app.route("/ws")
def ws():
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    headers = [("Sec-WebSocket-Protocol", "chat")] if "chat" in offered else []
    return iodine_py.upgrade(request.environ, Echo(), headers=headers)


@app.route("/events")
def events():
    return iodine_py.upgrade(request, Greeter(request.args.get("name", "anonymous")))


@app.route("/only-ws", websocket=True)
@app.route("/only-ws")
def only_ws():
    return iodine_py.upgrade(request, Echo, protocols=("websocket",))


@app.route("/kind")
def kind():
    return jsonify(kind=iodine_py.upgrade_type(request))
