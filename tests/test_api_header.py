"""The cdef in iodine_py/_build.py against ext/api.h (what Python may call).

cffi compiles the cdef's functions as calls into the real headers, but a
cdef that names a parameter `void *` where the C says `dsp_actor *`, drops a
parameter the C gained, or names a constant no header defines still builds
(or fails only at import, on another machine). These checks read both sides
as text, so they run without a compiler and say exactly which declaration
drifted:

  - every function the cdef declares is declared, once, by a header that
    ext/api.h includes (directly or through another), with the same return
    type and the same parameter types in the same order;
  - every `#define NAME ...` constant is an enumerator or macro of those
    headers, and every DSP_* kind is numbered in ext/events.h alone;
  - every field the cdef lists for a struct is a field of that struct in
    the headers, with the same type;
  - set_source compiles against ext/api.h and nothing else.
"""
from __future__ import annotations

import ast
import os
import re
from typing import Dict, List, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.path.join(ROOT, "ext")
BUILD = os.path.join(ROOT, "iodine_py", "_build.py")


def _strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", " ", src)


def _cdef() -> str:
    tree = ast.parse(open(BUILD, encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "CDEF" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, str)
            return value
    raise AssertionError("no CDEF string in iodine_py/_build.py")


def _api_headers() -> Dict[str, str]:
    """The headers ext/api.h includes, transitively: name -> text."""
    seen: Dict[str, str] = {}
    todo = ["api.h"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = os.path.join(EXT, name)
        if not os.path.exists(path):
            continue  # a system header
        text = open(path, encoding="utf-8").read()
        seen[name] = text
        todo += re.findall(r'#include\s+"([^"]+)"', text)
    return seen


def _norm_type(t: str) -> str:
    t = re.sub(r"\s+", " ", t).strip()
    t = re.sub(r"\s*\*\s*", "*", t)
    return t.replace("struct ", "")


def _param_type(p: str) -> str:
    """A parameter's type without its name: 'const char *s' -> 'const char*'."""
    p = p.strip()
    if p in ("void", "..."):
        return p
    fn = re.match(r"(.*)\(\s*\*\s*\w*\s*\)\s*\((.*)\)$", p)
    if fn:  # a function pointer: keep its shape, drop its name
        inner = ",".join(_param_type(x) for x in _split_params(fn.group(2)))
        return _norm_type(fn.group(1)) + "(*)(" + inner + ")"
    p = re.sub(r"\[[^\]]*\]$", "*", p)  # char out[30] is char *out
    m = re.match(r"(.*?[\s\*])(\w+)(\*)?$", p)
    if m and m.group(1).strip() and m.group(2) not in ("int", "char", "long", "void"):
        return _norm_type(m.group(1) + (m.group(3) or ""))
    return _norm_type(p)


def _split_params(params: str) -> List[str]:
    out, depth, cur = [], 0, ""
    for ch in params:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        out.append(cur)
    return out


FUNC = re.compile(
    r"(?:^|(?<=[;{}]))\s*((?:[A-Za-z_]\w*[\s\*]+)+?)\**\s*(?P<name>[A-Za-z_]\w*)\s*"
    r"\((?P<params>[^()]*(?:\([^()]*\)[^()]*)*)\)\s*;", re.M)


def _signature(ret: str, name: str, params: str) -> Tuple[str, Tuple[str, ...]]:
    return _norm_type(ret), tuple(_param_type(p) for p in _split_params(params))


def _functions(text: str) -> Dict[str, List[Tuple[str, Tuple[str, ...]]]]:
    text = _strip_comments(text)
    text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)
    text = re.sub(r'extern\s+"Python"[^;]*;', " ", text)
    found: Dict[str, List[Tuple[str, Tuple[str, ...]]]] = {}
    for m in FUNC.finditer(text):
        head = m.group(0)
        ret_and_name = head[:head.index("(")].lstrip(";{} \n\t")
        ret = ret_and_name[:ret_and_name.rindex(m.group("name"))]
        if re.search(r"\b(typedef|return|if|while|for|switch|sizeof)\b", ret):
            continue
        found.setdefault(m.group("name"), []).append(
            _signature(ret.replace("static", "").replace("inline", ""),
                       m.group("name"), m.group("params")))
    return found


def _cdef_functions() -> Dict[str, Tuple[str, Tuple[str, ...]]]:
    out: Dict[str, Tuple[str, Tuple[str, ...]]] = {}
    for name, sigs in _functions(_cdef()).items():
        assert len(sigs) == 1, f"the cdef declares {name} twice"
        out[name] = sigs[0]
    return out


def test_the_cdef_declares_functions_at_all() -> None:
    funcs = _cdef_functions()
    # the parser of this test must see the cdef: a few we know are there
    for name in ("dsp_next", "http_respond", "http_upgrade", "srv_run", "ps_publish"):
        assert name in funcs, f"{name} not found in the cdef: this test's parser broke"
    assert funcs["srv_run"][1][0] == "void(*)(void)", funcs["srv_run"]


def test_every_cdef_function_is_declared_by_api_h_with_the_same_signature() -> None:
    headers = _api_headers()
    declared: Dict[str, List[Tuple[str, Tuple[str, Tuple[str, ...]]]]] = {}
    for hname, text in headers.items():
        for fname, sigs in _functions(text).items():
            for sig in sigs:
                declared.setdefault(fname, []).append((hname, sig))
    problems = []
    for name, sig in sorted(_cdef_functions().items()):
        if name not in declared:
            problems.append(f"{name}: declared in the cdef, in no header ext/api.h includes")
            continue
        homes = {h for h, _ in declared[name]}
        if len(homes) > 1:
            problems.append(f"{name}: declared in several headers {sorted(homes)}")
        for hname, hsig in declared[name]:
            if hsig != sig:
                problems.append(f"{name}: cdef {sig} != {hname} {hsig}")
    assert not problems, "\n".join(problems)


def _constants(text: str) -> Set[str]:
    text = _strip_comments(text)
    names = set(re.findall(r"#define\s+([A-Z_][A-Z0-9_]*)", text))
    for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", text):
        names |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=[^,]*)?(?:,|$)", body.strip()))
    return names


