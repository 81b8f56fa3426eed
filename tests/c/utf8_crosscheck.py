#!/usr/bin/env python3
"""Cross-check ws_frame's UTF-8 validator (and its SHA-1 / accept key)
against Python.

Usage: tests/c/utf8_crosscheck.py [-n COUNT] [--seed S] [-v]

Builds build/libws_frame_xcheck.so from ext/ws_frame.c plus a small driver
(written to build/ by this script) and loads it with ctypes. For each byte
string the driver feeds the validator whole, split in two at every byte and
byte by byte; if those disagree among themselves it says so, else it answers
one verdict:

  -1  valid and complete     -2  valid so far, ends inside a character
  i   refused, and byte i is the first one that made it impossible

Python's strict decoder (no surrogates, no overlongs, nothing above
U+10FFFF) gives the same three answers: success is -1; "unexpected end of
data" is -2; "invalid start byte" fails at err.start; "invalid continuation
byte" at err.end (CPython reports the maximal valid subpart, so its end is
the offending byte, exactly the validator's fail-fast point).

Strings: every string of 0..2 bytes, random bytes, strings over an alphabet
of boundary bytes, and valid text of random code points, mutated (truncated,
a byte replaced / inserted / deleted, surrogates, overlongs and values above
U+10FFFF encoded by hand). Exit status 1 on any disagreement.
"""
import argparse
import base64
import ctypes
import hashlib
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "build")

DRIVER = r"""
#include "ws_frame.h"
/* One verdict per string; -9 when whole, split and bytewise feeding
 * disagree among themselves. */
static long verdict(const uint8_t *s, size_t n) {
  uint32_t st = 0;
  size_t i, k;
  long at = -1, v;
  int whole = ws_utf8_feed(&st, s, n);
  int complete = whole == 0 && ws_utf8_complete(st);
  uint32_t sb = 0;
  for (i = 0; i < n; i++)
    if (ws_utf8_feed(&sb, s + i, 1) < 0) {
      at = (long)i;
      break;
    }
  if ((whole < 0) != (at >= 0))
    return -9;
  if (at < 0 && sb != st)
    return -9;
  v = at >= 0 ? at : complete ? -1 : -2;
  for (k = 0; k <= n; k++) {
    uint32_t s2 = 0;
    int r = ws_utf8_feed(&s2, s, k);
    if (r == 0)
      r = ws_utf8_feed(&s2, s + k, n - k);
    if ((r < 0) != (at >= 0) || (r == 0 && s2 != st))
      return -9;
  }
  return v;
}
/* A batch: strings back to back in buf, offs[0..count] their bounds. */
void xc_batch(const uint8_t *buf, const size_t *offs, size_t count,
              long *out) {
  size_t i;
  for (i = 0; i < count; i++)
    out[i] = verdict(buf + offs[i], offs[i + 1] - offs[i]);
}
"""


def build():
    os.makedirs(BUILD, exist_ok=True)
    drv = os.path.join(BUILD, "utf8_xcheck_driver.c")
    lib = os.path.join(BUILD, "libws_frame_xcheck.so")
    with open(drv, "w") as f:
        f.write(DRIVER)
    cc = os.environ.get("CC", "cc")
    subprocess.check_call([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
                           "-shared", "-fPIC", "-I" + os.path.join(ROOT, "ext"),
                           os.path.join(ROOT, "ext", "ws_frame.c"), drv, "-o", lib])
    return ctypes.CDLL(lib)


def python_verdict(s):
    try:
        s.decode("utf-8")
        return -1
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data":
            return -2
        if e.reason == "invalid start byte":
            return e.start
        if e.reason == "invalid continuation byte":
            return e.end
        raise


# Hand encodings, to reach what str.encode refuses to produce.
def enc(cp, length):
    if length == 1:
        return bytes([cp])
    lead = {2: 0xC0, 3: 0xE0, 4: 0xF0}[length]
    out = []
    for _ in range(length - 1):
        out.append(0x80 | (cp & 0x3F))
        cp >>= 6
    return bytes([lead | cp] + out[::-1])


BOUNDARY = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
            0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3,
            0xF4, 0xF5, 0xF7, 0xF8, 0xFF]


def random_cp(rng):
    r = rng.random()
    if r < 0.3:
        return rng.randrange(0x80)
    if r < 0.5:
        return rng.randrange(0x80, 0x800)
    if r < 0.75:
        cp = rng.randrange(0x800, 0x10000)
        return cp if not 0xD800 <= cp <= 0xDFFF else 0xD7FF
    if r < 0.8:
        return rng.choice([0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD,
                           0xFFFE, 0xFFFF, 0x10000, 0x10FFFF, 0xFEFF])
    return rng.randrange(0x10000, 0x110000)


