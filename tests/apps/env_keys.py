"""The request's environ as the app sees it: its keys (sorted) and the
peer's port (REMOTE_PORT, formatted in C), as JSON."""
import json


def app(environ, start_response):
    body = json.dumps({"keys": sorted(environ), "REMOTE_PORT": environ.get("REMOTE_PORT")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
