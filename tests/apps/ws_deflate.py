"""permessage-deflate and close-code tests (tests/websocket/test_deflate.py,
test_close_codes.py).

  WebSocket /            echo (text stays text, binary stays binary)
  WebSocket /sub         subscribes to channel "fan" (no callback: frames
                         leave from C), answers "subscribed"
  WebSocket /close       a message "CODE REASON" makes the app call
                         client.close(CODE, REASON); a ValueError is written
                         back as "ValueError: ..." instead
  WebSocket /ext?v=X     accepted with the app's own Sec-WebSocket-Extensions: X
  every WebSocket        on_close logs `ws-log close CODE|REASON` (the peer's
                         close_code / close_reason, None when none came)
  GET /publish?n=N&size=S  publishes N JSON messages of about S bytes to "fan":
                         {"reached": total}
  GET /stats             {"deflates", "inflaters", "zlib_bytes"} from the core
  GET /closed            the close log as JSON
"""

import json

from iodine_py._native import lib

from ws_common import Log, json_response, query, text_response

LOG = Log()


class Base:
    def on_close(self, client):
        LOG.add("close", f"{client.close_code}|{client.close_reason}")


class Echo(Base):
    def on_message(self, client, data):
        client.write(data)


class Sub(Base):
    def on_open(self, client):
        client.subscribe("fan")
        client.write("subscribed")


class Closer(Base):
    def on_message(self, client, data):
        code, _, reason = data.partition(" ")
        try:
            client.close(int(code), reason)
        except ValueError as e:
            client.write(f"ValueError: {e}")


def message(i, size):
    body = {"seq": i, "type": "update", "items": []}
    while len(json.dumps(body)) < size:
        body["items"].append({"id": len(body["items"]), "name": "item", "price": 12.5})
    return json.dumps(body)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    if environ["rack.upgrade?"] == "websocket":
        headers = []
        if path == "/sub":
            environ["rack.upgrade"] = Sub()
        elif path == "/close":
            environ["rack.upgrade"] = Closer()
        elif path == "/ext":
            environ["rack.upgrade"] = Echo()
            headers.append(("Sec-WebSocket-Extensions", q.get("v", "")))
        else:
            environ["rack.upgrade"] = Echo()
        start_response("101 Switching Protocols", headers)
        return []
    if path == "/publish":
        n, size = int(q.get("n", "1")), int(q.get("size", "1024"))
        reached = 0
        for i in range(n):
            m = message(i, size).encode()
            reached += lib.ps_publish(b"fan", 3, m, len(m), 1)
        return json_response(start_response, {"reached": reached})
    if path == "/stats":
        return json_response(start_response, {
            "deflates": int(lib.pmd_deflate_calls()),
            "inflaters": int(lib.pmd_inflaters_alive()),
            "zlib_bytes": int(lib.pmd_zlib_bytes())})
    if path == "/closed":
        return json_response(start_response, LOG.get("close"))
    return text_response(start_response, "ok")
