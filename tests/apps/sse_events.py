"""Server-Sent Events for tests/sse (requests carry Accept: text/event-stream).

  /basic     on_open writes, in order (see BASIC), then the event "end"
  /bad       on_open tries event names / ids containing line breaks and
             writes one event whose data is JSON {case: "ValueError" |
             "accepted"}, then "end"
  /lastid    data: the Last-Event-ID the request carried (HTTP_LAST_EVENT_ID),
             or "<none>"
  /idle      writes nothing
  /close     writes "bye", then client.close()
  /timer     writes "first"; 200 ms later (Iodine.run_after) "second"
  /headers   sets extra response headers (X-App, and a Content-Type that the
             server must not let replace text/event-stream), writes "h"
Every SSE connection logs "sse-log NAME open|close" (NAME from ?name=).
Plain GET: "ok".
"""

import json

from iodine_py import Iodine
from ws_common import Log, query, text_response

LOG = Log("sse-log")

# (args, kwargs) for client.write, in order.
BASIC = [
    (("hello",), {}),
    (("line1\nline2",), {}),
    (("a\r\nb",), {}),
    (("c\rd",), {}),
    (("payload",), {"event": "greet"}),
    (("x",), {"id": 7}),
    (("both",), {"event": "e", "id": "i-1"}),
    (("",), {}),
    (("trailing\n",), {}),
    ((b"bytes-data",), {}),
    (("unicode \u2603",), {}),
]

BAD = {
    "id-lf": {"id": "a\nb"},
    "id-cr": {"id": "a\rb"},
    "id-crlf": {"id": "a\r\nb"},
    "event-lf": {"event": "a\nb"},
    "event-cr": {"event": "a\rb"},
    "event-crlf": {"event": "a\r\nb"},
}


class Stream:
    def __init__(self, path, name):
        self.path = path
        self.name = name
        self.timer = None

    def on_open(self, client):
        LOG.add(self.name, "open")
        p = self.path
        if p == "/basic":
            for args, kwargs in BASIC:
                client.write(*args, **kwargs)
            client.write("end", event="end")
        elif p == "/bad":
            results = {}
            for case, kwargs in BAD.items():
                try:
                    client.write("data", **kwargs)
                    results[case] = "accepted"
                except ValueError:
                    results[case] = "ValueError"
            client.write(json.dumps(results, sort_keys=True))
            client.write("end", event="end")
        elif p == "/lastid":
            client.write(client.env.get("HTTP_LAST_EVENT_ID", "<none>"))
        elif p == "/close":
            client.write("bye")
            client.close()
        elif p == "/timer":
            client.write("first")
            self.timer = Iodine.run_after(200, lambda: client.write("second"))
        elif p == "/headers":
            client.write("h")

    def on_close(self, client):
        if self.timer is not None:
            self.timer.cancel()
        LOG.add(self.name, "close")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if environ["rack.upgrade?"] == "sse":
        environ["rack.upgrade"] = Stream(path, query(environ).get("name", path.strip("/")))
        headers = []
        if path == "/headers":
            headers = [("X-App", "yes"), ("Content-Type", "text/plain")]
        start_response("200 OK", headers)
        return []
    return text_response(start_response, "ok")
