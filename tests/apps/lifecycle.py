"""Every lifecycle hook prints `hook <event> <pid>` to stderr (flushed), so
a test can read the order per process.  `/` answers with the pid."""
import os
import sys

from iodine_py import Iodine


def _say(event):
    def hook():
        sys.stderr.write(f"hook {event} {os.getpid()}\n")
        sys.stderr.flush()
    return hook


for _event in Iodine.STATES:
    Iodine.on_state(_event, _say(_event))


def _boom():
    raise RuntimeError("a hook that fails")


# A failing hook is logged and the others still run.
Iodine.on_state("enter_child", _boom)


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