def test_every_cdef_constant_is_defined_by_api_h() -> None:
    consts = re.findall(r"#define\s+(\w+)\s+\.\.\.", _cdef())
    assert "DSP_HTTP_REQUEST" in consts
    have: Set[str] = set()
    for text in _api_headers().values():
        have |= _constants(text)
    missing = [c for c in consts if c not in have]
    assert not missing, f"cdef constants no api.h header defines: {missing}"


def test_event_kinds_have_one_registry() -> None:
    """DSP_* kinds are numbered in ext/events.h and nowhere else, and no
    two share a number."""
    numbered: Dict[str, List[str]] = {}
    for name in sorted(os.listdir(EXT)):
        if not name.endswith((".h", ".c")):
            continue
        text = _strip_comments(open(os.path.join(EXT, name), encoding="utf-8").read())
        for kind in re.findall(r"\b(DSP_[A-Z_]+)\s*=\s*\d+", text):
            numbered.setdefault(kind, []).append(name)
    assert numbered, "no DSP_* kinds found at all"
    elsewhere = {k: v for k, v in numbered.items() if v != ["events.h"]}
    assert not elsewhere, f"event kinds numbered outside ext/events.h: {elsewhere}"
    events = _strip_comments(open(os.path.join(EXT, "events.h"), encoding="utf-8").read())
    values = re.findall(r"\b(DSP_[A-Z_]+)\s*=\s*(\d+)", events)
    numbers = [int(v) for _, v in values]
    assert len(numbers) == len(set(numbers)), f"two kinds share a number: {values}"


def _struct_fields(text: str, struct: str) -> Dict[str, str]:
    text = _strip_comments(text)
    m = re.search(r"typedef\s+struct\s+" + struct + r"\s*\{(.*?)\}\s*" + struct + r"\s*;",
                  text, re.S)
    if not m:
        return {}
    fields: Dict[str, str] = {}
    for decl in m.group(1).split(";"):
        decl = decl.strip()
        if not decl or decl == "...":
            continue
        decl = re.sub(r":\s*\d+$", "", decl)  # bit-fields
        decl = re.sub(r"\[[^\]]*\]$", "[]", decl)
        fm = re.match(r"(.*?[\s\*])(\w+)(\[\])?$", decl)
        if fm:
            fields[fm.group(2)] = _norm_type(fm.group(1)) + (fm.group(3) or "")
    return fields


def test_cdef_struct_fields_match_the_headers() -> None:
    cdef = _cdef()
    structs = re.findall(r"typedef\s+struct\s+(\w+)\s*\{", cdef)
    assert "http_settings" in structs and "dsp_event" in structs
    headers = _api_headers()
    problems = []
    for s in structs:
        want = _struct_fields(cdef, s)
        have: Dict[str, str] = {}
        for text in headers.values():
            have = have or _struct_fields(text, s)
        if not have:
            problems.append(f"struct {s}: in the cdef, in no api.h header")
            continue
        for field, ftype in want.items():
            if have.get(field) != ftype:
                problems.append(f"{s}.{field}: cdef {ftype!r}, header {have.get(field)!r}")
        if "..." not in cdef.split("typedef struct " + s, 1)[1].split("}", 1)[0]:
            extra = set(have) - set(want)
            if extra:  # a closed struct must list every field: cffi lays it out itself
                problems.append(f"struct {s}: the header has fields the cdef lacks: {extra}")
    assert not problems, "\n".join(problems)


def test_the_binding_compiles_against_api_h_alone() -> None:
    src = open(BUILD, encoding="utf-8").read()
    m = re.search(r"set_source\(\s*\"iodine_py\._native\",\s*((?:'[^']*'\s*)+)", src)
    assert m, "set_source call not found"
    included = re.findall(r'#include\s+\\?"([^"\\]+)\\?"', m.group(1))
    assert included == ["api.h"], included
