/* Tests for ext/static.c. No framework: one line per failure, then
 * "N passed, N failed"; exit status 1 on any failure.
 *
 * Build and run (the Makefile's test-c rule does this):
 *   cc -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined \
 *     -Iext ext/static.c tests/c/test_static.c -o build/test_static
 *
 * Every text handed to a parsing function is copied to the very end of a
 * mapping whose next page is PROT_NONE, so reading one byte past the input
 * crashes. The pure parts are checked case by case; the file-system part
 * runs against a scratch folder under $TMPDIR (symlinks in and out of the
 * root, a FIFO, folders with and without index.html, a .gz sibling). */
#define _GNU_SOURCE
#include "static.h"
#include "http_facts.h"

#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* s copied so that its last byte is the last readable byte (no NUL). */
static const char *g(const char *s) { return guarded(s, strlen(s)); }

/* ---- st_normalize --------------------------------------------------------- */

static void norm(int line, const char *target, int want, const char *path, int dir) {
  char out[256];
  size_t n = 0;
  int d = -1;
  int r = st_normalize(g(target), strlen(target), out, sizeof out, &n, &d);
  check(r == want, line, "normalize %s: got %d, want %d", target, r, want);
  if (r != ST_OK || want != ST_OK) return;
  check(n == strlen(path) && !memcmp(out, path, n) && out[n] == 0, line,
        "normalize %s: got '%.*s', want '%s'", target, (int)n, out, path);
  check(d == dir, line, "normalize %s: dir_form %d, want %d", target, d, dir);
}

static void test_normalize(void) {
  norm(__LINE__, "/", ST_OK, "", 1);
  norm(__LINE__, "/a.txt", ST_OK, "a.txt", 0);
  norm(__LINE__, "/a/b/c.js?x=1&y=/../..", ST_OK, "a/b/c.js", 0);
  norm(__LINE__, "/a/b/#frag/../..", ST_OK, "a/b", 1);
  norm(__LINE__, "/docs/", ST_OK, "docs", 1);
  norm(__LINE__, "//a///b//", ST_OK, "a/b", 1);
  norm(__LINE__, "/./a/./b/.", ST_OK, "a/b", 1);
  norm(__LINE__, "/%2e/a", ST_OK, "a", 0);
  norm(__LINE__, "/a%20b/%41%62", ST_OK, "a b/Ab", 0);
  norm(__LINE__, "/100%", ST_OK, "100%", 0); /* a bad escape stays as it is */
  norm(__LINE__, "/100%2", ST_OK, "100%2", 0);
  norm(__LINE__, "/a%zzb", ST_OK, "a%zzb", 0);
  norm(__LINE__, "/%2/x", ST_OK, "%2/x", 0); /* an escape never spans a slash */
  norm(__LINE__, "/...", ST_OK, "...", 0);
  norm(__LINE__, "/..a/b..", ST_OK, "..a/b..", 0);
  norm(__LINE__, "/.hidden", ST_OK, ".hidden", 0);
  norm(__LINE__, "/caf\xc3\xa9.txt", ST_OK, "caf\xc3\xa9.txt", 0);
  norm(__LINE__, "http://example.com/a/b.txt?q", ST_OK, "a/b.txt", 0);
  norm(__LINE__, "HTTP://example.com", ST_OK, "", 1);
  norm(__LINE__, "http://example.com?x", ST_OK, "", 1);
  /* refused: climbing out, encoded separators, NUL */
  norm(__LINE__, "/..", ST_REFUSE, "", 0);
  norm(__LINE__, "/../etc/passwd", ST_REFUSE, "", 0);
  norm(__LINE__, "/a/../b", ST_REFUSE, "", 0);
  norm(__LINE__, "/a/..", ST_REFUSE, "", 0);
  norm(__LINE__, "/a/../", ST_REFUSE, "", 0);
  norm(__LINE__, "/%2e%2e/etc/passwd", ST_REFUSE, "", 0);
  norm(__LINE__, "/%2E%2E/x", ST_REFUSE, "", 0);
  norm(__LINE__, "/.%2e/x", ST_REFUSE, "", 0);
  norm(__LINE__, "/%2e./x", ST_REFUSE, "", 0);
  norm(__LINE__, "/a%2f..%2f..%2fetc", ST_REFUSE, "", 0);
  norm(__LINE__, "/a%2Fb", ST_REFUSE, "", 0);
  norm(__LINE__, "/a\\b", ST_REFUSE, "", 0);
  norm(__LINE__, "/..\\..\\etc", ST_REFUSE, "", 0);
  norm(__LINE__, "/a%5cb", ST_REFUSE, "", 0);
  norm(__LINE__, "/a%5C..%5Cb", ST_REFUSE, "", 0);
  norm(__LINE__, "/a%00.txt", ST_REFUSE, "", 0);
  norm(__LINE__, "/a.txt%00.html", ST_REFUSE, "", 0);
  norm(__LINE__, "http://h/../x", ST_REFUSE, "", 0);
  /* not ours */
  norm(__LINE__, "*", ST_SKIP, "", 0);
  norm(__LINE__, "example.com:80", ST_SKIP, "", 0);

  /* too long for the output: skipped, never truncated or overrun */
  char big[600];
  big[0] = '/';
  memset(big + 1, 'x', sizeof big - 2);
  big[sizeof big - 1] = 0;
  char out[256];
  size_t n;
  int d;
  CHECK(st_normalize(g(big), strlen(big), out, sizeof out, &n, &d) == ST_SKIP,
        "a path longer than the output is skipped");
  /* exactly fitting: 255 bytes + NUL */
  memset(big + 1, 'y', 255);
  big[256] = 0;
  CHECK(st_normalize(g(big), 256, out, sizeof out, &n, &d) == ST_OK && n == 255,
        "a path of cap-1 bytes fits");
  big[256] = 'y';
  big[257] = 0;
  CHECK(st_normalize(g(big), 257, out, sizeof out, &n, &d) == ST_SKIP,
        "a path of cap bytes does not fit");
  /* every prefix of a tricky target is handled without reading past it */
  const char *t = "/a%2e%2e/%2e%2e/b%2F%00%5c/c?d";
  for (size_t k = 0; k <= strlen(t); k++) {
    char *p = guard_base + guard_room - k;
    memcpy(p, t, k);
    (void)st_normalize(p, k, out, sizeof out, &n, &d);
  }
  CHECK(1, "prefixes");
}

