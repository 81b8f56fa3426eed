"""A cluster test app: every WebSocket subscribes to "room" (delivery from
C); GET /pid tells which worker answered; a WebSocket message is published
to "room" tagged with the worker's pid."""
import os

from iodine_py import Iodine


class Member:
    def on_open(self, client):
        client.subscribe("room")
        client.write(f"pid {os.getpid()}")

    def on_message(self, client, data):
        Iodine.publish("room", data)


def app(environ, start_response):
    if environ["rack.upgrade?"] == "websocket":
        environ["rack.upgrade"] = Member()
        start_response("101 Switching Protocols", [])
        return []
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
