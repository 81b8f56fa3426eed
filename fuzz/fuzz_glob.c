/* libFuzzer target for ext/glob.c (pub/sub pattern subscriptions).
 *
 * Build and run (corpus in fuzz/corpus/glob; `make fuzz` does both):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iext \
 *     ext/glob.c fuzz/fuzz_glob.c -o build/fuzz_glob
 *   mkdir -p build/fuzz-glob-work && build/fuzz_glob -max_total_time=600 \
 *     -artifact_prefix=build/glob- build/fuzz-glob-work fuzz/corpus/glob
 *
 * Input: byte 0 picks where the rest splits into pattern | subject
 * (byte 0 % (rest + 1) bytes of pattern, the others are the subject).
 * Both are fresh allocations of exactly their length (neither is
 * NUL-terminated), so AddressSanitizer sees any over-read.
 *
 * Checks, besides "no crash":
 *  - glob_match agrees with a reference: a dynamic-programming matcher whose
 *    set rules are a line-by-line transcription of Redis's stringmatchlen
 *    (util.c), reading a NUL past the end where Redis would read the sds
 *    terminator. That is the promise in glob.h: a pattern means the same
 *    locally and through the Redis engine.
 *  - a pattern with no special byte (* ? [ \) matches exactly itself: the
 *    subject with those bytes removed matches itself, and not itself with a
 *    byte changed, dropped or added;
 *  - every byte escaped with '\' matches exactly the unescaped string;
 *  - "*" matches anything, "" only the empty name, "?" exactly one byte;
 *  - widening: if P matches N then "*"+P matches X+N for a prefix X of the
 *    subject, and "?"+P matches c+N;
 *  - a result is 0 or 1 and does not depend on the bytes after either
 *    length (the same call on copies padded with junk agrees). */
#include "glob.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static int match(const char *p, size_t pl, const char *n, size_t nl) {
  char *pp = dup_exact(p, pl), *nn = dup_exact(n, nl);
  int r = glob_match(pp, pl, nn, nl);
  free(pp);
  free(nn);
  ASSERT(r == 0 || r == 1);
  return r;
}

/* ---- reference -------------------------------------------------------- */

/* The byte at i, or the NUL Redis would find after the end of its sds. */
static unsigned char at(const char *p, size_t len, size_t i) {
  return i < len ? (unsigned char)p[i] : 0;
}

/* One single-byte token of the pattern starting at p (not '*'): does it
 * match ch, and where does the next token start. Transcribed from Redis's
 * stringmatchlen cases '?', '[', '\\' and default. */
static int ref_token(const char *pat, size_t plen, size_t p, unsigned char ch, size_t *next) {
  unsigned char c = at(pat, plen, p);
  if (c == '?') {
    *next = p + 1;
    return 1;
  }
  if (c == '[') {
    size_t q = p + 1, left = plen - p - 1; /* pattern++; patternLen-- */
    int neg = at(pat, plen, q) == '^', hit = 0;
    if (neg) {
      q++;
      left--;
    }
    for (;;) {
      if (at(pat, plen, q) == '\\' && left >= 2) {
        q++;
        left--;
        if (at(pat, plen, q) == ch) hit = 1;
      } else if (at(pat, plen, q) == ']') {
        break;
      } else if (left == 0) {
        q--;
        left++;
        break;
      } else if (left >= 3 && at(pat, plen, q + 1) == '-') {
        unsigned char lo = at(pat, plen, q), hi = at(pat, plen, q + 2);
        if (lo > hi) {
          unsigned char t = lo;
          lo = hi;
          hi = t;
        }
        q += 2;
        left -= 2;
        if (ch >= lo && ch <= hi) hit = 1;
      } else if (at(pat, plen, q) == ch) {
        hit = 1;
      }
      q++;
      left--;
    }
    *next = q + 1;
    return neg ? !hit : hit;
  }
  if (c == '\\' && plen - p >= 2) {
    *next = p + 2;
    return at(pat, plen, p + 1) == ch;
  }
  *next = p + 1;
  return c == ch;
}

/* m[p][n]: pattern from p matches name from n. Filled from the ends back;
 * a token's next position is always after it, so every cell it reads is
 * filled. Returns -1 when the table would be too big to bother. */
