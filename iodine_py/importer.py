"""Find the application named on the command line.

Two forms: a file (``app.py``, ``path/to/app.py:attr``) or a module
(``pkg.module:attr``); the attribute defaults to ``app``. Failures raise
ImportFromStringError with a one-line message the CLI prints as is.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any


class ImportFromStringError(Exception):
    pass


class NoAppError(ImportFromStringError):
    """The module imported fine but has no such attribute (a file that only
    declares raw services at import is served without one: docs/raw.md)."""


def _split(target: str) -> "tuple[str, str]":
    # A Windows-style "C:\..." never reaches us here; the last ':' splits.
    mod, sep, attr = target.rpartition(":")
    if sep and mod and attr and "/" not in attr and not attr.endswith(".py"):
        return mod, attr
    return target, "app"


def load_app(target: str) -> Any:
    where, attr = _split(target)
    if where.endswith(".py") or os.sep in where or os.path.isfile(where):
        path = os.path.abspath(where)
        if not os.path.isfile(path):
            raise ImportFromStringError(f"application file not found: {where}")
        name = os.path.splitext(os.path.basename(path))[0]
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportFromStringError(f"cannot load {where}")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(name, module)
        spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name and where.startswith(exc.name):
                raise ImportFromStringError(f"no module named {where!r}") from None
            raise
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise NoAppError(
            f"{where} has no attribute {attr!r} (name the app as {where}:NAME)"
        ) from None
    if not callable(app):
        raise ImportFromStringError(f"{where}:{attr} is not callable")
    return app