/* ---- MIME ------------------------------------------------------------------- */

static void mime(int line, const char *name, const char *want) {
  const char *got = st_mime(g(name), strlen(name));
  check(!strcmp(got, want), line, "mime %s: got %s, want %s", name, got, want);
}

static void test_mime(void) {
  const char *text_utf8[][2] = {{"index.html", "text/html"},    {"a.htm", "text/html"},
                                {"s.css", "text/css"},          {"app.js", "text/javascript"},
                                {"mod.mjs", "text/javascript"}, {"readme.txt", "text/plain"}};
  for (size_t i = 0; i < sizeof text_utf8 / sizeof text_utf8[0]; i++) {
    char want[64];
    snprintf(want, sizeof want, "%s; charset=utf-8", text_utf8[i][1]);
    mime(__LINE__, text_utf8[i][0], want);
  }
  mime(__LINE__, "data.json", "application/json");
  mime(__LINE__, "app.js.map", "application/json");
  mime(__LINE__, "logo.svg", "image/svg+xml");
  mime(__LINE__, "a.png", "image/png");
  mime(__LINE__, "a.jpg", "image/jpeg");
  mime(__LINE__, "a.jpeg", "image/jpeg");
  mime(__LINE__, "a.gif", "image/gif");
  mime(__LINE__, "a.webp", "image/webp");
  mime(__LINE__, "favicon.ico", "image/x-icon");
  mime(__LINE__, "feed.xml", "application/xml");
  mime(__LINE__, "doc.pdf", "application/pdf");
  mime(__LINE__, "m.wasm", "application/wasm");
  mime(__LINE__, "f.woff", "font/woff");
  mime(__LINE__, "f.woff2", "font/woff2");
  mime(__LINE__, "v.mp4", "video/mp4");
  mime(__LINE__, "v.webm", "video/webm");
  mime(__LINE__, "s.mp3", "audio/mpeg");
  mime(__LINE__, "UPPER.HTML", "text/html; charset=utf-8");
  mime(__LINE__, "dir.d/a.PnG", "image/png");
  mime(__LINE__, "noext", "application/octet-stream");
  mime(__LINE__, "dir.png/noext", "application/octet-stream");
  mime(__LINE__, ".png", "application/octet-stream");
  mime(__LINE__, "d/.png", "application/octet-stream");
  mime(__LINE__, "trailing.", "application/octet-stream");
  mime(__LINE__, "a.unknownext", "application/octet-stream");
  mime(__LINE__, "a.htmlx", "application/octet-stream");
  mime(__LINE__, "a.tml", "application/octet-stream");
  mime(__LINE__, "", "application/octet-stream");
}

