"""Every C file of ext/, tests/c/, fuzz/, iodine_py/ and bench/ is laid out as .clang-format says
(`make format` rewrites, `make format-check` is this check). The formatter is
pinned in the test extras (clang-format==14.0.6 from PyPI), because another
version lays the same file out differently; the test is skipped where that
exact version is not installed, unless REQUIRE_FORMAT=1 (CI) says it must run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PINNED = "14.0.6"


def _clang_format() -> str:
    here = Path(sys.executable).with_name("clang-format")
    found = str(here) if here.exists() else shutil.which("clang-format")
    version = ""
    if found:
        out = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
        version = out.split("version", 1)[-1].split()[0] if "version" in out else ""
    if version != PINNED:
        why = f"clang-format {PINNED} is not installed (pip install -e '.[test]'); found {found} {version}"
        if os.environ.get("REQUIRE_FORMAT") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return found


def c_files() -> list[str]:
    files = []
    for d in ("ext", "tests/c", "fuzz", "iodine_py", "bench"):
        files += sorted(str(p.relative_to(ROOT)) for p in (ROOT / d).glob("*.[ch]"))
    return files


def test_c_files_follow_clang_format():
    tool = _clang_format()
    files = c_files()
    assert len(files) > 50, files  # the globs found the tree
    r = subprocess.run([tool, "--dry-run", "--Werror", *files], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    drift = sorted({line.split(":", 1)[0] for line in r.stderr.splitlines() if ": error:" in line})
    assert r.returncode == 0, "not formatted (run `make format`): " + ", ".join(drift)
