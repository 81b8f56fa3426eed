/* libFuzzer target for ext/static.c's parsers: the request target to a
 * path under the public root, Range values, HTTP dates, ETag lists and
 * Accept-Encoding. (`make fuzz` builds it with ext/static.c alone.)
 *
 * Input: byte 0 picks the parser, bytes 1..8 (when used) a file size, the
 * rest is the header value or target, copied to an allocation of exactly
 * its length (no NUL after it) so AddressSanitizer sees any over-read.
 *
 * Checks, besides "no crash":
 *  - st_normalize: a path it accepts is relative, NUL-terminated within the
 *    buffer, has no empty, "." or ".." segment, no backslash and no NUL, and
 *    is a fixed point (normalizing "/" + path gives the path back, unless
 *    it holds a decoded '%', '?' or '#', which read again mean something
 *    else);
 *  - st_parse_range: a span it grants lies inside the file and is not empty;
 *  - st_parse_http_date: a date it reads, written back and read again, is
 *    the same instant (within the years st_http_date can write);
 *  - st_etag_match and st_accepts_gzip answer 0 or 1. */
#include "static.h"
#include "http_facts.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static void check_path(const char *out, size_t n) {
  ASSERT(strlen(out) == n);
  ASSERT(n == 0 || (out[0] != '/' && out[n - 1] != '/'));
  ASSERT(!memchr(out, '\\', n));
  const char *seg = out, *end = out + n;
  while (n && seg <= end) {
    const char *slash = memchr(seg, '/', (size_t)(end - seg));
    size_t len = slash ? (size_t)(slash - seg) : (size_t)(end - seg);
    ASSERT(len > 0);
    ASSERT(!(len == 1 && seg[0] == '.'));
    ASSERT(!(len == 2 && seg[0] == '.' && seg[1] == '.'));
    if (!slash) break;
    seg = slash + 1;
  }
}

static void fuzz_normalize(const char *p, size_t n) {
  char out[4096];
  size_t len = 0;
  int dir = 0;
  int r = st_normalize(p, n, out, sizeof out, &len, &dir);
  ASSERT(r == ST_OK || r == ST_REFUSE || r == ST_SKIP);
  if (r != ST_OK) return;
  ASSERT(len < sizeof out);
  check_path(out, len);
  /* a fixed point: what we would open normalizes to itself */
  char again[4096 + 2], out2[4096];
  again[0] = '/';
  memcpy(again + 1, out, len);
  size_t len2 = 0;
  int dir2 = 0;
  int r2 = st_normalize(again, len + 1, out2, sizeof out2, &len2, &dir2);
  /* A decoded '%', '?' or '#' means something else when read again as a
   * target (an escape, a query, a fragment): only other paths must come
   * back unchanged. */
  if (memchr(out, '%', len) || memchr(out, '?', len) || memchr(out, '#', len)) return;
  ASSERT(r2 == ST_OK);
  ASSERT(len2 == len && memcmp(out2, out, len) == 0);
}

static void fuzz_range(const char *p, size_t n, uint64_t size) {
  uint64_t off = 0, len = 0;
  int r = st_parse_range(p, n, size, &off, &len);
  ASSERT(r == ST_RANGE_NONE || r == ST_RANGE_OK || r == ST_RANGE_UNSATISFIABLE);
  if (r == ST_RANGE_OK) {
    ASSERT(len >= 1);
    ASSERT(off < size && len <= size - off);
  }
}

static void fuzz_date(const char *p, size_t n) {
  int64_t t = 0;
  if (hf_parse_date(p, n, &t) != 0) return;
  /* st_http_date clamps to 1970..9999: only round-trip inside that span */
  if (t < 0 || t > 253402300799LL) return;
  char out[30];
  hf_date(out, t);
  int64_t t2 = -1;
  ASSERT(hf_parse_date(out, strlen(out), &t2) == 0);
  ASSERT(t2 == t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int which = data[0] % 5;
  data++, size--;
  uint64_t fsize = 0;
  if (which == 1) { /* the file size comes first */
    if (size < 8) return 0;
    for (int i = 0; i < 8; i++) fsize = fsize << 8 | data[i];
    fsize %= (1ull << 50); /* sizes a file system can have */
    data += 8, size -= 8;
  }
  char *p = malloc(size ? size : 1);
  if (!p) return 0;
  if (size) memcpy(p, data, size);
  switch (which) {
  case 0: fuzz_normalize(p, size); break;
  case 1: fuzz_range(p, size, fsize); break;
  case 2: fuzz_date(p, size); break;
  case 3: {
    int m = st_etag_match(p, size, "\"abc-123\"", 9, 0);
    int s = st_etag_match(p, size, "\"abc-123\"", 9, 1);
    ASSERT((m == 0 || m == 1) && (s == 0 || s == 1));
    ASSERT(!s || m); /* a strong match is also a weak one */
    break;
  }
  case 4: {
    int g = st_accepts_gzip(p, size);
    ASSERT(g == 0 || g == 1);
    break;
  }
  }
  free(p);
  return 0;
}
