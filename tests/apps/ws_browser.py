"""A page that a real browser runs against this server.

  GET /        the test page (PAGE below): opens a WebSocket to /ws (asking
               for subprotocol "chat"), sends "ping-from-browser", 4 binary
               bytes and a 100000-character text, collects the echoes and the
               agreed extensions (ws.extensions), closes
               with 4000 "done"; opens an EventSource on /events and collects
               two events; then writes a JSON summary into <pre id=result>
               and resolves window.testDone with it.
  /ws          WebSocket echo; picks the first offered subprotocol
  /events      SSE: "one" (id 1) at once, then 100 ms later (Iodine.run_after)
               "two" as event type "named" (id 2)
Callbacks log "browser ws-open|ws-close|sse-open|sse-close" on stderr.
"""

from iodine_py import Iodine
from ws_common import Log, text_response

LOG = Log("browser")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>iodine-py browser test</title></head>
<body>
<pre id="result">pending</pre>
<script>
"use strict";
const results = {};
function timeout(ms, what) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error("timeout: " + what)), ms));
}
const wsTest = new Promise((resolve) => {
  const ws = new WebSocket("ws://" + location.host + "/ws", ["chat"]);
  ws.binaryType = "arraybuffer";
  const got = [];
  ws.onopen = () => {
    results.protocol = ws.protocol;
    results.extensions = ws.extensions;  // what the 101 agreed (permessage-deflate)
    ws.send("ping-from-browser");
    ws.send(new Uint8Array([1, 2, 3, 255]).buffer);
    ws.send("x".repeat(100000));
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      got.push(ev.data.length > 100 ? "text-of-length:" + ev.data.length : ev.data);
    } else {
      got.push("binary:" + Array.from(new Uint8Array(ev.data)).join(","));
    }
    if (got.length === 3) {
      results.ws = got;
      ws.close(4000, "done");
    }
  };
  ws.onerror = () => { results.wsError = true; };
  ws.onclose = (ev) => {
    results.wsClose = {code: ev.code, reason: ev.reason, wasClean: ev.wasClean};
    resolve();
  };
});
const sseTest = new Promise((resolve) => {
  const es = new EventSource("/events");
  const got = [];
  const take = (ev) => {
    got.push({type: ev.type, data: ev.data, id: ev.lastEventId});
    if (got.length === 2) {
      results.sse = got;
      es.close();
      resolve();
    }
  };
  es.onmessage = take;
  es.addEventListener("named", take);
  es.onerror = () => { results.sseErrors = (results.sseErrors || 0) + 1; };
});
window.testDone = Promise.race([Promise.all([wsTest, sseTest]), timeout(8000, "page")])
  .then(() => { results.done = true; }, (e) => { results.error = String(e); })
  .then(() => {
    document.getElementById("result").textContent = JSON.stringify(results);
    return results;
  });
</script>
</body></html>
"""


class Echo:
    def on_open(self, client):
        LOG.add("browser", "ws-open")

    def on_message(self, client, data):
        client.write(data)

    def on_close(self, client):
        LOG.add("browser", "ws-close")


class Events:
    def __init__(self):
        self.timer = None

    def on_open(self, client):
        LOG.add("browser", "sse-open")
        client.write("one", id=1)
        self.timer = Iodine.run_after(100, lambda: client.write("two", event="named", id=2))

    def on_close(self, client):
        if self.timer is not None:
            self.timer.cancel()
        LOG.add("browser", "sse-close")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    kind = environ["rack.upgrade?"]
    if path == "/ws" and kind == "websocket":
        offered = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
        headers = []
        if offered:
            headers.append(("Sec-WebSocket-Protocol", offered.split(",")[0].strip()))
        environ["rack.upgrade"] = Echo()
        start_response("101 Switching Protocols", headers)
        return []
    if path == "/events" and kind == "sse":
        environ["rack.upgrade"] = Events()
        start_response("200 OK", [])
        return []
    if path == "/":
        return text_response(start_response, PAGE, ctype="text/html; charset=utf-8")
    return text_response(start_response, "not found", status="404 Not Found")
