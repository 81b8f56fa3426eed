#!/usr/bin/env python3
"""Run http1_parser over the conformance corpus and report disagreements.

Usage: tests/c/corpus_check.py [--corpus DIR] [--driver PATH] [-v]
                               [--max-line N] [--max-headers N] [--max-head N]

Builds build/corpus_check (tests/c/corpus_check.c) if it is missing or older
than its sources, runs it over every raw file in the manifest twice (as
sent, and with a Host injected into HTTP/1.1 requests that lack one), and
judges each case the way http_replay.py judges a live server:

  valid    every request up to n_ok served, no 4xx/5xx; a 400 is tolerated
           only for an HTTP/1.1 request without Host (RFC 9112 3.2), and then
           the Host-injected run must also be clean ("strict" column).
  invalid  the first n_ok requests served, then an error status, or the
           connection closed (not keep-alive), or the input left incomplete
           (a silent pass: the server would wait, then close on EOF).
  probe    reported as rejected / accepted / incomplete, not judged.

Cases that need non-default gunicorn settings (config_dependent) or carry
an incomplete body are listed apart, as the replay tool skips them. Cases
whose manifest entry carries a note (an upstream-specific expectation) are
counted apart from the rest. The disagreements we chose on purpose are
listed in KNOWN with their reason; exit status 1 when any other valid or
invalid case disagrees. A valid case counts as a disagreement when either
run fails; an invalid case only when the run as sent fails.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_CORPUS = "/work/shared/conformance/http-corpus"


def build(driver):
    srcs = [os.path.join(ROOT, "ext", "http1_parser.c"),
            os.path.join(ROOT, "ext", "http1_parser.h"),
            os.path.join(HERE, "corpus_check.c")]
    if os.path.exists(driver) and all(os.path.getmtime(driver) >= os.path.getmtime(s) for s in srcs):
        return
    os.makedirs(os.path.dirname(driver), exist_ok=True)
    cc = os.environ.get("CC", "cc")
    subprocess.check_call([cc, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                           "-I" + os.path.join(ROOT, "ext"), srcs[0], srcs[2], "-o", driver])


def run(driver, files, extra):
    out = subprocess.run([driver] + extra + files, check=True, capture_output=True).stdout
    res = {}
    for line in out.decode().splitlines():
        path, _, outcomes = line.partition("\t")
        res[path] = outcomes.split()
    return res


def judge_valid(case, o):
    oks = o.count("ok")
    errs = [x for x in o if x.startswith("E")]
    if not errs:
        return "PASS" if oks >= case["n_ok"] or (oks and "close" in o) else "FAIL"
    return "FAIL"


def judge_invalid(case, o):
    n = case["n_ok"]
    if o[:n] != ["ok"] * n:
        return "FAIL"
    rest = o[n:]
    if not rest:
        return "FAIL"  # everything was served and nothing refused
    if rest[0].startswith("E"):
        return "PASS"
    if rest[0] == "close":
        return "PASS"
    if rest[0] == "incomplete":
        return "PASS-silent"
    return "FAIL"


# Disagreements we chose, with the reason; any other disagreement fails the
# run. "strict" means: only with a Host injected (the replay itself passes
# these, as a 400 for a missing Host).
KNOWN = {
    "gunicorn/valid/rfc9112_smuggle_gzip_chunked_01":
        "501: gzip is not implemented (RFC 9112 6.1: SHOULD 501); passing a "
        "still-compressed body to the app unmarked would be worse",
    "gunicorn/valid/025": "strict: gzip before chunked is 501, as above",
    "gunicorn/valid/025_line": "strict: gzip before chunked is 501, as above",
    "llhttp/transfer-encoding__post_with_chunked_as_last_transfer_encoding":
        "strict: deflate before chunked is 501, as above",
    "llhttp/transfer-encoding__post_with_chunked_as_last_transfer_encoding_multiple_headers":
        "strict: deflate before chunked is 501, as above",
    "gunicorn/valid/009":
        "strict: Transfer-Encoding with Content-Length is 400 (RFC 9112 6.1 "
        "allows it; two llhttp invalid cases require it)",
    "h11/test_io_L264_2":
        "obs-fold is 400 (RFC 9112 5.2 allows it; gunicorn/invalid/obs_fold_01 "
        "requires it; values are zero-copy, so unfolding is not an option)",
    "h11/test_io_L561_10":
        "\\x01 in a value is 400 (RFC 9110 5.5 allows it; gunicorn BEL/DEL and "
        "llhttp FF cases require rejecting CTLs, and no rule separates 0x01 "
        "from 0x07)",
    # upstream-noted policy cases
    "gunicorn/invalid/006": "size policy: request line 4112 bytes is under max_line 8190",
    "gunicorn/invalid/008": "size policy: header line 8189 bytes is under max_line 8190",
    "llhttp/invalid__http_protocol_and_announce_method":
        "RFC 9110 9.1: any token is a method",
    "llhttp/method__source_request_with_ice": "ICE/1.0 is not HTTP: 400",
    "llhttp/method__options_request_with_rtsp": "RTSP/1.0 is not HTTP: 400",
    "llhttp/method__announce_request_with_rtsp": "RTSP/1.0 is not HTTP: 400",
    "llhttp/sample__no_http_version": "HTTP/0.9 request lines are not served: 400",
}


def main(argv):
    corpus = DEFAULT_CORPUS
    driver = os.path.join(ROOT, "build", "corpus_check")
    verbose = "-v" in argv
    extra = []
    for opt in ("--max-line", "--max-headers", "--max-head"):
        if opt in argv:
            extra += [opt, argv[argv.index(opt) + 1]]
    if "--corpus" in argv:
        corpus = argv[argv.index("--corpus") + 1]
    if "--driver" in argv:
        driver = argv[argv.index("--driver") + 1]
    build(driver)
    manifest = json.load(open(os.path.join(corpus, "manifest.json")))
    files = [os.path.join(corpus, c["file"]) for c in manifest]
    plain = run(driver, files, extra)
    strict = run(driver, files, extra + ["--inject-host"])

    rows = {"counted": [], "noted": [], "skipped": [], "probe": []}
    for case, path in zip(manifest, files):
        o, so = plain[path], strict[path]
        exp = case["expect"]
        if exp == "probe":
            v = "REJECTED" if any(x.startswith("E") for x in o) else \
                "INCOMPLETE" if "incomplete" in o else "ACCEPTED"
            rows["probe"].append((v, case, o, so))
            continue
        if exp == "valid":
            v = judge_valid(case, o)
            if v == "FAIL" and case["no_host_http11"] and all(
                    x == "E400" for x in o if x.startswith("E")):
                v = "PASS-400-no-host"
            sv = judge_valid(case, so)
        else:
            v = judge_invalid(case, o)
            sv = judge_invalid(case, so)
        bucket = "skipped" if case["config_dependent"] or case.get("incomplete_body") else \
            "noted" if case.get("note") and not case["no_host_http11"] else "counted"
        rows[bucket].append((v, case, o, so, sv))

    def show(title, items, only_bad):
        print(f"\n== {title}")
        for it in items:
            v, case, o, so = it[:4]
            sv = it[4] if len(it) > 4 else ""
            bad = v == "FAIL" or (case["expect"] == "valid" and sv == "FAIL")
            if only_bad and not bad and not verbose:
                continue
            mark = ("known" if case["id"] in KNOWN else "DISAGREE") if bad else "agree"
            print(f"{mark:<9} {v:<17} strict={sv:<12} {case['id']:<70} expect={case['expect']:<7} "
                  f"got={' '.join(o)} | with-host={' '.join(so)}"
                  + (f"  [{case['detail'][:40]}]" if case.get("detail") else "")
                  + (f"  [note: {case['note'][:70]}]" if case.get("note") else "")
                  + (f"\n          why: {KNOWN[case['id']]}" if bad and case["id"] in KNOWN else ""))

    show("counted cases (disagreements only; -v for all)", rows["counted"], True)
    show("cases with an upstream note (policy; disagreements only)", rows["noted"], True)
    show("config-dependent / incomplete-body cases (not counted; all shown)", rows["skipped"], False)
    print("\n== http-garden probes (not judged)")
    for v, case, o, _so in rows["probe"]:
        print(f"{v:<10} {case['id']:<28} got={' '.join(o):<22} | {case['detail'][:90]}")

    def tally(items):
        bad = [it[1]["id"] for it in items
               if it[0] == "FAIL" or (it[1]["expect"] == "valid" and it[4] == "FAIL")]
        return len(items) - len(bad), len(bad), [b for b in bad if b not in KNOWN]
    cp, cf, cnew = tally(rows["counted"])
    np_, nf, nnew = tally(rows["noted"])
    silent = [it[1]["id"] for it in rows["counted"] + rows["noted"] if it[0] == "PASS-silent"]
    probes = {}
    for v, *_ in rows["probe"]:
        probes[v] = probes.get(v, 0) + 1
    print(f"\ncounted: {cp} agree, {cf} disagree ({cf - len(cnew)} known); "
          f"noted: {np_} agree, {nf} disagree ({nf - len(nnew)} known); "
          f"skipped (config/incomplete): {len(rows['skipped'])}; probes: {probes}")
    if silent:
        print(f"invalid cases passed only by staying incomplete ({len(silent)}): {', '.join(silent)}")
    replay_fail = [it[1]["id"] for it in rows["counted"] + rows["noted"] if it[0] == "FAIL"]
    print(f"as sent, the way http_replay.py judges (no Host injected): {len(replay_fail)} fail: "
          + ", ".join(replay_fail))
    unexplained = cnew + nnew
    if unexplained:
        print(f"UNEXPLAINED disagreements: {', '.join(unexplained)}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
