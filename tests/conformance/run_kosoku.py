"""Drive the Autobahn|Testsuite fuzzingclient cases (via kosoku) against a server.

Runs the cases one at a time, each bounded by --case-timeout, so a hang costs
one case rather than the run: when a case times out or errs, the server is
probed (a plain GET within 5 s); if it no longer answers, the run stops there
and the cases left are recorded as not run, naming the case after which the
server hung. All results go into one Autobahn-format report directory
(index.json, index.html, a .json/.html per case), the layout the classic
`wstest -m fuzzingclient` writes, plus run.json (timings, hang, problems).

Usage: run_kosoku.py ws://127.0.0.1:PORT OUTDIR [--sections 1-7,9,10] [--case-timeout S]
Exit code: 0 if every selected case produced a verdict, 3 otherwise (the
verdicts themselves are judged by summarize.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from urllib.parse import urlsplit

from kosoku import FailureError, run_fuzzingclient
from kosoku._report import write_reports

# Case ids of Autobahn|Testsuite 25.10.1 / kosoku 0.1.0, sections 1-10, 12
# and 13 (there is no section 8; 11 does not exist either), as (prefix,
# count) runs.
_RUNS = [
    ("1.1", 8), ("1.2", 8), ("2", 11), ("3", 7), ("4.1", 5), ("4.2", 5), ("5", 20),
    ("6.1", 3), ("6.2", 4), ("6.3", 2), ("6.4", 4), ("6.5", 5), ("6.6", 11), ("6.7", 4),
    ("6.8", 2), ("6.9", 4), ("6.10", 3), ("6.11", 5), ("6.12", 8), ("6.13", 5),
    ("6.14", 10), ("6.15", 1), ("6.16", 3), ("6.17", 5), ("6.18", 5), ("6.19", 5),
    ("6.20", 7), ("6.21", 8), ("6.22", 34), ("6.23", 7),
    ("7.1", 6), ("7.3", 6), ("7.5", 1), ("7.7", 13), ("7.9", 9), ("7.13", 2),
    ("9.1", 6), ("9.2", 6), ("9.3", 9), ("9.4", 9), ("9.5", 6), ("9.6", 6), ("9.7", 6),
    ("9.8", 6), ("10.1", 1),
    ("12.1", 18), ("12.2", 18), ("12.3", 18), ("12.4", 18), ("12.5", 18),
    ("13.1", 18), ("13.2", 18), ("13.3", 18), ("13.4", 18), ("13.5", 18), ("13.6", 18),
    ("13.7", 18),
]
ALL_CASES = [f"{prefix}.{i}" for prefix, n in _RUNS for i in range(1, n + 1)]


def parse_sections(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def server_answers(url: str, timeout: float = 5.0) -> bool:
    u = urlsplit(url)
    try:
        with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


async def run_case(url: str, case_id: str, timeout: float):
    try:
        results = await asyncio.wait_for(run_fuzzingclient(url, [case_id]), timeout)
        return list(results), None
    except FailureError as failure:  # the case did not pass; its result is there
        return list(failure.results), None
    except asyncio.TimeoutError:
        return [], f"no verdict within {timeout:.0f}s"
    except Exception as exc:  # e.g. connection refused: the runner gave no verdict
        return [], f"{type(exc).__name__}: {exc}"


async def amain() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("outdir")
    ap.add_argument("--sections", default="1-7,9,10,12,13")
    ap.add_argument("--case-timeout", type=float, default=60.0)
    args = ap.parse_args()

    sections = {str(s) for s in parse_sections(args.sections)}
    cases = [c for c in ALL_CASES if c.split(".")[0] in sections]
    all_results = []
    problems: dict[str, str] = {}
    hung_after = None
    per_section: dict[str, float] = {}
    t_all = time.monotonic()
    for i, case_id in enumerate(cases):
        t0 = time.monotonic()
        results, problem = await run_case(args.url, case_id, args.case_timeout)
        sec = case_id.split(".")[0]
        per_section[sec] = per_section.get(sec, 0.0) + time.monotonic() - t0
        all_results.extend(results)
        if results and any(r.behavior.value == "ERROR" for r in results) and not problem:
            problem = "runner verdict ERROR"
        if problem:
            problems[case_id] = problem
            print(f"case {case_id}: {problem}", flush=True)
            if not server_answers(args.url):
                hung_after = case_id
                last_ok = all_results[-1].case_id if all_results else None
                rest = cases[i + 1 :]
                print(
                    f"server no longer answers (checked after case {case_id}; last case with a "
                    f"verdict: {last_ok}): stopping, {len(rest)} cases not run",
                    flush=True,
                )
                for c in rest:
                    problems[c] = f"not run: server stopped answering after case {case_id}"
                break
    for sec in sorted(per_section, key=int):
        n = sum(1 for r in all_results if r.case_id.split(".")[0] == sec)
        print(f"section {sec:>2}: {n:3d} cases in {per_section[sec]:6.1f}s", flush=True)

    os.makedirs(args.outdir, exist_ok=True)
    if all_results:
        write_reports(all_results, args.outdir)
    took = time.monotonic() - t_all
    with open(os.path.join(args.outdir, "run.json"), "w") as f:
        json.dump(
            {
                "runner": "kosoku",
                "url": args.url,
                "cases": len(cases),
                "verdicts": len(all_results),
                "seconds": round(took, 1),
                "seconds_per_section": {k: round(v, 1) for k, v in per_section.items()},
                "server_hung_after_case": hung_after,
                "last_case_with_verdict": all_results[-1].case_id if all_results else None,
                "problems": problems,
            },
            f,
            indent=2,
        )
    print(f"kosoku: {len(all_results)} of {len(cases)} cases in {took:.1f}s, reports in {args.outdir}/")
    return 3 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(amain()))
