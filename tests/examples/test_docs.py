"""The pages in docs/: local links resolve, Python snippets are valid
Python, and docs/config.md names every flag and setting the code has (its
tables are generated: .venv/bin/python docs/gen_config.py)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.server import PYTHON, REPO_ROOT, base_env

DOCS = REPO_ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
# Written in parallel by others; a link to them is fine before they land.
PENDING = {"LIMITS.md"}


def test_the_pages_exist():
    names = {p.name for p in PAGES}
    assert {"wsgi-and-upgrade.md", "client.md", "pubsub.md", "config.md",
            "frameworks.md"} <= names


@pytest.mark.parametrize("page", PAGES + [REPO_ROOT / "README.md"], ids=lambda p: p.name)
def test_local_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        resolved = (page.parent / path).resolve()
        if resolved.name in PENDING and not resolved.exists():
            continue
        assert resolved.exists(), f"{page.name}: link to {target} goes nowhere"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_snippets_compile(page):
    text = page.read_text(encoding="utf-8")
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
        compile(block, f"{page.name} snippet {i + 1}", "exec")


def test_config_page_covers_every_flag_and_setting():
    probe = (
        "import dataclasses, json\n"
        "from iodine_py.cli import build_parser\n"
        "from iodine_py.config import Config\n"
        "flags = [o for a in build_parser()._actions for o in a.option_strings]\n"
        "print(json.dumps({'flags': flags,\n"
        "                  'fields': [f.name for f in dataclasses.fields(Config)]}))\n")
    out = subprocess.run([PYTHON, "-c", probe], cwd=str(REPO_ROOT), env=base_env(),
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    import json

    code = json.loads(out.stdout)
    page = (DOCS / "config.md").read_text(encoding="utf-8")
    missing = [f for f in code["flags"] if f not in ("-h", "--help", "-V", "--version")
               and not re.search(rf"`{re.escape(f)}[ `]", page)]
    missing += [f for f in code["fields"] if f"`{f}`" not in page]
    assert not missing, (f"docs/config.md does not mention {missing}: run "
                         f"{os.path.relpath(PYTHON, REPO_ROOT)} docs/gen_config.py")