def bad_piece(rng):
    k = rng.randrange(5)
    if k == 0:  # surrogate
        return enc(rng.randrange(0xD800, 0xE000), 3)
    if k == 1:  # overlong
        length = rng.choice([2, 3, 4])
        top = {2: 0x80, 3: 0x800, 4: 0x10000}[length]
        return enc(rng.randrange(top), length)
    if k == 2:  # above U+10FFFF, still 4 bytes
        return enc(rng.randrange(0x110000, 0x200000), 4)
    if k == 3:  # a never-valid byte
        return bytes([rng.choice([0xC0, 0xC1] + list(range(0xF5, 0x100)))])
    return bytes([rng.randrange(0x80, 0xC0)])  # stray continuation


def structured(rng):
    s = bytearray()
    for _ in range(rng.randrange(0, 12)):
        if rng.random() < 0.15:
            s += b"abcdefghijklmnop"[: rng.randrange(1, 17)]  # ASCII runs
        s += chr(random_cp(rng)).encode("utf-8")
    m = rng.randrange(8)
    if m == 0 and s:
        del s[rng.randrange(len(s)):]  # truncate
    elif m == 1 and s:
        s[rng.randrange(len(s))] = rng.randrange(256)
    elif m == 2:
        s.insert(rng.randrange(len(s) + 1), rng.randrange(256))
    elif m == 3 and s:
        del s[rng.randrange(len(s))]
    elif m == 4:
        i = rng.randrange(len(s) + 1)
        s[i:i] = bad_piece(rng)
    # m >= 5: left valid
    return bytes(s)


def strings(n, rng):
    yield b""
    for a in range(256):
        yield bytes([a])
    for a in range(256):
        for b in range(256):
            yield bytes([a, b])
    for i in range(n):
        k = i % 4
        if k == 0:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 13)))
        elif k == 1:
            yield bytes(rng.choice(BOUNDARY) for _ in range(rng.randrange(1, 9)))
        else:
            yield structured(rng)


def check_utf8(lib, n, rng, verbose):
    lib.xc_batch.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t),
                             ctypes.c_size_t, ctypes.POINTER(ctypes.c_long)]
    total = bad = complete_bad = valid = 0
    batch = []

    def flush():
        nonlocal total, bad, complete_bad, valid
        offs = [0]
        for s in batch:
            offs.append(offs[-1] + len(s))
        arr = (ctypes.c_size_t * len(offs))(*offs)
        out = (ctypes.c_long * len(batch))()
        lib.xc_batch(b"".join(batch), arr, len(batch), out)
        for s, got in zip(batch, out):
            want = python_verdict(s)
            total += 1
            valid += want == -1
            if got != want:
                bad += 1
                # a string Python calls valid (complete) must never differ
                complete_bad += want == -1 or got == -1
                if verbose or bad <= 20:
                    print("DISAGREE %s: validator %d, python %d" % (s.hex(" "), got, want))
        batch.clear()

    for s in strings(n, rng):
        batch.append(s)
        if len(batch) == 20000:
            flush()
    if batch:
        flush()
    print("utf8: %d strings (%d valid), %d disagreements (%d on complete strings)"
          % (total, valid, bad, complete_bad))
    return bad == 0


def check_sha1_and_keys(lib, rng):
    lib.ws_sha1.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    lib.ws_accept_key.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    bad = 0
    lengths = list(range(0, 300)) + [rng.randrange(300, 100000) for _ in range(50)]
    for n in lengths:
        data = os.urandom(n)
        out = ctypes.create_string_buffer(20)
        lib.ws_sha1(data, n, out)
        if out.raw != hashlib.sha1(data).digest():
            bad += 1
            print("SHA-1 DISAGREE at length %d" % n)
    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    for _ in range(5000):
        key = base64.b64encode(os.urandom(16))
        out = ctypes.create_string_buffer(29)
        r = lib.ws_accept_key(key, len(key), out)
        want = base64.b64encode(hashlib.sha1(key + guid).digest())
        if r != 0 or out.value != want:
            bad += 1
            print("ACCEPT DISAGREE for %r: %d %r, want %r" % (key, r, out.value, want))
    print("sha1: %d lengths, accept: 5000 keys, %d disagreements" % (len(lengths), bad))
    return bad == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=400000, help="random strings (plus 65793 exhaustive)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    lib = build()
    rng = random.Random(a.seed)
    ok = check_utf8(lib, a.n, rng, a.v)
    ok = check_sha1_and_keys(lib, rng) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
