/* glob: see glob.h for the language. */
#include "glob.h"

/* Match one set starting just after '['. On return *used is how many
 * pattern bytes the set took (up to and including ']'), or 0 when the set
 * is unclosed (then the '[' is literal). */
static int set_match(const char *p, size_t plen, unsigned char ch, size_t *used) {
  size_t i = 0;
  int neg = 0, hit = 0;
  if (i < plen && (p[i] == '!' || p[i] == '^')) {
    neg = 1;
    i++;
  }
  size_t first = i;
  while (i < plen && (p[i] != ']' || i == first)) {
    unsigned char lo = (unsigned char)p[i];
    if (lo == '\\' && i + 1 < plen) lo = (unsigned char)p[++i];
    i++;
    unsigned char hi = lo;
    if (i + 1 < plen && p[i] == '-' && p[i + 1] != ']') {
      hi = (unsigned char)p[i + 1];
      i += 2;
      if (hi == '\\' && i < plen) hi = (unsigned char)p[i++];
      if (lo > hi) {
        unsigned char t = lo;
        lo = hi;
        hi = t;
      }
    }
    if (ch >= lo && ch <= hi) hit = 1;
  }
  if (i >= plen) {
    *used = 0;
    return 0;
  }
  *used = i + 1; /* the ']' */
  return hit != neg;
}

int glob_match(const char *pat, size_t plen, const char *name, size_t nlen) {
  size_t p = 0, n = 0;
  /* Where to resume after the last '*': retrying only the latest star is
   * enough, since an earlier star can absorb whatever a later one could. */
  size_t star_p = (size_t)-1, star_n = 0;
  while (n < nlen) {
    if (p < plen) {
      char c = pat[p];
      if (c == '*') {
        while (p < plen && pat[p] == '*') p++;
        if (p == plen) return 1; /* a trailing star takes the rest */
        star_p = p;
        star_n = n;
        continue;
      }
      if (c == '?') {
        p++;
        n++;
        continue;
      }
      if (c == '[') {
        size_t used;
        int ok = set_match(pat + p + 1, plen - p - 1, (unsigned char)name[n], &used);
        if (used) {
          if (ok) {
            p += 1 + used;
            n++;
            continue;
          }
          goto mismatch;
        }
        /* unclosed: a literal '[' */
      } else if (c == '\\' && p + 1 < plen) {
        if (pat[p + 1] == name[n]) {
          p += 2;
          n++;
          continue;
        }
        goto mismatch;
      }
      if (c == name[n]) {
        p++;
        n++;
        continue;
      }
    }
  mismatch:
    if (star_p == (size_t)-1) return 0;
    p = star_p;
    n = ++star_n;
  }
  while (p < plen && pat[p] == '*') p++;
  return p == plen;
}
