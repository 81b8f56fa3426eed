"""The C core's shape limits (issue 15): files one concern each and small
enough to read, functions small enough to follow.

  - no ext/ file over 1,000 lines;
  - no function over 8 parameters (a long list is a struct waiting to be
    named: build_head's eleven became head_args);
  - no function over cyclomatic complexity 50 (the parsers included: the
    chunked decoder and the framing decision are table-driven);
  - rx_conn's internals are the reactor's: no ext/ file but reactor*.[ch]
    touches c->flags (reactor.h's small inline calls set and read it) or
    the output queue and list links.

Complexity and parameters are measured by lizard (a test extra), the same
tool as `lizard -C 50 -a 8 ext/`.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Dict

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = sorted(glob.glob(os.path.join(ROOT, "ext", "*.[ch]")))

#: Functions allowed past a limit, each with the reason and the way out
#: (none now: http_respond's `finish` became a second entry point,
#: http_respond_begin, rather than a struct the hot path would allocate).
PARAM_EXCEPTIONS: Dict[str, int] = {}


def test_no_ext_file_over_1000_lines() -> None:
    assert SOURCES
    long = {os.path.basename(p): n for p in SOURCES
            if (n := sum(1 for _ in open(p, encoding="utf-8"))) > 1000}
    assert not long, f"split these along their seams: {long}"


def test_no_function_over_the_limits() -> None:
    lizard = pytest.importorskip("lizard")
    problems = []
    seen = 0
    for path in SOURCES:
        for fn in lizard.analyze_file(path).function_list:
            seen += 1
            where = f"{os.path.basename(path)}:{fn.start_line} {fn.name}"
            if fn.cyclomatic_complexity > 50:
                problems.append(f"{where}: complexity {fn.cyclomatic_complexity} > 50")
            if fn.parameter_count > PARAM_EXCEPTIONS.get(fn.name, 8):
                problems.append(f"{where}: {fn.parameter_count} parameters > 8")
    assert seen > 300, f"lizard saw only {seen} functions: is it reading the files?"
    assert not problems, "\n".join(problems)


#: rx_conn members only the reactor may touch (reactor.h says so).
REACTOR_PRIVATE = ("flags", "out_head", "out_tail", "resume_next", "dead_next", "cork_next")


def test_rx_conn_internals_are_the_reactors() -> None:
    member = re.compile(r"(?:->|\.)\s*(%s)\b" % "|".join(REACTOR_PRIVATE))
    problems = []
    checked = 0
    for path in SOURCES:
        name = os.path.basename(path)
        if name.startswith("reactor"):
            continue
        checked += 1
        src = open(path, encoding="utf-8").read()
        src = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), src, flags=re.S)
        for no, line in enumerate(src.splitlines(), 1):
            for m in member.finditer(line):
                problems.append(f"{name}:{no}: .{m.group(1)} ({line.strip()})")
    assert checked > 20, f"only {checked} files checked"
    assert not problems, ("rx_conn's flags, queue and links are the reactor's: use the "
                          "calls in reactor.h\n" + "\n".join(problems))
