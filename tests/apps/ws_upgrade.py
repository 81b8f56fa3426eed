"""The upgrade negotiation seen from the app (rack.upgrade? / rack.upgrade).

  /detect            WebSocket: the first message is "rack.upgrade?=<value>";
                     SSE: the first event's data is the same; plain request:
                     the body is the same (repr of the value, e.g. None)
  /deny?status=S     sets rack.upgrade, then answers S with the body
                     "denied by app" (a status >= 300 cancels the upgrade);
                     an on_open on that handler is logged under "deny"
  /protocol          101 with Sec-WebSocket-Protocol = the first protocol the
                     client offered, plus X-App-Header; returns a body that
                     must never reach the wire; on_open writes "opened"
  /ignore            answers 200 "not upgraded" without setting rack.upgrade
  /upgrade-anyway    sets rack.upgrade (a handler logging under "deny") even
                     when rack.upgrade? is None; answers 200 "plain response"
  /calls             JSON {path: number of times the app was called}
  /log/NAME          JSON list of callback events logged under NAME
"""

import threading

from ws_common import Log, json_response, text_response

LOG = Log("ws-upgrade")
_calls = {}
_calls_lock = threading.Lock()


class Detect:
    def on_open(self, client):
        value = client.env["rack.upgrade?"]
        client.write(f"rack.upgrade?={value}")


class Denied:
    def on_open(self, client):
        LOG.add("deny", "open")

    def on_close(self, client):
        LOG.add("deny", "close")


class Opened:
    def on_open(self, client):
        client.write("opened")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    with _calls_lock:
        _calls[path] = _calls.get(path, 0) + 1
    kind = environ["rack.upgrade?"]

    if path == "/detect":
        if kind is None:
            return text_response(start_response, f"rack.upgrade?={kind!r}")
        environ["rack.upgrade"] = Detect()
        start_response("101 Switching Protocols" if kind == "websocket" else "200 OK", [])
        return []

    if path == "/deny":
        status = environ.get("QUERY_STRING", "").partition("=")[2] or "403"
        environ["rack.upgrade"] = Denied()
        return text_response(start_response, "denied by app", status=f"{status} Denied")

    if path == "/protocol":
        offered = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
        first = offered.split(",")[0].strip()
        environ["rack.upgrade"] = Opened()
        headers = [("X-App-Header", "yes")]
        if first:
            headers.append(("Sec-WebSocket-Protocol", first))
        start_response("101 Switching Protocols", headers)
        return [b"BODY-MUST-NOT-BE-SENT"]

    if path == "/ignore":  # never sets rack.upgrade, whatever was asked
        return text_response(start_response, "not upgraded")

    if path == "/upgrade-anyway":  # sets rack.upgrade even on a plain request
        environ["rack.upgrade"] = Denied()
        return text_response(start_response, "plain response")

    if path == "/calls":
        with _calls_lock:
            return json_response(start_response, dict(_calls))

    if path.startswith("/log/"):
        return json_response(start_response, LOG.get(path[len("/log/"):]))

    return text_response(start_response, "ok")
