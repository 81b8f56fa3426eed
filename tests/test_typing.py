"""The package is typed (PEP 561: iodine_py/py.typed) and stays clean under
`mypy --strict iodine_py` (settings in pyproject.toml's [tool.mypy]), and
the runtime the event handlers are given is never typed Any."""
from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from tests.server import PYTHON, REPO_ROOT


def _python_with_mypy() -> str | None:
    for python in dict.fromkeys([sys.executable, PYTHON]):
        probe = subprocess.run([python, "-c", "import mypy"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return python
    return None


def test_py_typed_marker_and_native_stub_exist():
    assert (REPO_ROOT / "iodine_py" / "py.typed").is_file()
    assert (REPO_ROOT / "iodine_py" / "_native.pyi").is_file()


def test_mypy_strict_is_clean(tmp_path):
    python = _python_with_mypy()
    if python is None:
        pytest.skip("mypy is not installed (it is in the test extras: pip install -e '.[test]')")
    proc = subprocess.run(
        [python, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), "iodine_py"],
        cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mypy --strict iodine_py failed:\n{proc.stdout}{proc.stderr}"


# -- the runtime is typed ------------------------------------------------------
# server.Runtime turns the core's events into calls into client.py,
# connect.py, pubsub.py, wsgi.py and cluster.py. Each of those says what it
# needs of it with a Protocol (ClientRuntime, RawRuntime, ...), which mypy
# --strict checks server.Runtime against at every call: a parameter or
# attribute holding the runtime typed Any (or object) would hide a missing
# attribute from the checker, so none may be.

RUNTIME_NAME = re.compile(r"(^|_)(runtime|rt)$")
UNTYPED = {"Any", "object"}


def _names_in(annotation: ast.expr) -> set:
    return {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)} | \
           {n.attr for n in ast.walk(annotation) if isinstance(n, ast.Attribute)} | \
           {n.value for n in ast.walk(annotation) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def untyped_runtimes(source: str, filename: str = "<src>") -> list:
    """'file:line name' for each parameter or annotated variable/attribute
    named like the runtime (runtime, make_runtime, rt, ...) that has no
    annotation, or one that is (or contains) Any or object."""
    bad = []

    def check(name: str, annotation, line: int) -> None:
        if not RUNTIME_NAME.search(name):
            return
        if annotation is None:
            bad.append(f"{filename}:{line} {name} (no annotation)")
        elif _names_in(annotation) & UNTYPED:
            bad.append(f"{filename}:{line} {name}: {ast.unparse(annotation)}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            for arg in a.posonlyargs + a.args + a.kwonlyargs:
                if arg.arg not in ("self", "cls"):
                    check(arg.arg, arg.annotation, arg.lineno)
        elif isinstance(node, ast.AnnAssign):
            target = node.target
            name = target.attr if isinstance(target, ast.Attribute) else \
                target.id if isinstance(target, ast.Name) else ""
            check(name, node.annotation, node.lineno)
    return bad


def test_the_runtime_check_sees_an_untyped_runtime():
    src = ("from typing import Any, Callable, Optional\n"
           "def dispatch(runtime: Any, kind: int) -> None: ...\n"
           "def run(make_runtime: Callable[[], Any]) -> None: ...\n"
           "def on(rt) -> None: ...\n"
           "_runtime: Optional['Any'] = None\n"
           "def fine(runtime: 'ClientRuntime', other: Any) -> None: ...\n")
    assert [b.split(" ", 1)[1] for b in untyped_runtimes(src)] == [
        "runtime: Any", "make_runtime: Callable[[], Any]", "rt (no annotation)",
        "_runtime: Optional['Any']"]


def test_the_runtime_is_never_typed_any():
    bad = []
    for path in sorted((REPO_ROOT / "iodine_py").glob("*.py")):
        bad += untyped_runtimes(path.read_text(encoding="utf-8"),
                                str(path.relative_to(REPO_ROOT)))
    assert not bad, "the runtime typed Any (give it its Protocol or server.Runtime):\n" + \
        "\n".join(bad)