static int ref_match(const char *pat, size_t plen, const char *name, size_t nlen) {
  size_t w = nlen + 1, p, n, next;
  unsigned char *m;
  int r;
  if ((plen + 1) * w > (1u << 22)) return -1;
  m = calloc((plen + 1) * w, 1);
  ASSERT(m);
  m[plen * w + nlen] = 1;
  for (p = plen; p-- > 0;) {
    for (n = nlen + 1; n-- > 0;) {
      if (pat[p] == '*') {
        m[p * w + n] = m[(p + 1) * w + n] || (n < nlen && m[p * w + n + 1]);
      } else if (n < nlen) {
        int hit = ref_token(pat, plen, p, (unsigned char)name[n], &next);
        ASSERT(next > p && next <= plen);
        m[p * w + n] = hit && m[next * w + n + 1];
      }
    }
  }
  r = m[0];
  free(m);
  return r;
}

/* ---- invariants ------------------------------------------------------- */

static int special(char c) { return c == '*' || c == '?' || c == '[' || c == '\\'; }

static void check_literal(const char *s, size_t n) {
  char *lit = malloc(n + 2), *alt = malloc(n + 2);
  size_t k = 0, i;
  ASSERT(lit && alt);
  for (i = 0; i < n; i++)
    if (!special(s[i])) lit[k++] = s[i];
  ASSERT(match(lit, k, lit, k) == 1);
  /* changed: each position (a handful, bounded) gets a different byte */
  for (i = 0; i < k && i < 16; i++) {
    memcpy(alt, lit, k);
    alt[i] = (char)(alt[i] ^ 0x21);
    ASSERT(match(lit, k, alt, k) == 0);
  }
  if (k) {
    ASSERT(match(lit, k, lit, k - 1) == 0);     /* one byte short */
    ASSERT(match(lit, k, lit + 1, k - 1) == 0); /* first byte dropped */
  }
  memcpy(alt, lit, k);
  alt[k] = 'x';
  ASSERT(match(lit, k, alt, k + 1) == 0); /* one byte longer */
  free(lit);
  free(alt);
}

static void check_escaped(const char *s, size_t n) {
  char *esc = malloc(2 * n + 1);
  size_t i;
  ASSERT(esc);
  for (i = 0; i < n; i++) {
    esc[2 * i] = '\\';
    esc[2 * i + 1] = s[i];
  }
  ASSERT(match(esc, 2 * n, s, n) == 1);
  if (n) {
    ASSERT(match(esc, 2 * n, s, n - 1) == 0);
    ASSERT(match(esc, 2 * n - 2, s, n) == 0);
  }
  free(esc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t plen, nlen;
  const char *pat, *name;
  int r, ref;

  if (size < 1) return 0;
  plen = data[0] % size; /* of the size - 1 bytes that follow */
  pat = (const char *)data + 1;
  name = pat + plen;
  nlen = size - 1 - plen;

  r = match(pat, plen, name, nlen);
  ref = ref_match(pat, plen, name, nlen);
  if (ref >= 0 && r != ref) {
    fprintf(stderr, "glob_match=%d, Redis's rules=%d\npattern (%zu): ", r, ref, plen);
    fwrite(pat, 1, plen, stderr);
    fprintf(stderr, "\nname (%zu): ", nlen);
    fwrite(name, 1, nlen, stderr);
    fputc('\n', stderr);
    abort();
  }

  /* the same answer with junk after both ends (a scan past a length would
   * see different bytes here, or trip ASan above) */
  {
    char *p2 = malloc(plen + 8), *n2 = malloc(nlen + 8);
    ASSERT(p2 && n2);
    memcpy(p2, pat, plen);
    memcpy(p2 + plen, "*]\\?[-^]", 8);
    memcpy(n2, name, nlen);
    memcpy(n2 + nlen, "]*\\x?[-^", 8);
    ASSERT(glob_match(p2, plen, n2, nlen) == r);
    free(p2);
    free(n2);
  }

  ASSERT(match("*", 1, name, nlen) == 1);
  ASSERT(match("", 0, name, nlen) == (nlen == 0));
  ASSERT(match("?", 1, name, nlen) == (nlen == 1));
  check_literal(name, nlen);
  check_literal(pat, plen);
  check_escaped(name, nlen);

  if (r) {
    size_t x = nlen ? data[0] % (nlen + 1) : 0; /* a prefix to prepend */
    char *wide = malloc(plen + 1), *longer = malloc(nlen + x + 1);
    ASSERT(wide && longer);
    memcpy(wide + 1, pat, plen);
    wide[0] = '*'; /* "*" + P matches name[0..x) + N */
    memcpy(longer, name, x);
    memcpy(longer + x, name, nlen);
    ASSERT(match(wide, plen + 1, longer, nlen + x) == 1);
    wide[0] = '?'; /* "?" + P matches "#" + N */
    longer[0] = '#';
    memcpy(longer + 1, name, nlen);
    ASSERT(match(wide, plen + 1, longer, nlen + 1) == 1);
    free(wide);
    free(longer);
  }
  return 0;
}