/* ---- dates -------------------------------------------------------------------- */

static void test_dates(void) {
  char out[30];
  hf_date(out, 784111777);
  CHECK(!strcmp(out, "Sun, 06 Nov 1994 08:49:37 GMT"), "RFC example: %s", out);
  hf_date(out, 0);
  CHECK(!strcmp(out, "Thu, 01 Jan 1970 00:00:00 GMT"), "epoch: %s", out);
  hf_date(out, 951782400); /* 2000-02-29 */
  CHECK(!strcmp(out, "Tue, 29 Feb 2000 00:00:00 GMT"), "leap day: %s", out);
  hf_date(out, -5);
  CHECK(!strcmp(out, "Thu, 01 Jan 1970 00:00:00 GMT"), "clamped low: %s", out);
  hf_date(out, INT64_MAX);
  CHECK(!strcmp(out, "Fri, 31 Dec 9999 23:59:59 GMT"), "clamped high: %s", out);

  int64_t t = 0;
  CHECK(!hf_parse_date(g("Sun, 06 Nov 1994 08:49:37 GMT"), 29, &t) && t == 784111777,
        "IMF-fixdate %lld", (long long)t);
  CHECK(!hf_parse_date(g("Sunday, 06-Nov-94 08:49:37 GMT"), 30, &t) && t == 784111777,
        "RFC 850 %lld", (long long)t);
  CHECK(!hf_parse_date(g("Sun Nov  6 08:49:37 1994"), 24, &t) && t == 784111777, "asctime %lld",
        (long long)t);
  CHECK(!hf_parse_date(g("  Sun, 06 Nov 1994 08:49:37 GMT "), 32, &t) && t == 784111777,
        "surrounding whitespace");
  CHECK(!hf_parse_date(g("Tue, 29 Feb 2000 00:00:00 GMT"), 29, &t) && t == 951782400,
        "leap day parses");
  const char *bad[] = {"",
                       "Sun, 06 Nov 1994 08:49:37 UTC",
                       "Sun, 06 Nov 1994 08:49:37 GM",
                       "Sun, 06 Foo 1994 08:49:37 GMT",
                       "Sun, 32 Nov 1994 08:49:37 GMT",
                       "Sun, 00 Nov 1994 08:49:37 GMT",
                       "Sun, 29 Feb 1900 00:00:00 GMT",
                       "Sun, 31 Apr 1994 00:00:00 GMT",
                       "Sun, 06 Nov 1994 24:00:00 GMT",
                       "Sun, 06 Nov 1994 08:60:00 GMT",
                       "Sun, 06 Nov 1994 08-49-37 GMT",
                       "Xyz, 06 Nov 1994 08:49:37 GMT",
                       "Sun, 6 Nov 1994 08:49:37 GMT",
                       "Sun, 06 Nov 94 08:49:37 GMT",
                       "Funday, 06-Nov-94 08:49:37 GMT",
                       "Sunday, 06-Nov-94 08:49:37 UTC",
                       "Sun Nov 6 08:49:37 1994",
                       "Sun Nov  6 08:49:37 94",
                       "yesterday",
                       "1994-11-06T08:49:37Z",
                       ",",
                       "Sunday,"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(hf_parse_date(g(bad[i]), strlen(bad[i]), &t) == -1, "bad date '%s'", bad[i]);
  /* round trip over a range of times */
  int ok = 1;
  for (int64_t x = 0; x < 4102444800; x += 86400 * 37 + 3661) {
    hf_date(out, x);
    ok &= !hf_parse_date(out, 29, &t) && t == x;
  }
  CHECK(ok, "format/parse round trip");
}

/* ---- ETags ------------------------------------------------------------------------ */

static void test_etags(void) {
  char e[64], e2[64];
  size_t n = st_etag(e, sizeof e, 1234, 1700000000, 5, 0);
  CHECK(n == strlen(e) && e[0] == '"' && strchr(e + 1, '"') == e + n - 1, "quoted etag %s", e);
  CHECK(!strcmp(e, "\"4d2-17979cfe362a0005\""), "etag text %s", e);
  st_etag(e2, sizeof e2, 1234, 1700000000, 6, 0);
  CHECK(strcmp(e, e2), "nanoseconds change the etag");
  st_etag(e2, sizeof e2, 1235, 1700000000, 5, 0);
  CHECK(strcmp(e, e2), "size changes the etag");
  st_etag(e2, sizeof e2, 1234, 1700000000, 5, 1);
  CHECK(!strcmp(e2, "\"4d2-17979cfe362a0005-gz\""), "gzip etag %s", e2);
  char small[8];
  n = st_etag(small, sizeof small, 1234, 1700000000, 5, 0);
  CHECK(n == 7 && strlen(small) == 7, "truncated into a small buffer");
  st_etag(e2, sizeof e2, UINT64_MAX, INT64_MIN, 999999999, 1); /* no UB on extremes */
  CHECK(strlen(e2) > 0, "extreme values");

  const char *tag = "\"abc\"";
  size_t tl = 5;
  struct {
    const char *v;
    int weak_ok, strong_ok;
  } cases[] = {
      {"\"abc\"", 1, 1},
      {"W/\"abc\"", 1, 0},
      {"\"x\", \"abc\"", 1, 1},
      {"\"x\" ,W/\"abc\"", 1, 0},
      {"*", 1, 1},
      {" * ", 1, 1},
      {"\"abd\"", 0, 0},
      {"abc", 0, 0},
      {"\"abc", 0, 0},
      {"\"ab\"c\"", 0, 0},
      {"", 0, 0},
      {",,,", 0, 0},
      {"\"x\" junk, \"abc\"", 0, 0},
      {"w/\"abc\"", 0, 0},
      {"W/", 0, 0},
      {"\"x\",", 0, 0},
      {"\t\"abc\"\t", 1, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *v = cases[i].v;
    CHECK(st_etag_match(g(v), strlen(v), tag, tl, 0) == cases[i].weak_ok, "weak match '%s'", v);
    CHECK(st_etag_match(g(v), strlen(v), tag, tl, 1) == cases[i].strong_ok, "strong match '%s'", v);
  }
}

/* ---- Range -------------------------------------------------------------------------- */

static void range(int line, const char *v, uint64_t size, int want, uint64_t off, uint64_t len) {
  uint64_t o = 77, l = 77;
  int r = st_parse_range(g(v), strlen(v), size, &o, &l);
  check(r == want, line, "range '%s' of %llu: got %d, want %d", v, (unsigned long long)size, r,
        want);
  if (r == ST_RANGE_OK && want == ST_RANGE_OK)
    check(o == off && l == len, line, "range '%s': got %llu+%llu, want %llu+%llu", v,
          (unsigned long long)o, (unsigned long long)l, (unsigned long long)off,
          (unsigned long long)len);
}

static void test_ranges(void) {
  range(__LINE__, "bytes=0-4", 10, ST_RANGE_OK, 0, 5);
  range(__LINE__, "bytes=3-3", 10, ST_RANGE_OK, 3, 1);
  range(__LINE__, "bytes=5-", 10, ST_RANGE_OK, 5, 5);
  range(__LINE__, "bytes=9-", 10, ST_RANGE_OK, 9, 1);
  range(__LINE__, "bytes=-3", 10, ST_RANGE_OK, 7, 3);
  range(__LINE__, "bytes=-10", 10, ST_RANGE_OK, 0, 10);
  range(__LINE__, "bytes=-99", 10, ST_RANGE_OK, 0, 10);
  range(__LINE__, "bytes=0-99", 10, ST_RANGE_OK, 0, 10);
  range(__LINE__, "bytes=2-99999999999999999999999", 10, ST_RANGE_OK, 2, 8);
  range(__LINE__, "BYTES = 1-2 ", 10, ST_RANGE_OK, 1, 2);
  range(__LINE__, "bytes=0-0", 1, ST_RANGE_OK, 0, 1);
  range(__LINE__, "bytes=10-", 10, ST_RANGE_UNSATISFIABLE, 0, 0);
  range(__LINE__, "bytes=10-20", 10, ST_RANGE_UNSATISFIABLE, 0, 0);
  range(__LINE__, "bytes=99999999999999999999999-", 10, ST_RANGE_UNSATISFIABLE, 0, 0);
  range(__LINE__, "bytes=-0", 10, ST_RANGE_UNSATISFIABLE, 0, 0);
  range(__LINE__, "bytes=0-", 0, ST_RANGE_UNSATISFIABLE, 0, 0);
  range(__LINE__, "bytes=-5", 0, ST_RANGE_UNSATISFIABLE, 0, 0);
  range(__LINE__, "bytes=5-2", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=0-1,3-4", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=0-1, 3-4", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=-", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=a-b", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=1-2x", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=1", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "items=0-1", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytesx=0-1", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=+1-2", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "", 10, ST_RANGE_NONE, 0, 0);
  range(__LINE__, "bytes=0-18446744073709551615", UINT64_MAX, ST_RANGE_OK, 0, UINT64_MAX);
}

/* ---- Accept-Encoding ------------------------------------------------------------------- */

static void test_gzip(void) {
  struct {
    const char *v;
    int want;
  } cases[] = {
      {"gzip", 1},
      {"GZIP", 1},
      {"x-gzip", 1},
      {"deflate, gzip, br", 1},
      {"br;q=1, gzip;q=0.5", 1},
      {"gzip;q=0", 0},
      {"gzip; q=0.000", 0},
      {"gzip;q=0.001", 1},
      {"gzip;Q=1.0", 1},
      {"*", 1},
      {"*;q=0", 0},
      {"*, gzip;q=0", 0},
      {"gzip;q=0, *", 0},
      {"br", 0},
      {"", 0},
      {"identity", 0},
      {"gzipx", 0},
      {"xgzip", 0},
      {"gzip;q=2", 0},
      {"gzip;q=abc", 0},
      {"gzip;q=1.001", 0},
      {"gzip ;q=0.8", 1},
      {"gzip;level=1;q=0.3", 1},
      {";;,,", 0},
      {"deflate;q=0.5,gzip;q=0,*;q=1", 0},
      {"gzip;q=0, gzip", 1},
      {"gzip;q=", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *v = cases[i].v;
    CHECK(st_accepts_gzip(g(v), strlen(v)) == cases[i].want, "accept-encoding '%s'", v);
  }
}

/* ---- st_plan ------------------------------------------------------------------------------ */

static int has(const st_answer *a, const char *line) {
  return memmem(a->head, a->head_len, line, strlen(line)) != NULL;
}

static void test_plan(void) {
  st_file f = {.name = "a/b.css", .name_len = 7, .size = 100, .mtime_s = 784111777, .mtime_ns = 0};
  char etag[64];
  st_etag(etag, sizeof etag, 100, 784111777, 0, 0);
  char etag_line[96];
  snprintf(etag_line, sizeof etag_line, "ETag: %s\r\n", etag);
  st_answer a;
  a.fd = 42;

  st_request rq = {.target = "/a/b.css", .target_len = 8};
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200 && a.offset == 0 && a.length == 100 && a.fd == 42, "plain GET");
  CHECK(!memcmp(a.head, "HTTP/1.1 200 OK\r\n", 17), "status line");
  CHECK(has(&a, "Content-Type: text/css; charset=utf-8\r\n"), "content type");
  CHECK(has(&a, "Content-Length: 100\r\n"), "content length");
  CHECK(has(&a, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), "last-modified");
  CHECK(has(&a, etag_line), "etag");
  CHECK(has(&a, "Accept-Ranges: bytes\r\n"), "accept-ranges");
  CHECK(!has(&a, "Vary") && !has(&a, "Content-Encoding"), "no vary without a sibling");
  CHECK(a.head_len >= 2 && !memcmp(a.head + a.head_len - 2, "\r\n", 2) &&
            memcmp(a.head + a.head_len - 4, "\r\n\r\n", 4),
        "fields end in CRLF, no blank line");

  rq.is_head = 1;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200 && a.length == 0 && has(&a, "Content-Length: 100\r\n"), "HEAD");
  rq.range = "bytes=0-9";
  rq.range_len = 9;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200 && a.length == 0, "HEAD ignores Range");
  rq.is_head = 0;

  st_plan(&rq, &f, &a);
  CHECK(a.status == 206 && a.offset == 0 && a.length == 10, "range");
  CHECK(has(&a, "HTTP/1.1 206 Partial Content\r\n") && has(&a, "Content-Length: 10\r\n") &&
            has(&a, "Content-Range: bytes 0-9/100\r\n"),
        "206 fields");
  rq.range = "bytes=-1";
  rq.range_len = 8;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 206 && a.offset == 99 && a.length == 1 &&
            has(&a, "Content-Range: bytes 99-99/100\r\n"),
        "suffix range");
  rq.range = "bytes=100-";
  rq.range_len = 10;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 416 && a.length == 0 && has(&a, "Content-Range: bytes */100\r\n") &&
            has(&a, "HTTP/1.1 416 Range Not Satisfiable\r\n") && has(&a, "Content-Length: 0\r\n") &&
            !has(&a, "Content-Type"),
        "416");
  rq.range = "bytes=0-1,5-6";
  rq.range_len = 13;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200 && a.length == 100, "several ranges: whole file");

  /* If-Range */
  rq.range = "bytes=5-";
  rq.range_len = 8;
  rq.if_range = etag;
  rq.if_range_len = strlen(etag);
  st_plan(&rq, &f, &a);
  CHECK(a.status == 206 && a.offset == 5 && a.length == 95, "If-Range with the etag");
  char weak[80];
  snprintf(weak, sizeof weak, "W/%s", etag);
  rq.if_range = weak;
  rq.if_range_len = strlen(weak);
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200, "If-Range with a weak etag: whole file");
  rq.if_range = "\"other\"";
  rq.if_range_len = 7;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200, "If-Range with another etag: whole file");
  rq.if_range = "Sun, 06 Nov 1994 08:49:37 GMT";
  rq.if_range_len = 29;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 206, "If-Range with the date");
  rq.if_range = "Sun, 06 Nov 1994 08:49:38 GMT";
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200, "If-Range with another date: whole file");
  rq.if_range = "*";
  rq.if_range_len = 1;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200, "If-Range: * is no validator");
  rq.if_range = NULL;
  rq.range = NULL;

  /* conditionals */
  rq.if_none_match = etag;
  rq.if_none_match_len = strlen(etag);
  st_plan(&rq, &f, &a);
  CHECK(a.status == 304 && a.length == 0 && has(&a, "HTTP/1.1 304 Not Modified\r\n") &&
            has(&a, etag_line) && !has(&a, "Content-Length") && !has(&a, "Content-Type"),
        "If-None-Match: 304");
  rq.range = "bytes=0-1";
  rq.range_len = 9;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 304, "304 beats Range");
  rq.range = NULL;
  rq.if_none_match = weak;
  rq.if_none_match_len = strlen(weak);
  st_plan(&rq, &f, &a);
  CHECK(a.status == 304, "If-None-Match compares weakly");
  rq.if_none_match = "\"nope\"";
  rq.if_none_match_len = 6;
  rq.if_modified_since = "Mon, 07 Nov 1994 00:00:00 GMT";
  rq.if_modified_since_len = 29;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200 && a.length == 100, "If-None-Match wins over If-Modified-Since");
  rq.if_none_match = NULL;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 304, "If-Modified-Since later than mtime: 304");
  rq.if_modified_since = "Sun, 06 Nov 1994 08:49:37 GMT";
  st_plan(&rq, &f, &a);
  CHECK(a.status == 304, "If-Modified-Since equal to mtime: 304");
  rq.if_modified_since = "Sun, 06 Nov 1994 08:49:36 GMT";
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200, "If-Modified-Since older: 200");
  rq.if_modified_since = "garbage";
  rq.if_modified_since_len = 7;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200, "If-Modified-Since malformed: ignored");
  rq.if_modified_since = NULL;

  /* gzip representation */
  f.gzip = f.vary = 1;
  st_plan(&rq, &f, &a);
  CHECK(has(&a, "Content-Encoding: gzip\r\n") && has(&a, "Vary: Accept-Encoding\r\n") &&
            has(&a, "Content-Type: text/css; charset=utf-8\r\n") && has(&a, "-gz\"\r\n"),
        "gzip fields");
  f.gzip = 0;
  st_plan(&rq, &f, &a);
  CHECK(!has(&a, "Content-Encoding") && has(&a, "Vary: Accept-Encoding\r\n"),
        "vary on the identity answer too");
  f.size = 0;
  f.vary = 0;
  st_plan(&rq, &f, &a);
  CHECK(a.status == 200 && a.length == 0 && has(&a, "Content-Length: 0\r\n"), "empty file");
}

