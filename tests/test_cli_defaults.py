"""The defaults `iodine --help` shows are Config's (issue 15, point 7: limits
shared by C, Python and the command line come from one source).

Every flag that sets a Config field and shows "(default: ...)" shows the
default the field really has, in the flag's unit (a MiB flag shows MiB), and
the environment variables it names are the ones that change the setting;
a flag that only switches something on sets a field that is off by default.
cli.py writes none of those numbers itself: it reads them from Config
(iodine_py/config.py), so the help cannot drift. LIMITS.md's defaults are
checked against Config by tests/test_limits_doc.py, docs/config.md is
generated from both (docs/gen_config.py) and checked here to be current.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess

import pytest

from iodine_py import cli
from iodine_py.config import Config
from tests.server import PYTHON, REPO_ROOT

# environment variables Config (or the CLI) reads for a default
ENV = ("PORT", "THREADS", "WORKERS", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS",
       "IODINE_REDIS_URL", "SCRIPT_NAME", "IODINE_TLS_PASS", "LISTEN_PID", "LISTEN_FDS")
FIELDS = {f.name for f in dataclasses.fields(Config)}
UNIT = dict(cli._SCALED)  # the flag's unit in the field's: bytes per KiB/MiB
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# a value each variable may take, and what the setting becomes with it
PROBES = {"PORT": ("7", 7), "THREADS": ("7", 7), "WORKERS": ("7", 7),
          "WEB_CONCURRENCY": ("7", 7), "FORWARDED_ALLOW_IPS": ("10.1.2.3", "10.1.2.3"),
          "IODINE_REDIS_URL": ("redis://h:1/0", "redis://h:1/0"),
          "SCRIPT_NAME": ("/mounted", "/mounted"), "IODINE_TLS_PASS": ("secret", "secret")}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)


def field_flags() -> list[argparse.Action]:
    return [a for a in cli.build_parser()._actions if a.option_strings and a.dest in FIELDS]


def shown(action: argparse.Action) -> str | None:
    """The text of the help's "(default: ...)", or None."""
    m = cli._DEFAULT.search(" ".join((action.help or "").split()))
    return m.group(1) if m else None


def split_default(text: str) -> tuple[list[str], str]:
    """'$WORKERS, $WEB_CONCURRENCY or 1' -> (['WORKERS', 'WEB_CONCURRENCY'],
    '1'); '0, the kernel's SOMAXCONN' -> ([], '0'): the variables, then the
    value's first word."""
    env = re.findall(r"\$([A-Z_]+)", text)
    rest = re.sub(r"^(?:\$[A-Z_]+(?:,\s*|\s+or\s+|\s*$))*", "", text)
    m = re.match(r"[^\s,;:)]+", rest)
    return env, m.group(0) if m else ""


def test_the_default_reader_reads_each_form():
    assert split_default("$PORT or 3000; 0 picks a free port") == (["PORT"], "3000")
    assert split_default("$WORKERS, $WEB_CONCURRENCY or 1") == (["WORKERS", "WEB_CONCURRENCY"],
                                                                "1")
    assert split_default("0: the open-file limit less an eighth") == ([], "0")
    assert split_default("$IODINE_REDIS_URL") == (["IODINE_REDIS_URL"], "")
    assert split_default("0.0.0.0") == ([], "0.0.0.0")
    action = argparse.Action(["--x"], "x", help="a thing (default 0: none)")
    assert shown(action) == "0: none"


def test_the_flags_are_found():
    dests = {a.dest for a in field_flags()}
    assert {"port", "max_body", "ws_max_msg", "history_bytes", "log_level"} <= dests


@pytest.mark.parametrize("action", field_flags(), ids=lambda a: a.option_strings[-1])
def test_help_default_is_configs(action):
    real = getattr(Config(), action.dest)
    text = shown(action)
    if action.nargs == 0:  # a switch: it turns on what is off by default
        assert isinstance(action, argparse._StoreTrueAction) and real is False, \
            f"{action.option_strings[-1]}: Config's {action.dest} is {real!r} by default"
        return
    if text is None:
        assert real is None or real == [], \
            f"{action.option_strings[-1]}: --help shows no default, Config's is {real!r}"
        return
    _, value = split_default(text)
    where = f"{action.option_strings[-1]} shows (default: {text}); Config's {action.dest} is"
    if isinstance(real, bool):
        assert value == ("on" if real else "off"), f"{where} {real!r}"
    elif real is None or real == "":
        assert not NUMBER.fullmatch(value), f"{where} {real!r}"
    elif isinstance(real, (int, float)):
        assert NUMBER.fullmatch(value), f"{where} {real!r}: not a number"
        assert float(value) * UNIT.get(action.dest, 1) == pytest.approx(real), f"{where} {real!r}"
    else:
        assert value == str(real), f"{where} {real!r}"


@pytest.mark.parametrize("action", [a for a in field_flags() if split_default(shown(a) or "")[0]],
                         ids=lambda a: a.option_strings[-1])
def test_help_names_the_variables_that_set_it(action, monkeypatch):
    for var in split_default(shown(action) or "")[0]:
        raw, want = PROBES[var]
        monkeypatch.setenv(var, raw)
        cfg = cli.config_from_args(cli.build_parser().parse_args(["app.py"]))
        assert getattr(cfg, action.dest) == want, \
            f"{action.option_strings[-1]}: ${var}={raw} gives {getattr(cfg, action.dest)!r}"
        monkeypatch.delenv(var)


def test_cli_writes_no_default_of_its_own():
    src = (REPO_ROOT / "iodine_py" / "cli.py").read_text(encoding="utf-8")
    literal = re.findall(r"\(default:?\s*(?:\$\w+(?:,\s*|\s+or\s+))*\d[^)\"]*", src)
    assert not literal, f"cli.py repeats a default: read it from Config instead: {literal}"


def test_config_doc_is_current():
    r = subprocess.run([PYTHON, "docs/gen_config.py", "--check"], cwd=str(REPO_ROOT),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
