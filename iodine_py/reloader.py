"""``--reload``: restart the workers when the application's files change.

Polling, not inotify: the master already wakes every 200 ms to look after
its workers, and comparing the modification times of a project's Python
files costs a few hundred stat() calls, well under a millisecond for a
typical application. It needs no dependency and no C, works the same on
every filesystem (inotify misses changes on NFS and in some container
mounts) and sees editors that save by renaming a new file over the old one.
A change is noticed within POLL_S and the rolling restart that follows
replaces the worker within a second.

Watched: the application's own file, every ``*.py`` file in its folder and
below (hidden folders, ``__pycache__``, virtual environments and
``node_modules`` skipped), and the same under each ``--reload-dir``; at most
MAX_FILES files.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .importer import app_files
from .log import logger

POLL_S = 0.25
MAX_FILES = 10_000
SKIP = {"__pycache__", "node_modules", "venv", ".venv", "env", "site-packages"}


def _walk(folder: str) -> Iterable[str]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(root, name)


class Reloader:
    def __init__(self, listeners: List[Any], dirs: List[str]) -> None:
        self.files: List[str] = []
        folders: List[str] = [os.path.abspath(d) for d in dirs]
        for lst in listeners:
            if isinstance(lst.app, str):
                for f in app_files(lst.app):
                    self.files.append(f)
                    folders.append(os.path.dirname(f))
        self.folders = sorted(set(folders))
        self.last = 0.0
        self.seen = self._scan()
        logger.info(f"reload: watching {len(self.seen)} files "
                    f"(in {', '.join(self.folders) or 'no folder'})")

    def _scan(self) -> Dict[str, Tuple[float, int]]:
        out: Dict[str, Tuple[float, int]] = {}
        paths: List[str] = list(self.files)
        for folder in self.folders:
            paths.extend(_walk(folder))
            if len(paths) > MAX_FILES:
                break
        for path in paths[:MAX_FILES]:
            try:
                st = os.stat(path)
            except OSError:
                continue
            out[path] = (st.st_mtime, st.st_size)
        return out

    def changed(self) -> bool:
        """True once per change (the master then rolls its workers)."""
        now = time.monotonic()
        if now - self.last < POLL_S:
            return False
        self.last = now
        seen = self._scan()
        if seen == self.seen:
            return False
        what: Optional[str] = next((p for p in seen if seen[p] != self.seen.get(p)), None)
        what = what or next((p for p in self.seen if p not in seen), "?")
        self.seen = seen
        logger.info(f"reload: {what} changed")
        return True
