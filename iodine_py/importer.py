"""Find the application named on the command line.

Two forms: a file (``app.py``, ``path/to/app.py:attr``) or a module
(``pkg.module:attr``); the attribute defaults to ``app``. Failures raise
ImportFromStringError with a one-line message the CLI prints as is.

Workers import the application after fork (``load_app(target,
fresh=True)``), so each rolling restart runs the code as it is on disk
now; ``describe_error`` turns whatever the import raised (a syntax error in
the new code, a missing module) into the one line the log gets.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any, List


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


def is_asgi(app: Any) -> bool:
    """An ASGI application: an ``async def`` callable (``app(scope,
    receive, send)``), or an object whose ``__call__`` is one (FastAPI,
    Starlette, Quart...). iodine-py serves WSGI only."""
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(type(app), "__call__", None) if not inspect.isfunction(app) else None  # noqa: B004 (the method itself, to inspect)
    return call is not None and inspect.iscoroutinefunction(call)


ASGI_ERROR = ("is an ASGI application (async); iodine-py serves WSGI apps only: "
              "serve it with an ASGI server (uvicorn, hypercorn), or give iodine a WSGI app")


def describe_error(exc: BaseException) -> str:
    """One line for an application that failed to import."""
    if isinstance(exc, ImportFromStringError):
        return str(exc)
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else "?"
        return f"SyntaxError in {where}: {exc.msg}"
    tb = exc.__traceback__
    where = ""
    while tb is not None:  # the innermost frame: where it went wrong
        where = f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
        tb = tb.tb_next
    return f"{type(exc).__name__}: {exc}{where}"


def app_files(target: str) -> List[str]:
    """The files --reload watches for this application: its own file (a
    module's too)."""
    where, _ = _split(target)
    if where.endswith(".py") or os.sep in where or os.path.isfile(where):
        return [os.path.abspath(where)]
    spec = importlib.util.find_spec(where)
    return [spec.origin] if spec and spec.origin and os.path.isfile(spec.origin) else []


def load_app(target: str, fresh: bool = False) -> Any:
    """The application named by `target`. `fresh`: run the module's code
    again even if this process imported it before (a reload)."""
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
        if fresh:
            sys.modules[name] = module
        else:
            sys.modules.setdefault(name, module)
        if fresh:
            # From the source, not __pycache__: a .pyc is trusted when the
            # file's size and mtime (whole seconds) match, so an edit of the
            # same size within a second of the last import would run stale
            # code on a reload.
            with open(path, "rb") as f:
                source = f.read()
            exec(compile(source, path, "exec"), module.__dict__)
        else:
            spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            known = where in sys.modules
            module = importlib.import_module(where)
            if fresh and known:  # imported here before: run its code again
                module = importlib.reload(module)
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
    if is_asgi(app):
        raise ImportFromStringError(f"{where}:{attr} {ASGI_ERROR}")
    return app
