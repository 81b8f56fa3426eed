"""The package is typed (PEP 561: iodine_py/py.typed) and stays clean under
`mypy --strict iodine_py` (settings in pyproject.toml's [tool.mypy])."""
from __future__ import annotations

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
