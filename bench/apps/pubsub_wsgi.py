"""Pub/sub fan-out app for bench/pubsub.sh: iodine-py (WSGI + rack.upgrade).

    ws://HOST:PORT/sub   a subscriber: on_open subscribes it to the channel "bench" with no
                         callback, so every message goes to the connection from C (no Python
                         runs per recipient)
    ws://HOST:PORT/pub   the publisher: every message it sends is published to "bench" as it is
                         (text stays text), with client.publish (the default engine)
    ws://HOST:PORT/...   any other path echoes (the readiness probe)

Run: iodine bench/apps/pubsub_wsgi.py -p PORT -b 127.0.0.1 -t 1
"""


CHANNEL = "bench"


class Subscriber:
    def on_open(self, client):
        client.subscribe(CHANNEL)


class Publisher:
    def on_message(self, client, data):
        client.publish(CHANNEL, data)


class Echo:
    def on_message(self, client, data):
        client.write(data)


def app(environ, start_response):
    if environ["rack.upgrade?"] == "websocket":
        path = environ["PATH_INFO"]
        environ["rack.upgrade"] = Subscriber() if path == "/sub" else Publisher() if path == "/pub" else Echo()
        start_response("101 Switching Protocols", [])
        return []
    body = b"Connect with a WebSocket to /sub (subscriber) or /pub (publisher).\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
