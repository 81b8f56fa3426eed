"""The C core's module graph (issue 15, point 1): no include cycle between
ext/ modules, and the protocol-neutral files name no protocol.

A module is a file stem: ext/x.c and ext/x.h are module x. A few modules
are split over several files that share a private header; those files are
one family, one module (FAMILIES below): the reactor (reactor_int.h is its
private header; its timer, stop and batch parts), the HTTP/1.1 core (http_conn.h
is the private header of http_conn.c, http_env.c, http_resp.c and
http_upgrade.c, and http.h their public face) and the Redis engine
(redis_eng.h, shared by redis.c and redis_stream.c). Everything else, the
shared facts of http_facts.h and the parser of http1_parser.h included, is
a module of its own. A file that includes another module's header depends
on it; the graph must be acyclic, so every module can be read (and tested)
knowing only the ones below it.

Protocol neutrality: pubsub, upgrade and the HTTP core reach a protocol only
through the tables it registers (upgrade.h's up_ops, http_upgrade.h's
http_upgrader). So their code (comments aside) must not include a
protocol's header nor use a protocol's symbols: ws_*, sse_*, raw_*, pmd_*,
wsc_*, UP_WEBSOCKET / UP_SSE. Member names of the settings struct
(set->ws_max_msg: a setting, not a call into websocket.c) do not count.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.path.join(ROOT, "ext")

#: file stem -> the family module it belongs to (see the docstring).
FAMILIES: Dict[str, str] = {
    "reactor_int": "reactor", "reactor_timer": "reactor", "reactor_stop": "reactor",
    "reactor_batch": "reactor",
    "http_conn": "http", "http_env": "http", "http_resp": "http", "http_upgrade": "http",
    "redis_eng": "redis", "redis_stream": "redis",
}

#: The files that must name no protocol.
#: (http.h is left out: it declares http_settings, a listener's settings for
#: every protocol it may speak, whose ws_* fields are settings, not calls.)
NEUTRAL = ["pubsub.c", "pubsub.h", "upgrade.c", "upgrade.h", "http_conn.c",
           "http_conn.h", "http_env.c", "http_resp.c", "http_upgrade.c", "http_upgrade.h",
           "http_facts.c", "http_facts.h"]

PROTOCOL_HEADERS = {"websocket.h", "sse.h", "raw.h", "ws_frame.h", "ws_client.h", "pmd.h"}
PROTOCOL_SYMBOL = re.compile(r"(?<![.>\w])(?:ws|sse|raw|pmd|wsc)_\w+|\bUP_(?:WEBSOCKET|SSE|RAW)\b")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(name: str) -> str:
    stem = os.path.splitext(os.path.basename(name))[0]
    return FAMILIES.get(stem, stem)


def graph() -> Dict[str, Set[str]]:
    g: Dict[str, Set[str]] = {}
    for path in glob.glob(os.path.join(EXT, "*.[ch]")):
        m = module_of(path)
        g.setdefault(m, set())
        with open(path, encoding="utf-8") as f:
            for inc in INCLUDE.findall(f.read()):
                assert os.path.exists(os.path.join(EXT, inc)), f"{path}: {inc} is not in ext/"
                if module_of(inc) != m:
                    g[m].add(module_of(inc))
    return g


def cycles(g: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle (as a path) per strongly connected component of size > 1."""
    found: List[List[str]] = []
    state: Dict[str, int] = {}  # 1 on the stack, 2 done
    stack: List[str] = []

    def visit(v: str) -> None:
        state[v] = 1
        stack.append(v)
        for w in sorted(g.get(v, ())):
            if state.get(w) == 1:
                found.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(g):
        if v not in state:
            visit(v)
    return found


def strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    return re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', src)  # strings too


def test_the_graph_is_read_from_real_includes() -> None:
    g = graph()
    # a few edges that must exist, so an empty or broken parse cannot pass
    assert "upgrade" in g["pubsub"] and "pubsub" in g["websocket"]
    assert "http" in g["websocket"] and "reactor" in g["dispatch"]


def test_no_include_cycle_between_modules() -> None:
    found = cycles(graph())
    assert not found, "include cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_protocol_neutral_files_name_no_protocol() -> None:
    problems = []
    for name in NEUTRAL:
        with open(os.path.join(EXT, name), encoding="utf-8") as f:
            src = f.read()
        bad_inc = sorted(set(INCLUDE.findall(src)) & PROTOCOL_HEADERS)
        if bad_inc:
            problems.append(f"{name} includes {bad_inc}")
        syms = sorted(set(PROTOCOL_SYMBOL.findall(strip_comments(src))))
        if syms:
            problems.append(f"{name} names {syms}")
    assert not problems, "; ".join(problems)


def test_the_symbol_check_sees_a_protocol_call() -> None:
    assert PROTOCOL_SYMBOL.findall("if (x) ws_send_close(c, 1000, NULL, 0);")
    assert PROTOCOL_SYMBOL.findall("return u->kind == UP_SSE;")
    assert not PROTOCOL_SYMBOL.findall("cap = 2 * u->set->ws_max_msg;")
    assert not PROTOCOL_SYMBOL.findall(strip_comments("/* ws_frame.c frames */ int x;"))
