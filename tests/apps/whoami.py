"""Who the server thinks the client is, and which process answered:
a JSON object with REMOTE_ADDR, REMOTE_PORT, wsgi.url_scheme, SERVER_NAME,
SERVER_PORT, the pid, and the value of `?echo=` (if any).

`/slow?ms=N` answers after N milliseconds of work (a busy request, for
shutdown and restart tests); it first prints "whoami-slow PID" to stderr."""
import json
import os
import sys
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        ms = int(environ.get("QUERY_STRING", "ms=0").partition("=")[2] or 0)
        sys.stderr.write(f"whoami-slow {os.getpid()}\n")
        sys.stderr.flush()
        time.sleep(ms / 1000.0)
    body = json.dumps({
        "REMOTE_ADDR": environ.get("REMOTE_ADDR"),
        "REMOTE_PORT": environ.get("REMOTE_PORT"),
        "scheme": environ.get("wsgi.url_scheme"),
        "SERVER_NAME": environ.get("SERVER_NAME"),
        "SERVER_PORT": environ.get("SERVER_PORT"),
        "pid": os.getpid(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
