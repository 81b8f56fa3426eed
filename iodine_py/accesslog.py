"""The access log (``-v``): one line per response, written off the loop.

Format: Common Log Format plus the response time::

    127.0.0.1 - - [23/Nov/2026:18:42:18 +0000] "GET /path HTTP/1.1" 200 13 0.412ms

With ``--access-log-format json`` each line is one JSON object instead
(keys: time, remote_addr, method, path, protocol, status, bytes,
duration_ms), for log shippers. Answers the C core gives itself (static
files, 304s, 4xx refusals) arrive as Common Log Format lines and are
converted (``clf_to_json``).

The thread serving requests only formats the line and appends it to a
bounded queue; a writer thread does the (possibly blocking) write to
stderr, in batches. If stderr is slower than the traffic and the queue
fills, lines are dropped, counted, and the count is reported once the
writer catches up; the event loop never waits on a log pipe.
"""
from __future__ import annotations

import collections
import json
import os
import re
import sys
import threading
import time
from typing import Deque, Optional

MAX_QUEUED = 10_000  # lines; past it new lines are dropped (and counted)


_CLF = re.compile(r'^(\S+) - - \[([^\]]*)\] "(\S+) (.*) (\S+)" (\d+) (\d+) ([\d.]+)ms$')


def clf_to_json(line: str) -> str:
    """One of the core's CLF lines as a JSON-lines record ("-" is null)."""
    m = _CLF.match(line.rstrip("\n"))
    if not m:
        return json.dumps({"line": line.rstrip("\n")}) + "\n"
    addr, stamp, method, path, proto, status, size, took = m.groups()
    t = time.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z") if stamp else None
    return json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", t) if t else stamp,
        "remote_addr": addr, "method": None if method == "-" else method,
        "path": None if path == "-" else path, "protocol": proto, "status": int(status),
        "bytes": int(size), "duration_ms": float(took)}) + "\n"


class AccessLog:
    def __init__(self, fd: Optional[int] = None, max_queued: int = MAX_QUEUED,
                 json_form: bool = False) -> None:
        self.json_form = json_form
        self.fd = sys.stderr.fileno() if fd is None else fd
        self.max_queued = max_queued
        self.lines: Deque[str] = collections.deque()
        self.dropped = 0
        self.cond = threading.Condition(threading.Lock())
        self.closed = False
        self._stamp_sec = -1
        self._stamp = ""
        self.thread = threading.Thread(target=self._run, name="iodine-access-log", daemon=True)
        self.thread.start()

    def stamp(self) -> str:
        now = int(time.time())
        if now != self._stamp_sec:  # formatting the date once a second is enough
            self._stamp_sec = now
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now))
        return self._stamp

    def write(self, line: str) -> None:
        with self.cond:
            if len(self.lines) >= self.max_queued:
                self.dropped += 1
                return
            self.lines.append(line)
            if len(self.lines) == 1:
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.lines and not self.closed:
                    self.cond.wait()
                batch = "".join(self.lines)
                self.lines.clear()
                dropped, self.dropped = self.dropped, 0
                closed = self.closed
            if dropped:
                batch += f"iodine: access log: {dropped} lines dropped (stderr too slow)\n"
            if batch:
                self._write_all(batch.encode("utf-8", "replace"))
            if closed:
                return

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError:
                return  # stderr is gone: nothing useful to do
            view = view[n:]

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued and stop the writer."""
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.thread.join(timeout)
