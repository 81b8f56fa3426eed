"""A Falcon application for tests/frameworks/test_falcon_app.py.

  GET  /notes            JSON list of the notes
  POST /notes            JSON {"text": ...} in; 201 and the stored note out
  GET  /notes/{id}       one note, or 404
  GET  /feed             SSE via iodine_py.upgrade(req, Feed(), resp): replays the
                         notes as "note" events (id = note id), then every new
                         note as it is posted (pub/sub channel "notes")
  GET  /feed-strict      same, with resp passed and protocols=("sse",): a plain GET
                         gets the helper's 400

Callbacks print "falcon-app sse-open" / "sse-close" on stderr.
"""

import json
import sys
import threading

import falcon

import iodine_py
from iodine_py import Iodine

NOTES = []
LOCK = threading.Lock()


def say(line):
    sys.stderr.write(f"falcon-app {line}\n")
    sys.stderr.flush()


class Notes:
    def on_get(self, req, resp):
        with LOCK:
            resp.media = {"notes": list(NOTES)}

    def on_post(self, req, resp):
        data = req.get_media()
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise falcon.HTTPBadRequest(title="expected {\"text\": \"...\"}")
        with LOCK:
            note = {"id": len(NOTES) + 1, "text": data["text"]}
            NOTES.append(note)
        Iodine.publish("notes", json.dumps(note))
        resp.status = falcon.HTTP_201
        resp.media = note


class Note:
    def on_get(self, req, resp, note_id):
        with LOCK:
            found = [n for n in NOTES if str(n["id"]) == note_id]
        if not found:
            raise falcon.HTTPNotFound()
        resp.media = found[0]


class Feed:
    """One per EventSource: the backlog, then live notes."""

    def on_open(self, client):
        with LOCK:
            backlog = list(NOTES)
        for note in backlog:
            client.write(json.dumps(note), event="note", id=note["id"])
        client.subscribe("notes", self.relay)
        say("sse-open")  # subscribed: a test may post now

    def relay(self, client, channel, message):
        client.write(message, event="note", id=json.loads(message)["id"])

    def on_close(self, client):
        say("sse-close")


class FeedResource:
    def __init__(self, strict):
        self.strict = strict

    def on_get(self, req, resp):
        if self.strict:
            iodine_py.upgrade(req, Feed(), resp, protocols=("sse",))
        else:
            iodine_py.upgrade(req, Feed(), resp)


app = falcon.App()
app.add_route("/notes", Notes())
app.add_route("/notes/{note_id}", Note())
app.add_route("/feed", FeedResource(strict=False))
app.add_route("/feed-strict", FeedResource(strict=True))
