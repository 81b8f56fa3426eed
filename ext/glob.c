/* glob: see glob.h for the language. */
#include "glob.h"

/* Match one byte against the set whose '[' is at pat[at]. Returns whether
 * it matched; *next is where the pattern continues. Redis's rules, exactly:
 * only '^' negates; a ']' right after '[' closes an empty set; '\\' takes
 * the next byte as a member; "x-y" is a range (reversed ends are swapped)
 * whenever two more bytes follow, even if the second is ']'; an unclosed
 * set runs to the end of the pattern. */
static int set_match(const char *pat, size_t plen, size_t at, unsigned char ch, size_t *next) {
  size_t i = at + 1;
  int neg = 0, hit = 0;
  if (i < plen && pat[i] == '^') {
    neg = 1;
    i++;
  }
  for (;; i++) {
    if (i >= plen) { /* unclosed: the set took the rest */
      i = plen - 1;
      break;
    }
    if (pat[i] == '\\' && plen - i >= 2) {
      i++;
      if ((unsigned char)pat[i] == ch) hit = 1;
    } else if (pat[i] == ']') {
      break;
    } else if (plen - i >= 3 && pat[i + 1] == '-') {
      unsigned char lo = (unsigned char)pat[i], hi = (unsigned char)pat[i + 2];
      if (lo > hi) {
        unsigned char t = lo;
        lo = hi;
        hi = t;
      }
      if (ch >= lo && ch <= hi) hit = 1;
      i += 2;
    } else if ((unsigned char)pat[i] == ch) {
      hit = 1;
    }
  }
  *next = i + 1;
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
        size_t next;
        if (set_match(pat, plen, p, (unsigned char)name[n], &next)) {
          p = next;
          n++;
          continue;
        }
        goto mismatch;
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
