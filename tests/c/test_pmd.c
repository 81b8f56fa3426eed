/* Unit tests for ext/pmd.c (permessage-deflate): the offer parser and
 * the parameters it chooses (RFC 7692 7.1), the response it writes, and the
 * bounded inflater, each header value copied against a guard page.
 * Build (Makefile: build/test_pmd): ext/pmd.c + ext/ws_frame.c, -lz. */
#include "check.h"

#include <zlib.h>

#include "pmd.h"

static const pmd_config CFG = {1, 15, 64 * 1024};

/* negotiate one header value (guarded); returns 1/0 and the response */
static int nego(const char *v, const pmd_config *cfg, char resp[PMD_RESPONSE_MAX]) {
  size_t n = strlen(v);
  const char *vals[1] = {guarded(v, n)};
  size_t lens[1] = {n};
  pmd_params p;
  int r = pmd_negotiate(vals, lens, 1, cfg, &p);
  resp[0] = 0;
  if (r) pmd_response(&p, resp);
  return r;
}

static void expect(const char *offer, const pmd_config *cfg, const char *want) {
  char resp[PMD_RESPONSE_MAX];
  int r = nego(offer, cfg, resp);
  if (!want)
    CHECK(r == 0, "offer [%s] should be declined, got [%s]", offer, resp);
  else
    CHECK(r == 1 && !strcmp(resp, want), "offer [%s]: got [%s], want [%s]", offer, resp, want);
}

static uint64_t got;
static int emit(void *ctx, const uint8_t *p, size_t n) {
  (void)ctx;
  (void)p;
  got += n;
  return 0;
}

static size_t zip(const void *in, size_t n, uint8_t *out, size_t cap) {
  z_stream z = {0};
  deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef *)(uintptr_t)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  deflate(&z, Z_SYNC_FLUSH);
  size_t len = cap - z.avail_out - 4; /* drop 00 00 ff ff */
  deflateEnd(&z);
  return len;
}

int main(void) {
  guard_init(4096);
  const char *base = "permessage-deflate; server_no_context_takeover";
  char want[PMD_RESPONSE_MAX];

  /* accepted, with what the server answers */
  expect("permessage-deflate", &CFG, base);
  expect("PerMessage-Deflate", &CFG, base); /* tokens are case-insensitive */
  snprintf(want, sizeof want, "%s; client_max_window_bits=15", base);
  expect("permessage-deflate; client_max_window_bits", &CFG, want);
  snprintf(want, sizeof want, "%s; server_max_window_bits=9", base);
  expect("permessage-deflate;server_max_window_bits=9", &CFG, want);
  expect("permessage-deflate ; server_max_window_bits = \"9\"", &CFG, want);
  snprintf(want, sizeof want, "%s; client_no_context_takeover", base);
  expect("permessage-deflate; client_no_context_takeover", &CFG, want);
  /* 5.1: the first acceptable offer, across fields and list elements */
  snprintf(want, sizeof want, "%s; client_max_window_bits=15", base);
  expect("foo, permessage-deflate; bogus, ,permessage-deflate; client_max_window_bits", &CFG, want);
  /* our window setting caps what we answer */
  pmd_config small = {1, 10, 64 * 1024};
  snprintf(want, sizeof want, "%s; server_max_window_bits=10; client_max_window_bits=10", base);
  expect("permessage-deflate; server_max_window_bits=12; client_max_window_bits", &small, want);
  /* the memory cap: no kept context, or a smaller client window */
  pmd_config none = {1, 15, 0};
  snprintf(want, sizeof want, "%s; client_no_context_takeover; client_max_window_bits=15", base);
  expect("permessage-deflate; client_max_window_bits", &none, want);
  pmd_config k16 = {1, 15, 16 * 1024};
  snprintf(want, sizeof want, "%s; client_max_window_bits=13", base);
  expect("permessage-deflate; client_max_window_bits", &k16, want);

  /* declined */
  const char *bad[] = {
      "permessage-deflate; server_max_window_bits",
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=09",
      "permessage-deflate; client_max_window_bits=1",
      "permessage-deflate; client_no_context_takeover=x",
      "permessage-deflate; x=1",
      "permessage-deflate; server_no_context_takeover; "
      "server_no_context_takeover",
      "permessage-deflate; client_max_window_bits=\"15",
      "permessage-deflate;",
      "permessage-deflate x",
      "x-webkit-deflate-frame",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) expect(bad[i], &CFG, NULL);
  pmd_config off = {0, 15, 65536};
  expect("permessage-deflate", &off, NULL);

  /* inflating: round trip, bounded output, bad data */
  static uint8_t text[200000], z[200000];
  for (size_t i = 0; i < sizeof text; i++) text[i] = (uint8_t)("abcabcx"[i % 7]);
  size_t zl = zip(text, sizeof text, z, sizeof z);
  pmd_params p = {1, 15, 15, 1, 0, 0};
  pmd_inflater *keep = NULL, *inf = pmd_inflate_begin(&p, &keep);
  got = 0;
  int r = pmd_inflate(inf, guarded(z, zl), zl, 1, sizeof text, emit, NULL);
  CHECK(r == 0 && got == sizeof text, "round trip: r %d, %llu bytes", r, (unsigned long long)got);
  pmd_inflate_end(inf, &keep, 0);
  inf = pmd_inflate_begin(&p, &keep);
  got = 0;
  r = pmd_inflate(inf, z, zl, 1, 1000, emit, NULL);
  CHECK(r == -1009 && got <= 1000, "bounded: r %d after %llu bytes", r, (unsigned long long)got);
  pmd_inflate_end(inf, &keep, 1);
  inf = pmd_inflate_begin(&p, &keep);
  r = pmd_inflate(inf, (const uint8_t *)"\xff\xff\xff", 3, 1, 1000, emit, NULL);
  CHECK(r == -1007, "bad deflate data: r %d", r);
  pmd_inflate_end(inf, &keep, 1);
  /* context takeover: the connection keeps one inflater until freed */
  pmd_params ctx = {1, 15, 15, 0, 0, 0};
  inf = pmd_inflate_begin(&ctx, &keep);
  CHECK(inf && keep == inf, "a kept inflater");
  pmd_inflate_end(inf, &keep, 0);
  CHECK(keep == inf, "still kept after the message");
  pmd_inflater_free(keep);

  /* compressing a frame: RSV1 + FIN + opcode, smaller than the input */
  const uint8_t *f;
  size_t fl;
  r = pmd_deflate_frame(15, 1, text, 5000, &f, &fl);
  CHECK(r == 0 && f[0] == 0xC1 && fl < 5000, "deflate frame: r %d, byte 0 %02x, %zu bytes", r,
        r == 0 ? f[0] : 0, fl);
  r = pmd_deflate_frame(15, 2, "ab", 2, &f, &fl);
  CHECK(r == 1, "a message that does not shrink goes plain: r %d", r);

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