/* ---- the file system ------------------------------------------------------------------------ */

static char base[256], root[512];

static void put_file(const char *rel, const char *data, time_t mtime) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", base, rel);
  FILE *f = fopen(p, "wb");
  if (!f) {
    perror(p);
    exit(2);
  }
  fputs(data, f);
  fclose(f);
  if (mtime) {
    struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
    utimes(p, tv);
  }
}

static void at(const char *rel, char *out, size_t cap) { snprintf(out, cap, "%s/%s", base, rel); }

static st_answer ans;

static int ask(const char *target, const char *ae) {
  st_request rq = {.target = g(target), .target_len = strlen(target)};
  if (ae) {
    rq.accept_encoding = ae;
    rq.accept_encoding_len = strlen(ae);
  }
  if (ans.fd >= 0) close(ans.fd);
  return st_answer_request(root, &rq, &ans);
}

static int body_is(const char *want) {
  if (ans.fd < 0) return 0;
  char buf[256];
  ssize_t n = pread(ans.fd, buf, sizeof buf, (off_t)ans.offset);
  return n >= 0 && (size_t)n >= ans.length && ans.length == strlen(want) &&
         !memcmp(buf, want, ans.length);
}

static void test_files(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(base, sizeof base, "%s/iodine-static-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(base)) {
    perror("mkdtemp");
    exit(2);
  }
  char p[1024], q[1024];
  at("pub", p, sizeof p);
  mkdir(p, 0755);
  at("pub/sub", p, sizeof p);
  mkdir(p, 0755);
  at("pub/empty", p, sizeof p);
  mkdir(p, 0755);
  at("pub/odd name", p, sizeof p);
  mkdir(p, 0755);
  at("outside", p, sizeof p);
  mkdir(p, 0755);
  at("pubx", p, sizeof p);
  mkdir(p, 0755);
  put_file("pubx/f.txt", "next door", 0);
  at("pub/link-pubx", p, sizeof p);
  CHECK(!symlink("../pubx/f.txt", p), "symlink");
  put_file("pub/index.html", "root index", 0);
  put_file("pub/a.txt", "hello", 784111777);
  put_file("pub/app.js", "console.log(1)", 0);
  put_file("pub/app.js.gz", "GZ", 0);
  put_file("pub/sub/index.html", "sub index", 0);
  put_file("pub/odd name/index.html", "odd", 0);
  put_file("pub/pubsecret.txt", "inside", 0);
  put_file("outside/secret.txt", "secret", 0);
  put_file("outside/index.html", "outside index", 0);
  at("outside/secret.txt", q, sizeof q);
  at("pub/link-out", p, sizeof p);
  CHECK(!symlink(q, p), "symlink");
  at("outside", q, sizeof q);
  at("pub/dir-out", p, sizeof p);
  CHECK(!symlink(q, p), "symlink");
  at("pub/link-in", p, sizeof p);
  CHECK(!symlink("a.txt", p), "symlink");
  at("pub/fifo", p, sizeof p);
  CHECK(!mkfifo(p, 0600), "mkfifo");
  at("pub/sub/index-out.html", p, sizeof p);
  at("outside/index.html", q, sizeof q);
  CHECK(!symlink(q, p), "symlink");
  /* the root as realpath sees it ($TMPDIR may itself be a symlink) */
  at("pub", p, sizeof p);
  if (!realpath(p, root)) {
    perror("realpath");
    exit(2);
  }
  ans.fd = -1;

  CHECK(ask("/a.txt", NULL) == 200 && body_is("hello"), "a file");
  CHECK(has(&ans, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), "its mtime");
  CHECK(ask("/a.txt?x=../../etc", NULL) == 200 && body_is("hello"), "query ignored");
  CHECK(ask("/link-in", NULL) == 200 && body_is("hello"), "a symlink inside the root");
  CHECK(ask("/", NULL) == 200 && body_is("root index") && has(&ans, "text/html"), "root index");
  CHECK(ask("/sub/", NULL) == 200 && body_is("sub index"), "folder index");
  CHECK(ask("/sub", NULL) == 301 && has(&ans, "Location: /sub/\r\n") && ans.fd < 0,
        "folder without slash: 301");
  CHECK(ask("/sub?x=1&y=2", NULL) == 301 && has(&ans, "Location: /sub/?x=1&y=2\r\n"),
        "301 keeps the query");
  CHECK(ask("/odd%20name", NULL) == 301 && has(&ans, "Location: /odd%20name/\r\n"),
        "301 re-encodes");
  CHECK(ask("//sub", NULL) == 301 && has(&ans, "Location: /sub/\r\n"),
        "no protocol-relative Location");
  CHECK(ask("/empty/", NULL) == 0 && ask("/empty", NULL) == 0, "folder without index: app");
  CHECK(ask("/missing.txt", NULL) == 0 && ans.fd < 0, "missing: app");
  CHECK(ask("/a.txt/", NULL) == 0, "file with a trailing slash: app");
  CHECK(ask("/fifo", NULL) == 404 && ans.fd < 0 && ans.body_len == 10, "FIFO: 404");
  CHECK(ask("/link-out", NULL) == 403 && ans.fd < 0, "symlink out of the root: 403");
  CHECK(ask("/dir-out/secret.txt", NULL) == 403, "through a folder symlink out: 403");
  CHECK(ask("/dir-out/", NULL) == 403, "folder symlink out: 403");
  CHECK(ask("/sub/index-out.html", NULL) == 403, "index symlink out: 403");
  CHECK(ask("/../outside/secret.txt", NULL) == 403, "..: 403");
  CHECK(ask("/%2e%2e/outside/secret.txt", NULL) == 403, "%2e%2e: 403");
  CHECK(ask("/sub%2f..%2f..%2foutside%2fsecret.txt", NULL) == 403, "%2f: 403");
  CHECK(ask("/a.txt%00.html", NULL) == 403, "NUL: 403");
  CHECK(ask("/..\\outside\\secret.txt", NULL) == 403, "backslash: 403");
  CHECK(ask("/pubsecret.txt", NULL) == 200, "a name sharing the root's prefix");
  CHECK(ask("/link-pubx", NULL) == 403, "a sibling folder sharing the root's prefix: 403");

  /* gzip sibling */
  CHECK(ask("/app.js", NULL) == 200 && body_is("console.log(1)") &&
            has(&ans, "Vary: Accept-Encoding") && !has(&ans, "Content-Encoding"),
        "identity with a sibling");
  CHECK(ask("/app.js", "gzip") == 200 && body_is("GZ") && has(&ans, "Content-Encoding: gzip") &&
            has(&ans, "Content-Type: text/javascript"),
        "gzip sibling");
  CHECK(ask("/app.js", "gzip;q=0") == 200 && body_is("console.log(1)"), "q=0 refuses gzip");
  CHECK(ask("/a.txt", "gzip") == 200 && body_is("hello") && !has(&ans, "Vary"),
        "no sibling: no vary");

  /* root spelled with a trailing slash, and a root that is not absolute */
  char with_slash[600];
  snprintf(with_slash, sizeof with_slash, "%s/", root);
  st_request rq = {.target = "/a.txt", .target_len = 6};
  if (ans.fd >= 0) close(ans.fd);
  CHECK(st_answer_request(with_slash, &rq, &ans) == 200, "root with a trailing slash");
  if (ans.fd >= 0) close(ans.fd);
  CHECK(st_answer_request("relative", &rq, &ans) == 0 && ans.fd < 0, "relative root: off");
  rq.is_head = 1;
  CHECK(st_answer_request(root, &rq, &ans) == 200 && ans.fd < 0 && ans.length == 0 &&
            has(&ans, "Content-Length: 5\r\n"),
        "HEAD: no fd");
  rq.target = "/fifo";
  rq.target_len = 5;
  CHECK(st_answer_request(root, &rq, &ans) == 404 && ans.body_len == 0, "HEAD 404: no body");

  /* st_open_file */
  uint64_t size = 0;
  at("pub/a.txt", p, sizeof p);
  int fd = st_open_file(p, &size);
  CHECK(fd >= 0 && size == 5, "open_file");
  if (fd >= 0) close(fd);
  CHECK(st_open_file("relative.txt", &size) == -EINVAL, "open_file relative");
  at("pub/missing", p, sizeof p);
  CHECK(st_open_file(p, &size) == -ENOENT, "open_file missing");
  at("pub/fifo", p, sizeof p);
  CHECK(st_open_file(p, &size) == -ENOENT, "open_file FIFO");
  at("pub", p, sizeof p);
  CHECK(st_open_file(p, &size) == -ENOENT, "open_file folder");

  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd) != 0) printf("could not remove %s\n", base);
}

int main(void) {
  guard_init(64 * 1024);
  test_normalize();
  test_mime();
  test_dates();
  test_etags();
  test_ranges();
  test_gzip();
  test_plan();
  test_files();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
