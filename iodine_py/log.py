"""The server's own messages: one logger, ``logging.getLogger("iodine")``.

Every module writes through ``logger`` (``from .log import logger``), never
to stderr directly, so an application can route, filter or silence server
messages with the standard ``logging`` machinery. Until the application (or
``--log-level``) configures it, the logger has one handler of its own that
writes ``iodine: <message>`` lines to stderr, the format the server has
always used (tests and operators grep for it). The access log is separate
(iodine_py/accesslog.py): it has its own non-blocking writer thread.

Level names are the standard ones; iodine's numeric verbosity (``-V N``)
maps onto them with ``level_for_verbosity``.
"""
from __future__ import annotations

import logging
import sys
import traceback
from typing import Union

logger = logging.getLogger("iodine")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the moment of the call (tests and
    daemons replace it), never raising into the server."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("iodine: %(message)s"))
logger.addHandler(_handler)
logger.setLevel(logging.INFO)
logger.propagate = False  # our handler, not the root's: no double lines


def set_level(level: Union[int, str]) -> None:
    """``--log-level``: a name (debug, info, warning, error, critical) or a
    number."""
    if isinstance(level, str):
        value = logging.getLevelName(level.upper())
        if not isinstance(value, int):
            raise ValueError(f"unknown log level {level!r}")
        level = value
    logger.setLevel(level)


def level_for_verbosity(v: int) -> int:
    """iodine's ``-V N``: 0 critical only ... 5 everything (debug)."""
    table = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING,
             3: logging.INFO, 4: logging.DEBUG, 5: logging.DEBUG}
    return table[max(0, min(5, v))]


def log_exception(where: str) -> None:
    """The exception being handled, with its traceback, as one error
    message: for code that must survive an application's failure (a
    callback, a hook, an iterator's close()). Never raises."""
    try:
        logger.error(f"error in {where}:\n{traceback.format_exc().rstrip()}")
    except Exception:
        pass
