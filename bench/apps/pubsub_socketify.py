"""Pub/sub fan-out app for bench/pubsub.sh: socketify (uWebSockets), with its own pub/sub.

    /sub   a subscriber: on open, ws.subscribe("bench") (uWebSockets' topic tree, in C++)
    /pub   the publisher: each message is app.publish("bench", message, opcode) as it is
    /*     echo (the readiness probe)

Run: python bench/apps/pubsub_socketify.py PORT   (one process, one thread, 127.0.0.1)
"""

import sys

from socketify import App

CHANNEL = "bench"
# a subscriber's unsent backlog may grow this far before uWebSockets drops messages for it
BACKPRESSURE = 16 * 1024 * 1024


def main(port):
    app = App()

    def sub_open(ws):
        ws.subscribe(CHANNEL)

    def pub_message(ws, message, opcode):
        app.publish(CHANNEL, message, opcode)

    def echo_message(ws, message, opcode):
        ws.send(message, opcode)

    common = {"max_payload_length": 1 << 20, "idle_timeout": 0, "max_backpressure": BACKPRESSURE}
    app.ws("/sub", {**common, "open": sub_open})
    app.ws("/pub", {**common, "message": pub_message})
    app.ws("/*", {**common, "message": echo_message})
    app.any("/*", lambda res, req: res.end("Connect with a WebSocket to /sub or /pub.\n"))
    app.listen({"port": port, "host": "127.0.0.1"},
               lambda config: print(f"listening on 127.0.0.1:{port}", flush=True))
    app.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
