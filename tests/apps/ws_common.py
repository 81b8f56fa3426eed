"""Helpers shared by the ws_* / sse_* test apps (imported by file name: the
server puts tests/apps on sys.path when it loads an app from there).

A Log keeps, per name, the list of events an app saw, thread-safely, and
prints each event to stderr as `LOGTAG NAME EVENT` so a test can wait for
one (ServerProcess.wait_for_stderr) instead of polling. `log_response`
serves one name's list as JSON over plain HTTP.
"""

import json
import os
import sys
import threading
from urllib.parse import parse_qs


class Log:
    def __init__(self, tag="ws-log"):
        self.tag = tag
        self._lock = threading.Lock()
        self._events = {}

    def add(self, name, event):
        with self._lock:
            self._events.setdefault(name, []).append(event)
            # One write call per line: lines from threads never interleave.
            sys.stderr.write(f"{self.tag} {name} {event}\n")
            sys.stderr.flush()

    def get(self, name):
        with self._lock:
            return list(self._events.get(name, []))


def say(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def json_response(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def text_response(start_response, body, status="200 OK", ctype="text/plain"):
    if isinstance(body, str):
        body = body.encode("utf-8")
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def record_to_file(line):
    """Append a line to $WS_RECORD_FILE (for events around process exit)."""
    path = os.environ.get("WS_RECORD_FILE")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)
