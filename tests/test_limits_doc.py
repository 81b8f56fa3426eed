"""LIMITS.md (and the summary in SECURITY.md) cannot drift from the code.

Every field of iodine_py.config.Config is either a row of the
"Configurable limits" table (with its real CLI flags and default) or named
in the "Settings that are not limits" list; every name in LIMIT_NAMES (the
per-listener settings) is one or the other too. A constant named in the
"Built-in limits" table has the value the table gives, and the bounds the
text gives (MAX_HISTORY, the deflate window, the worker cap) are config.py's.
The defaults `iodine --help` shows: tests/test_cli_defaults.py.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from iodine_py import config
from iodine_py.cli import build_parser
from tests.server import REPO_ROOT

DOC = (REPO_ROOT / "LIMITS.md").read_text(encoding="utf-8")
UNITS = {"": 1, "bytes": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "s": 1,
         "ms": 0.001, "messages": 1}


def section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert m, f"LIMITS.md has no '## {title}' section"
    return m.group(1)


def table(title: str) -> list[list[str]]:
    rows = []
    for line in section(title).splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header row


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


LIMIT_ROWS = {ticked(r[1])[0]: r for r in table("Configurable limits")}


def not_limits() -> set[str]:
    m = re.search(r"Settings that are not limits:(.*?)(?:\n\n|\Z)", section("Configurable limits"),
                  re.S)
    assert m, "LIMITS.md does not list the settings that are not limits"
    return set(ticked(m.group(1)))


def quantity(text: str) -> float:
    """'50 MiB' -> bytes, '40 s' -> seconds, '128' -> 128 (the text before
    any parenthesis)."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)", text.split("(")[0])
    assert m and m.group(2) in UNITS, f"cannot read a quantity from {text!r}"
    return float(m.group(1)) * UNITS[m.group(2)]


def test_every_config_field_is_documented_or_declared_not_a_limit():
    fields = {f.name for f in dataclasses.fields(config.Config)}
    documented = set(LIMIT_ROWS)
    missing = sorted(fields - documented - not_limits())
    assert not missing, f"Config fields missing from LIMITS.md (a limit row, or the " \
                        f"'not limits' list): {missing}"
    both = sorted(documented & not_limits())
    assert not both, f"in the table and in the 'not limits' list: {both}"
    stale = sorted((documented | not_limits()) - fields)
    assert not stale, f"LIMITS.md names settings Config does not have: {stale}"


def test_every_listen_setting_is_accounted_for():
    missing = sorted(set(config.LIMIT_NAMES) - set(LIMIT_ROWS) - not_limits())
    assert not missing, f"LIMIT_NAMES entries missing from LIMITS.md: {missing}"


@pytest.mark.parametrize("field", sorted(LIMIT_ROWS))
def test_documented_flags_exist_and_set_the_field(field):
    flags = ticked(LIMIT_ROWS[field][2])
    assert flags, f"{field}: no CLI flag in LIMITS.md"
    by_flag = {s: a.dest for a in build_parser()._actions for s in a.option_strings}
    for flag in flags:
        assert flag in by_flag, f"{field}: LIMITS.md gives {flag}, which iodine does not accept"
        assert by_flag[flag] == field, f"{flag} sets {by_flag[flag]}, not {field}"


@pytest.mark.parametrize("field", sorted(LIMIT_ROWS))
def test_documented_default_is_the_real_one(field):
    real = getattr(config.Config(), field)
    doc = quantity(LIMIT_ROWS[field][3])
    assert doc == pytest.approx(float(real)), \
        f"{field}: LIMITS.md says {LIMIT_ROWS[field][3]!r}, Config says {real!r}"


