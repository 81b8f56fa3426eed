"""Our pattern language against Redis's own matcher (PSUBSCRIBE).

ext/glob.h promises "the same rules as Redis PSUBSCRIBE", so that a pattern
subscription means the same locally (glob.c decides) and through the Redis
engine (Redis decides; the engine hands each pmessage to the pattern
subscription it names). Here every
(pattern, channel) pair of a few hundred patterns x a few hundred channels
-- handwritten edge cases plus random ones from the alphabet `ab*?[]!^\\-`
-- is decided twice:

  Redis:  one redis-py connection PSUBSCRIBEs every pattern; each channel is
          PUBLISHed once; the pmessages that come back are the matches.
  iodine: ps_app's /glob endpoints: a global pattern subscription per
          pattern records (pattern, channel) for each local publish.

Disagreements fail, listed by pattern. Patterns are reported in two groups:

  well-formed   every '[' set is closed, has a first member that is not ']'
                (so not `[]`, `[^]`, POSIX's `[]a]`) and no range ends at the
                closing ']' (`[a-]`: Redis takes ']' as the range's end and
                reads on); no lone trailing '\\'.
  malformed     the rest. glob.h (since e7e3a3a) follows Redis exactly here
                too -- `[]` is an empty set, an unclosed set takes the rest of
                the pattern -- so these are held to Redis as strictly; they
                are a separate test so that a deliberate dialect choice there
                would not hide a real bug in the well-formed half.

Random pairs come from a fixed seed ($PS_GLOB_SEED to change it).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict

import pytest

from tests.pubsub.conftest import need_redis
from tests.pubsub.pslib import http_json
from tests.pubsub.redisproc import RedisServer
from tests.server import ServerProcess, base_env, iodine_argv

SEED = int(os.environ.get("PS_GLOB_SEED", "20240611"))
DONE = "__glob_done__"

HAND_PATTERNS = [
    # plain, * and ?
    "a", "ab", "*", "**", "a*", "*a", "*a*", "a*b", "a**b", "*b*a*", "?", "??", "a?", "?a?",
    "a?*", "*?", "?*?",
    # sets and ranges
    "[ab]", "[a]", "[ab]*", "*[ab]", "[a-b]", "[b-a]", "[a-c]x", "[-a]", "[--a]", "[a-b-c]",
    "[*]", "[?]", "[[]", "[\\]]", "[\\\\]", "[a\\-b]", "[\\a-c]", "[a-\\c]", "[!]a]",
    "[!a]", "[!ab]", "[!a-b]", "[^a]", "[^ab]", "[^a-b]", "[^!]", "[!^]", "[a^]", "[a!]",
    "[^-]", "[!-]",
    # escapes
    "\\a", "\\*", "\\?", "\\[", "\\]", "\\\\", "a\\*b", "\\[a\\]", "*\\**", "\\-",
    # malformed on purpose
    "[", "[a", "[ab", "a[", "[]", "[^]", "[!]", "[]a]", "[^]a]", "[a-]", "[a-]b", "a\\",
    "[a\\", "[\\", "]", "a]", "[a-\\]]",
]

HAND_CHANNELS = [
    "a", "b", "c", "x", "ab", "ba", "aa", "abc", "aab", "abb", "axb", "a*b", "a?b",
    "*", "?", "[", "]", "\\", "-", "!", "^", "[a]", "[]", "[a", "a]", "]a", "]]", "[[",
    "a\\", "\\a", "\\]", "a-", "-a", "!a", "^a", "a!", "bab", "[ab", "a*", "**", "*a*",
]

PAT_ALPHABET = "ab*?[]!^\\-"
CHAN_ALPHABET = "ab[]!^\\-*?"


def random_cases(rng: random.Random) -> tuple[list[str], list[str]]:
    pats = {"".join(rng.choice(PAT_ALPHABET) for _ in range(rng.randint(1, 7)))
            for _ in range(220)}
    # bias toward sets that are closed, so the strict half is not tiny
    for _ in range(120):
        body = "".join(rng.choice("ab!^\\-*?[") for _ in range(rng.randint(1, 4)))
        pre = "".join(rng.choice("ab*?") for _ in range(rng.randint(0, 2)))
        post = "".join(rng.choice("ab*?") for _ in range(rng.randint(0, 2)))
        pats.add(f"{pre}[{body}]{post}")
    chans = {"".join(rng.choice(CHAN_ALPHABET) for _ in range(rng.randint(1, 5)))
             for _ in range(200)}
    return sorted(pats), sorted(chans)


def malformed_reason(p: str):
    """Why `p` is outside the strict (well-formed) subset, or None."""
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 == n:
                return "trailing backslash"
            i += 2
            continue
        if c != "[":
            i += 1
            continue
        j = i + 1
        if j < n and p[j] in "^!":
            j += 1
        if j >= n:
            return "unclosed ["
        if p[j] == "]":
            return "set starting with ']' (empty set in Redis, a member in POSIX)"
        while True:
            if j >= n:
                return "unclosed ["
            if p[j] == "]":
                break
            if p[j] == "\\":
                if j + 1 >= n:
                    return "unclosed [ (ends in an escape)"
                j += 2
            else:
                j += 1
            if j + 1 < n and p[j] == "-" and p[j + 1] == "]":
                return "range ending at the closing ']'"
            if j + 1 < n and p[j] == "-":
                j += 1  # the range's end
                if p[j] == "\\":
                    if j + 1 >= n:
                        return "unclosed [ (ends in an escape)"
                    j += 2
                else:
                    j += 1
        i = j + 1
    return None


def redis_matches(rs: RedisServer, patterns: list[str], channels: list[str],
                  timeout: float = 30.0) -> set:
    r = rs.client()
    ps = r.pubsub()
    try:
        ps.psubscribe(*patterns)
        ps.subscribe(DONE)
        deadline = time.monotonic() + timeout
        confirmed = 0
        while confirmed < len(patterns) + 1:
            m = ps.get_message(timeout=max(0.01, deadline - time.monotonic()))
            assert time.monotonic() < deadline, "Redis did not confirm the subscriptions"
            if m and m["type"] in ("psubscribe", "subscribe"):
                confirmed += 1
        for i, ch in enumerate(channels):
            r.publish(ch, str(i))
        r.publish(DONE, "end")
        hits = set()
        while True:
            m = ps.get_message(timeout=max(0.01, deadline - time.monotonic()))
            assert time.monotonic() < deadline, "Redis did not deliver the end marker in time"
            if m is None:
                continue
            if m["type"] == "message" and m["channel"] == DONE.encode():
                return hits
            if m["type"] == "pmessage" and m["channel"] != DONE.encode():
                hits.add((m["pattern"].decode(), m["channel"].decode()))
    finally:
        ps.close()
        r.close()


def iodine_matches(srv: ServerProcess, patterns: list[str], channels: list[str]) -> set:
    http_json(srv, "POST", "/glob/sub", json.dumps({"patterns": patterns}).encode())
    mark = srv.stderr_mark()
    token = f"t{time.monotonic_ns()}"
    http_json(srv, "POST", "/glob/pub", json.dumps({"channels": channels, "token": token})
              .encode())
    srv.wait_for_stderr(f"ps-glob done {token}", timeout=30, start=mark)
    return {tuple(x) for x in http_json(srv, "GET", "/glob/results")}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """{(pattern, channel): (redis, iodine)} over every pair, computed once."""
    need_redis()
    rng = random.Random(SEED)
    rp, rc = random_cases(rng)
    patterns = sorted(set(HAND_PATTERNS) | set(rp))
    channels = sorted(set(HAND_CHANNELS) | set(rc))
    rs = RedisServer(tmp_path_factory.mktemp("glob-redis"))
    srv = None
    try:
        rs.start()
        srv = ServerProcess(iodine_argv("ps_app"), env=base_env())
        srv.wait_listening()
        by_redis = redis_matches(rs, patterns, channels)
        by_us = iodine_matches(srv, patterns, channels)
        yield {(p, c): ((p, c) in by_redis, (p, c) in by_us)
               for p in patterns for c in channels}
    finally:
        rs.kill()
        if srv is not None:
            srv.stop()
            problems = srv.problems()
            assert not problems, f"server: {problems}\n{srv.stderr}"


def _report(pairs: dict, limit: int = 60) -> str:
    by_pat = defaultdict(list)
    for (p, c), (r, us) in sorted(pairs.items()):
        by_pat[p].append(f"{c!r}: redis {'match' if r else 'no'}, iodine {'match' if us else 'no'}")
    lines = []
    for p, items in list(by_pat.items())[:limit]:
        reason = malformed_reason(p)
        lines.append(f"  pattern {p!r}" + (f" [{reason}]" if reason else "") + ":")
        lines += [f"      {x}" for x in items[:8]]
        if len(items) > 8:
            lines.append(f"      ... and {len(items) - 8} more channels")
    if len(by_pat) > limit:
        lines.append(f"  ... and {len(by_pat) - limit} more patterns")
    return "\n".join(lines)


def test_the_sample_is_meaningful(verdicts):
    patterns = {p for p, _ in verdicts}
    strict = {p for p in patterns if malformed_reason(p) is None}
    matches = sum(1 for r, _ in verdicts.values() if r)
    assert len(strict) >= 150, f"only {len(strict)} well-formed patterns"
    assert len(patterns) - len(strict) >= 30
    assert matches >= 500 and len(verdicts) - matches >= 500, matches


def test_well_formed_patterns_match_like_redis(verdicts):
    bad = {k: v for k, v in verdicts.items() if v[0] != v[1] and malformed_reason(k[0]) is None}
    if bad:
        npat = len({p for p, _ in bad})
        pytest.fail(f"{len(bad)} (pattern, channel) pairs in {npat} well-formed patterns where "
                    f"iodine's glob and Redis PSUBSCRIBE disagree (seed {SEED}):\n"
                    + _report(bad), pytrace=False)


def test_malformed_patterns_match_like_redis(verdicts):
    bad = {k: v for k, v in verdicts.items()
           if v[0] != v[1] and malformed_reason(k[0]) is not None}
    if bad:
        reasons = sorted({malformed_reason(p) for p, _ in bad})
        pytest.fail(f"{len(bad)} (pattern, channel) pairs in malformed patterns where iodine's "
                    f"glob and Redis PSUBSCRIBE disagree ({'; '.join(reasons)}; seed {SEED}):\n"
                    + _report(bad, limit=25), pytrace=False)


def test_classifier():
    """malformed_reason itself, on the handwritten cases it must get right."""
    for p in ["a", "[ab]", "[a-b]", "[!a]", "[^a-b]", "[\\]]", "[a\\-b]", "\\[", "[--a]",
              "[\\a-c]", "[a-\\c]", "*[ab]?"]:
        assert malformed_reason(p) is None, p
    for p in ["[", "[a", "[]", "[^]", "[!]", "[]a]", "[a-]", "a\\", "[a\\", "[a-\\]]"[:-1]]:
        assert malformed_reason(p) is not None, p
