"""The Python sources pass ruff with the rules pyproject.toml names
([tool.ruff.lint]: pyflakes, pycodestyle's errors, bugbear). ruff is a test
extra; the test is skipped where it is not installed."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> str:
    here = Path(sys.executable).with_name("ruff")
    found = str(here) if here.exists() else shutil.which("ruff")
    if not found:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return found


def test_ruff_is_clean():
    r = subprocess.run([_ruff(), "check", "iodine_py", "tests", "examples", "bench", "exe",
                        "docs", "setup.py"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