def constant(path: str, name: str) -> float:
    """The value of `#define NAME expr`, `NAME = expr` or `name: int = expr`
    (a keyword default) in path, arithmetic only."""
    src = (REPO_ROOT / path).read_text(encoding="utf-8")
    for rx in (rf"^#define {name}\s+(.+?)\s*(?:/\*.*)?$", rf"^{name}\s*=\s*(.+?)\s*(?:#.*)?$",
               rf"\b{name}(?:\s*:\s*\w+)?\s*=\s*([0-9][0-9_ .*+()<<]*)"):
        m = re.search(rx, src, re.M)
        if m:
            expr = re.sub(r"(?<=\d)(?:ull|ul|u|l)\b", "", m.group(1), flags=re.I)
            assert re.fullmatch(r"[0-9_ .*+()<]+", expr), f"{path} {name} = {expr!r}"
            return float(eval(expr, {"__builtins__": {}}))  # digits and operators only
    raise AssertionError(f"LIMITS.md names {name} in {path}, which does not define it")


def checkable(where: str) -> bool:
    names = ticked(where)
    return any("/" in n for n in names) and \
        any(re.fullmatch(r"[A-Z][A-Z0-9_]+|queue_size", n) for n in names)


# rows that name a file and a constant in it (the others describe a rule)
BUILTIN = [(r[0], r[1], r[2]) for r in table("Built-in limits") if checkable(r[2])]


@pytest.mark.parametrize("limit,value,where", BUILTIN, ids=[b[0][:40] for b in BUILTIN])
def test_builtin_constants_have_the_documented_value(limit, value, where):
    names = ticked(where)
    files = [n for n in names if "/" in n]
    consts = [n for n in names if re.fullmatch(r"[A-Z][A-Z0-9_]+|queue_size", n)]
    # "256 KiB or 2 s" pairs with two constants, in order; one value
    # applies to every constant named
    parts = [quantity(v) for v in re.split(r"\bor\b", value.split("(")[0])]
    values = parts if len(parts) == len(consts) else [parts[0]] * len(consts)
    for name, want in zip(consts, values):
        defined = [f for f in files if re.search(rf"\b{name}\b", (REPO_ROOT / f).read_text())]
        assert defined, f"{name} is in none of {files}"
        got = constant(defined[0], name)
        if name.endswith("_MS"):
            got /= 1000  # the table gives seconds
        assert got == pytest.approx(want), \
            f"{limit}: LIMITS.md says {value!r}, {defined[0]} has {name} = {got:g}"


def test_security_md_summary_matches_config():
    text = (REPO_ROOT / "SECURITY.md").read_text(encoding="utf-8")
    m = re.search(r"^## Limits\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "SECURITY.md has no Limits section"
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in m.group(1).splitlines()
            if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line)][1:]
    assert rows, "SECURITY.md's limits table is empty"
    by_flag = {s: a.dest for a in build_parser()._actions for s in a.option_strings}
    for _setting, field, flag, default in rows:
        field, flag = ticked(field)[0], ticked(flag)[0]
        assert field in LIMIT_ROWS, f"SECURITY.md: {field} is not in LIMITS.md"
        assert by_flag.get(flag) == field, f"SECURITY.md: {flag} does not set {field}"
        real = getattr(config.Config(), field)
        assert quantity(default) == pytest.approx(float(real)), \
            f"SECURITY.md: {field} default {default!r}, Config says {real!r}"


def test_bounds_of_settings_are_the_code_s():
    """The bounds LIMITS.md gives in prose come from iodine_py/config.py too
    (the defaults are checked above, the C constants below the table)."""
    rows = {r[1]: " ".join(r) for r in table("Configurable limits")}
    history = rows["`history`"]
    assert f"At most {config.MAX_HISTORY:,}" in history and "`MAX_HISTORY`" in history, history
    bits = rows["`ws_deflate_bits`"]
    assert f"{config.DEFLATE_BITS_MIN}..{config.DEFLATE_BITS_MAX}." in bits, bits
    relay = [" ".join(r) for r in table("Built-in limits") if "CL_MAX_WORKERS" in r[2]]
    assert relay, "LIMITS.md has no row for CL_MAX_WORKERS"
    assert f"half of it, {config.MAX_WORKERS};" in relay[0], relay[0]
    assert f"over {config.MAX_WORKERS} fails" in relay[0], relay[0]
