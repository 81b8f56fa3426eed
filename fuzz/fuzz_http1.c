/* libFuzzer target for ext/http1_parser.c.
 *
 * Build and run (corpus in fuzz/corpus/http1, findings go to build/):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iext \
 *     ext/http1_parser.c fuzz/fuzz_http1.c -o build/fuzz_http1
 *   mkdir -p build/fuzz-work && build/fuzz_http1 -max_total_time=600 \
 *     -artifact_prefix=build/ build/fuzz-work fuzz/corpus/http1
 *
 * The first two input bytes pick a split point and the limits; the rest is
 * the wire data. Every buffer handed to the parser is a fresh allocation of
 * exactly its length, so AddressSanitizer sees any over-read. Besides "no
 * crash", it checks that returned lengths and pointers stay inside the
 * buffer, that a head parsed in two steps (resuming with `scanned`) gets the
 * verdict it gets in one, that framing answers only 0/-400/-501 with a
 * consistent body kind, and that the chunked decoder, fed whole or in two
 * pieces, decodes the same body and verdict, never more bytes than it was
 * given. */
#include "http1_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAXH 64

static int is_err(int rc) { return rc == -400 || rc == -431 || rc == -505; }

static void check_request(const char *b, size_t n, int rc, const http1_request *r,
                          const http1_limits *lim) {
  size_t i, k;
  const char *end = b + rc;
  ASSERT(rc == HTTP1_INCOMPLETE || is_err(rc) || (rc > 0 && (size_t)rc <= n));
  if (rc <= 0) return;
  ASSERT(r->method >= b && r->method_len > 0 && r->method + r->method_len < end);
  ASSERT(r->target >= b && r->target_len > 0 && r->target + r->target_len < end);
  ASSERT(r->version_minor == 0 || r->version_minor == 1);
  ASSERT(r->num_headers <= lim->max_headers);
  ASSERT(rc >= 4 && memcmp(end - 4, "\r\n\r\n", 4) == 0);
  for (i = 0; i < r->num_headers; i++) {
    const http1_header *h = &r->headers[i];
    ASSERT(h->name >= b && h->name_len > 0 && h->name + h->name_len < end);
    ASSERT(h->value >= b && h->value + h->value_len <= end);
    ASSERT(h->name_len <= lim->max_line);
    for (k = 0; k < h->value_len; k++) {
      unsigned char c = (unsigned char)h->value[k];
      ASSERT(c == '\t' || (c >= 0x20 && c != 0x7f));
    }
    if (h->value_len) {
      ASSERT(h->value[0] != ' ' && h->value[0] != '\t');
      ASSERT(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
    }
  }
}

static void check_framing(const http1_request *r) {
  http1_framing f;
  size_t i;
  int te = 0, rc = http1_request_framing(r, &f);
  ASSERT(rc == 0 || rc == -400 || rc == -501);
  if (rc) return;
  for (i = 0; i < r->num_headers; i++) te |= http1_name_is(&r->headers[i], "transfer-encoding", 17);
  ASSERT(f.body == HTTP1_BODY_NONE || f.body == HTTP1_BODY_LENGTH || f.body == HTTP1_BODY_CHUNKED);
  ASSERT((f.body == HTTP1_BODY_CHUNKED) == te);
  ASSERT(f.body != HTTP1_BODY_CHUNKED || r->version_minor == 1);
  ASSERT(f.body == HTTP1_BODY_LENGTH || f.content_length == 0);
  ASSERT(!f.upgrade_websocket || r->version_minor == 1);
  ASSERT(!f.expect_continue || r->version_minor == 1);
  ASSERT(r->version_minor == 0 || f.has_host);
}

/* Decodes data[0..n) as pieces [0, cut) and [cut, n); the body collects in
 * out (n bytes available). Returns the verdict with the leftover counted
 * over the whole input. */
static ssize_t decode(const uint8_t *data, size_t n, size_t cut, size_t max_trailer, char *out,
                      size_t *olen) {
  http1_chunked d;
  size_t starts[2] = {0, cut}, stops[2] = {cut, n}, i;
  ssize_t rc = HTTP1_INCOMPLETE;
  memset(&d, 0, sizeof d);
  d.max_trailer = max_trailer;
  *olen = 0;
  for (i = 0; i < 2; i++) {
    size_t in = stops[i] - starts[i], len = in;
    char *b = dup_exact(data + starts[i], in);
    uint64_t before = d.total;
    rc = http1_decode_chunked(&d, b, &len);
    ASSERT(rc == HTTP1_INCOMPLETE || rc == -400 || rc == -431 || (rc >= 0 && (size_t)rc <= in));
    ASSERT(len <= in);
    if (rc != -400 && rc != -431) ASSERT(d.total - before == len);
    if (rc >= 0 || rc == HTTP1_INCOMPLETE) {
      memcpy(out + *olen, b, len);
      *olen += len;
    }
    free(b);
    if (rc >= 0) return rc + (ssize_t)(n - stops[i]);
    if (rc != HTTP1_INCOMPLETE) return rc;
  }
  return rc;
}

static void check_chunked(const uint8_t *data, size_t n, size_t cut, size_t max_trailer) {
  char *a = malloc(n + 1), *b = malloc(n + 1);
  size_t alen, blen;
  ssize_t ra, rb;
  ASSERT(a && b);
  ra = decode(data, n, n, max_trailer, a, &alen); /* whole */
  rb = decode(data, n, cut, max_trailer, b, &blen);
  ASSERT(ra == rb);
  ASSERT(alen <= n);
  if (ra >= 0 || ra == HTTP1_INCOMPLETE) ASSERT(alen == blen && memcmp(a, b, alen) == 0);
  free(a);
  free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static http1_header hdrs[MAXH];
  http1_limits lim = {8192, MAXH};
  http1_request r1, r2;
  size_t cut, sc = 0, max_trailer;
  char *whole, *part;
  int rc1, rc2;

  if (size < 2) return 0;
  cut = data[0] % (size - 1);
  if (data[1] & 1) { /* tight limits now and then */
    lim.max_line = (size_t)(data[1] >> 1) + 1;
    lim.max_headers = (size_t)(data[1] >> 4);
  }
  max_trailer = (data[1] & 2) ? (size_t)(data[1] >> 2) : 0;
  data += 2;
  size -= 2;
  if (size > 1) cut = (cut * 131) % (size + 1);

  /* head: whole, then in two steps through `scanned` */
  whole = dup_exact(data, size);
  memset(&r1, 0, sizeof r1);
  r1.headers = hdrs;
  rc1 = http1_parse_request(whole, size, NULL, &lim, &r1);
  check_request(whole, size, rc1, &r1, &lim);
  if (rc1 > 0) {
    check_framing(&r1);
    /* the body, as the server would hand it to the decoder */
    check_chunked(data + rc1, size - (size_t)rc1, cut > (size_t)rc1 ? cut - (size_t)rc1 : 0,
                  max_trailer);
  }

  part = dup_exact(data, cut);
  memset(&r2, 0, sizeof r2);
  r2.headers = hdrs;
  rc2 = http1_parse_request(part, cut, &sc, &lim, &r2);
  check_request(part, cut, rc2, &r2, &lim);
  free(part);
  if (rc2 == HTTP1_INCOMPLETE) {
    ASSERT(sc == cut);
    memset(&r2, 0, sizeof r2);
    r2.headers = hdrs;
    rc2 = http1_parse_request(whole, size, &sc, &lim, &r2);
    check_request(whole, size, rc2, &r2, &lim);
  } else {
    ASSERT(sc == 0);
  }
  ASSERT(rc2 == rc1);
  free(whole);

  /* and the raw input as a chunked body */
  check_chunked(data, size, cut, max_trailer);
  return 0;
}
