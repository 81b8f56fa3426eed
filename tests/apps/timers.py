"""Timers and tasks driven over HTTP; every firing prints a stderr line
`timer TAG N +MS` (N: the firing's count, MS since it was scheduled), so
tests wait on lines, not on the clock.

  /run?tag=T                 Iodine.run
  /after?tag=T&ms=M          Iodine.run_after
  /every?tag=T&ms=M&reps=R   Iodine.run_every (R=0: until cancelled)
  /cancel?tag=T              cancel T's timer
  /thread?tag=T&ms=M         run_after called from a thread of our own
  /boom?ms=M                 a timer that raises, then `after-boom` fires
"""
import os
import sys
import threading
import time
from urllib.parse import parse_qs

from iodine_py import Iodine

_timers = {}
_counts = {}
_lock = threading.Lock()


def _fire(tag, since):
    def fn():
        with _lock:
            _counts[tag] = _counts.get(tag, 0) + 1
            n = _counts[tag]
        ms = (time.monotonic() - since) * 1000
        sys.stderr.write(f"timer {tag} {n} +{ms:.0f} pid {os.getpid()} "
                         f"thread {threading.current_thread().name}\n")
        sys.stderr.flush()
    return fn


def _boom():
    raise RuntimeError("a timer that fails")


# Set before the server starts: runs in every worker (and in the single process).
Iodine.run_after(50, _fire("before-start", time.monotonic()))


def app(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    path = environ["PATH_INFO"]
    tag, ms = q.get("tag", "t"), int(q.get("ms", "0"))
    now = time.monotonic()
    if path == "/run":
        _timers[tag] = Iodine.run(_fire(tag, now))
    elif path == "/after":
        _timers[tag] = Iodine.run_after(ms, _fire(tag, now))
    elif path == "/every":
        _timers[tag] = Iodine.run_every(ms, _fire(tag, now), int(q.get("reps", "0")))
    elif path == "/cancel":
        _timers[tag].cancel()
    elif path == "/thread":
        t = threading.Thread(target=lambda: _timers.__setitem__(
            tag, Iodine.run_after(ms, _fire(tag, now))))
        t.start()
        t.join()
    elif path == "/boom":
        Iodine.run_after(ms, _boom)
        Iodine.run_after(ms + 20, _fire("after-boom", now))
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [body]
