"""The access log (``-v``): one line per response, written off the loop.

Format: Common Log Format plus the response time::

    127.0.0.1 - - [23/Nov/2026:18:42:18 +0000] "GET /path HTTP/1.1" 200 13 0.412ms

The thread serving requests only formats the line and appends it to a
bounded queue; a writer thread does the (possibly blocking) write to
stderr, in batches. If stderr is slower than the traffic and the queue
fills, lines are dropped, counted, and the count is reported once the
writer catches up; the event loop never waits on a log pipe.
"""
from __future__ import annotations

import collections
import os
import sys
import threading
import time
from typing import Deque, Optional

MAX_QUEUED = 10_000  # lines; past it new lines are dropped (and counted)


class AccessLog:
    def __init__(self, fd: Optional[int] = None, max_queued: int = MAX_QUEUED) -> None:
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
