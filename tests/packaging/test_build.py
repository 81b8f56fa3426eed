"""The package as a user gets it: `python -m build` makes an sdist and a
wheel, each installs into a fresh venv, and the installed command serves.

This is the slow test of the suite (a minute or two: two builds of the C
core and two venvs; cffi comes from the pip cache or the index). Deselect it
with `-m "not slow"`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import List, Optional

import pytest

import iodine_py
from tests.server import REPO_ROOT

pytestmark = pytest.mark.slow

BUILD_TIMEOUT = 900    # the C core is compiled twice (once per build) on a busy box
INSTALL_TIMEOUT = 900  # the sdist install compiles it once more
STEP_TIMEOUT = 60

APP = '''\
def app(environ, start_response):
    body = b"packaged " + environ["SERVER_SOFTWARE"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def _clean_env() -> dict:
    """Nothing of the checkout or of the test venv leaks into the new ones."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PORT")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(argv: List[str], timeout: float, cwd: Optional[Path] = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=str(cwd) if cwd else None, env=_clean_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{argv} took over {timeout}s:\n{exc.output}") from None
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout[-6000:]}"
    return proc.stdout


def _build(outdir: Path) -> None:
    """sdist, then a wheel built from that sdist (so the sdist is proven
    complete). Isolated when the build requirements can be fetched;
    otherwise from this environment's setuptools and cffi."""
    cmd = [sys.executable, "-m", "build", "--outdir", str(outdir), str(REPO_ROOT)]
    try:
        _run(cmd, BUILD_TIMEOUT)
    except AssertionError as isolated:
        try:
            _run(cmd[:3] + ["--no-isolation"] + cmd[3:], BUILD_TIMEOUT)
        except AssertionError as local:
            raise AssertionError(f"isolated build failed:\n{isolated}\n\n"
                                 f"--no-isolation build failed too:\n{local}") from None


def _venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", str(path)], STEP_TIMEOUT * 2)
    return path / "bin"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    if subprocess.run([sys.executable, "-c", "import build"], capture_output=True,
                      timeout=STEP_TIMEOUT).returncode != 0:
        pytest.skip("`build` is not installed (it is in the test extras: pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    _build(out)
    return out


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {dist}, found {found}"
    return found[0]


def test_sdist_carries_the_c_core_and_the_build_script(dist):
    with tarfile.open(_one(dist, "*.tar.gz")) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    ext = {p.relative_to(REPO_ROOT).as_posix()
           for p in (REPO_ROOT / "ext").iterdir() if p.suffix in (".c", ".h")}
    missing = sorted((ext | {"setup.py", "pyproject.toml", "MANIFEST.in", "README.md",
                             "iodine_py/_build.py", "iodine_py/py.typed",
                             "iodine_py/_native.pyi"}) - names)
    assert not missing, f"the sdist lacks {missing}"


def test_wheel_carries_the_core_and_type_information(dist):
    with zipfile.ZipFile(_one(dist, "*.whl")) as whl:
        names = set(whl.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = whl.read(meta_name).decode()
    assert any(n.startswith("iodine_py/_native") and n.endswith(".so") for n in names), names
    assert {"iodine_py/py.typed", "iodine_py/_native.pyi", "iodine_py/cli.py"} <= names
    for field in ("Name: iodine-py", f"Version: {iodine_py.__version__}",
                  "License-Expression: MIT", "Requires-Python: >=3.9", "Requires-Dist: cffi",
                  "Keywords:", "Classifier: Typing :: Typed",
                  "Description-Content-Type: text/markdown"):
        assert field in meta, f"wheel METADATA lacks {field!r}"


def test_wheel_installs_and_serves_in_a_fresh_venv(dist, tmp_path, run_server):
    bin_dir = _venv(tmp_path / "venv")
    _run([str(bin_dir / "pip"), "install", str(_one(dist, "*.whl"))], INSTALL_TIMEOUT)
    # imported from the venv, not from the checkout (cwd is elsewhere)
    where = _run([str(bin_dir / "python"), "-c",
                  "import iodine_py, iodine_py._native; print(iodine_py.__file__)"],
                 STEP_TIMEOUT, cwd=tmp_path).strip()
    assert where.startswith(str(tmp_path / "venv")), where
    version = _run([str(bin_dir / "iodine"), "--version"], STEP_TIMEOUT, cwd=tmp_path)
    assert version.strip() == f"iodine-py {iodine_py.__version__}"

    (tmp_path / "tiny_app.py").write_text(APP)
    srv = run_server(argv=[str(bin_dir / "iodine"), "tiny_app.py", "-p", "0", "-b", "127.0.0.1"],
                     cwd=tmp_path, env={"PYTHONPATH": None, "VIRTUAL_ENV": None})
    resp = srv.get("/")
    assert resp.status == 200
    assert resp.body == b"packaged iodine-py"
    assert srv.stop() == 0, f"SIGTERM: exit {srv.returncode}; stderr:\n{srv.stderr}"


def test_sdist_compiles_and_installs_in_a_fresh_venv(dist, tmp_path):
    bin_dir = _venv(tmp_path / "venv")
    _run([str(bin_dir / "pip"), "install", "--no-binary", "iodine-py",
          str(_one(dist, "*.tar.gz"))], INSTALL_TIMEOUT)
    version = _run([str(bin_dir / "iodine"), "--version"], STEP_TIMEOUT, cwd=tmp_path)
    assert version.strip() == f"iodine-py {iodine_py.__version__}"


OLDEST = "3.9"  # pyproject's requires-python; setuptools>=77 (PEP 639) needs it


def test_requires_python_and_readme_agree_on_the_oldest_python():
    text = (REPO_ROOT / "pyproject.toml").read_text()
    assert f'requires-python = ">={OLDEST}"' in text
    assert f"Python {OLDEST}+" in (REPO_ROOT / "README.md").read_text()


def test_the_oldest_supported_python_builds_and_serves(dist, tmp_path, run_server):
    import glob
    import shutil

    found = [shutil.which(f"python{OLDEST}")] + sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{OLDEST}*/bin/python{OLDEST}")))
    works = [p for p in found if p and subprocess.run(
        [p, "-c", "import venv"], capture_output=True, timeout=STEP_TIMEOUT).returncode == 0]
    if not works:
        pytest.skip(f"no python{OLDEST} on this machine")
    exe = works[0]
    _run([exe, "-m", "venv", str(tmp_path / "venv")], STEP_TIMEOUT * 2)
    bin_dir = tmp_path / "venv" / "bin"
    _run([str(bin_dir / "pip"), "install", "--no-binary", "iodine-py",
          str(_one(dist, "*.tar.gz"))], INSTALL_TIMEOUT)
    (tmp_path / "tiny_app.py").write_text(APP)
    srv = run_server(argv=[str(bin_dir / "iodine"), "tiny_app.py", "-p", "0", "-b", "127.0.0.1",
                           "-w", "2"],
                     cwd=tmp_path, env={"PYTHONPATH": None, "VIRTUAL_ENV": None})
    assert srv.get("/").body == b"packaged iodine-py"
    assert srv.stop() == 0, srv.stderr
