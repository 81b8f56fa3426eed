"""WebSocket echo for the protocol and interop tests.

  any path, valid WebSocket handshake   every message is echoed as it came
                                        (text stays text, binary stays binary)
  plain GET                             "ok"
"""

from ws_common import text_response


class Echo:
    def on_message(self, client, data):
        client.write(data)


ECHO = Echo()


def app(environ, start_response):
    if environ["rack.upgrade?"] == "websocket":
        environ["rack.upgrade"] = ECHO
        start_response("101 Switching Protocols", [])
        return []
    return text_response(start_response, "ok")
