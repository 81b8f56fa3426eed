"""Summarize an Autobahn fuzzingclient report directory (index.json + per-case .json).

Works on reports written by kosoku (run_kosoku.py) and by the classic
`wstest -m fuzzingclient`: both use Autobahn's report layout.

Prints a Markdown table (per section: OK / NON-STRICT / INFORMATIONAL /
FAILED / UNIMPLEMENTED), then every case that is not OK with what the server
did, and writes the same text to OUTDIR/summary.md.

Exit code: 1 if any case's behavior is FAILED, NON-STRICT or ERROR, if any
case's closing behavior is FAILED, UNCLEAN or WRONG CODE, or if a case that
was expected is missing from the report; otherwise 0. INFORMATIONAL and
UNIMPLEMENTED do not fail the run.

Usage: summarize.py REPORT_DIR [--expect-sections 1-7,9,10] [--title TEXT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter

SECTION_NAMES = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Misc",
    "12": "WebSocket Compression (different payloads)",
    "13": "WebSocket Compression (different parameters)",
}
# Case counts of Autobahn|Testsuite 25.10.1 (and kosoku 0.1.0), per section.
SECTION_SIZES = {"1": 16, "2": 11, "3": 7, "4": 10, "5": 20, "6": 145, "7": 37, "9": 54, "10": 1,
                 "12": 90, "13": 126}
COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED"]
# UNIMPLEMENTED is a failure too: sections 12 and 13 report it when the
# server declines permessage-deflate, which it implements.
BAD_BEHAVIOR = {"FAILED", "NON-STRICT", "ERROR", "UNIMPLEMENTED"}
BAD_CLOSE = {"FAILED", "UNCLEAN", "WRONG CODE"}


def sort_key(case_id: str) -> list[int]:
    return [int(p) for p in case_id.split(".")]


def parse_sections(spec: str) -> list[str]:
    out: list[str] = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(str(s) for s in range(int(a), int(b) + 1) if str(s) in SECTION_SIZES)
        elif part:
            out.append(part)
    return out


def strip_html(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text or "").strip()


def describe(case: dict) -> str:
    """One line: what the server did, against what the case wanted."""
    exp = case.get("expectedClose") or {}
    codes = exp.get("closeCode") or []
    want_closer = "us (client)" if exp.get("closedByMe") else "server"
    got_closer = "us (client)" if case.get("closedByMe") else "server"
    bits = [f"result: {strip_html(case.get('result', ''))}"]
    bits.append(
        f"close: expected code {'/'.join(map(str, codes)) or 'any'} initiated by {want_closer}"
        f"{', clean' if exp.get('requireClean') else ''}; got code {case.get('remoteCloseCode')}"
        f" initiated by {got_closer}, wasClean={case.get('wasClean')}"
    )
    if case.get("remoteCloseCode") is None and not case.get("droppedByMe") and not case.get("wasClean"):
        bits.append("the server dropped the TCP connection without sending a Close frame")
    if case.get("wasNotCleanReason"):
        bits.append(f"not clean: {case['wasNotCleanReason']}")
    if case.get("behaviorClose") not in ("OK", "INFORMATIONAL"):
        bits.append(f"closing verdict: {case.get('resultClose')}")
    received = case.get("received")
    expected = case.get("expected") or {}
    if case.get("behavior") != "OK" and "OK" in expected:
        bits.append(f"events for OK: {short(expected['OK'])}; received: {short(received)}")
    elif case.get("behavior") not in ("OK", "INFORMATIONAL", "UNIMPLEMENTED"):
        bits.append(f"received: {short(received)}")
    if case.get("reportTime"):
        bits.append(f"{case.get('duration')} ms")
    return "; ".join(bits)


def short(obj, limit: int = 160) -> str:
    text = json.dumps(obj, ensure_ascii=True)
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--expect-sections", default="1-10")
    ap.add_argument("--title", default="")
    args = ap.parse_args()

    index_path = os.path.join(args.outdir, "index.json")
    index = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    entries: dict[str, dict] = {}
    agent = "?"
    for agent, cases in index.items():  # noqa: B007 (the last one is named below)
        for cid, entry in cases.items():
            path = os.path.join(args.outdir, entry["reportfile"])
            case = dict(entry)
            if os.path.exists(path):
                with open(path) as f:
                    case.update(json.load(f))
            entries[cid] = case

    run_info = {}
    run_path = os.path.join(args.outdir, "run.json")
    if os.path.exists(run_path):
        with open(run_path) as f:
            run_info = json.load(f)
    problems: dict[str, str] = run_info.get("problems", {})

    sections = parse_sections(args.expect_sections)
    lines: list[str] = []
    if args.title:
        lines.append(args.title)
        lines.append("")
    lines.append("| Section | Cases | OK | NON-STRICT | INFORMATIONAL | FAILED | UNIMPLEMENTED |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    totals: Counter = Counter()
    failing = False
    missing_all: list[str] = []
    for sec in sections:
        ids = sorted((c for c in entries if c.split(".")[0] == sec), key=sort_key)
        counts: Counter = Counter()
        for cid in ids:
            b = entries[cid]["behavior"]
            counts["FAILED" if b == "ERROR" else b] += 1
        missing = SECTION_SIZES.get(sec, len(ids)) - len(ids)
        if missing > 0:
            counts["FAILED"] += missing  # a case that never produced a verdict
            missing_all.append(f"{sec}.* ({missing} of {SECTION_SIZES[sec]} cases have no verdict)")
        total = len(ids) + max(missing, 0)
        totals["Cases"] += total
        for col in COLUMNS:
            totals[col] += counts[col]
        name = SECTION_NAMES.get(sec, "")
        lines.append(
            f"| {sec} {name} | {total} | " + " | ".join(str(counts[c]) for c in COLUMNS) + " |"
        )
    lines.append(
        f"| **all** | **{totals['Cases']}** | " + " | ".join(f"**{totals[c]}**" for c in COLUMNS) + " |"
    )
    lines.append("")

    non_ok = [
        cid
        for cid in sorted(entries, key=sort_key)
        if cid.split(".")[0] in sections
        and (entries[cid]["behavior"] != "OK" or entries[cid]["behaviorClose"] != "OK")
    ]
    if non_ok or missing_all:
        lines.append("Cases that are not OK (behavior / closing behavior):")
        lines.append("")
        no_handshake = [
            cid for cid in non_ok if entries[cid].get("wasOpenHandshakeTimeout")
            or "opening handshake was never completed" in (entries[cid].get("resultClose") or "")
        ]
        if no_handshake:
            failing = True
            lines.append(
                f"- **{len(no_handshake)} cases, {no_handshake[0]} ... {no_handshake[-1]}**: FAILED, the "
                "server never answered the WebSocket opening handshake (server hung or gone): "
                + ", ".join(no_handshake)
            )
        for cid in non_ok:
            if cid in no_handshake:
                continue
            c = entries[cid]
            bad = c["behavior"] in BAD_BEHAVIOR or c["behaviorClose"] in BAD_CLOSE
            failing |= bad
            lines.append(
                f"- **{cid}** {c['behavior']} / {c['behaviorClose']}: {strip_html(c.get('description', ''))}"
            )
            lines.append(f"  - {describe(c)}")
        for m in missing_all:
            failing = True
            lines.append(f"- **{m}**")
        not_run = [c for c, why in problems.items() if c not in entries]
        hung = run_info.get("server_hung_after_case")
        for cid in not_run:
            if hung and problems[cid].startswith("not run"):
                continue
            lines.append(f"  - {cid}: no verdict ({problems[cid]})")
        if hung:
            skipped = sum(1 for c in not_run if problems[c].startswith("not run"))
            lines.append(
                f"  - the server stopped answering (a GET / got no reply within 5 s) when case "
                f"**{hung}** got no verdict; the last case with a verdict was "
                f"**{run_info.get('last_case_with_verdict')}**; the {skipped} cases after {hung} were not run"
            )
        lines.append("")
    else:
        lines.append("Every case is OK.")
        lines.append("")

    text = "\n".join(lines)
    print(text)
    if os.path.isdir(args.outdir):
        with open(os.path.join(args.outdir, "summary.md"), "w") as f:
            f.write(text + "\n")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
