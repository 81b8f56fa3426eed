/* Tests for ext/ws_frame.c. No framework: one line per failure, then
 * "N passed, N failed"; exit status 1 on any failure.
 *
 * Build and run:
 *   mkdir -p build && cc -std=c11 -O1 -g -Wall -Wextra -Werror \
 *     -fsanitize=address,undefined -Iext ext/ws_frame.c \
 *     tests/c/test_ws_frame.c -o build/test_ws_frame && build/test_ws_frame
 * (-DWS_FRAME_TESTING is accepted but not needed: ws_sha1 is always
 * exported, see ws_frame.h.)
 *
 * Every header handed to ws_parse_head is copied to the very end of a
 * mapping whose next page is PROT_NONE, so reading one byte past the input
 * crashes, and it is fed in every prefix length: 0 ("need more") until the
 * deciding byte, then the final verdict. Unmasking is checked against a
 * naive byte loop on guarded buffers for every pos 0..7 and length 0..40 at
 * every pointer alignment. The UTF-8 validator is checked on samples (whole,
 * split in two at every byte, byte by byte, with the exact index it must
 * fail at) and against an arithmetic reference decoder written here, on
 * every string of 1..3 bytes and on all 4-byte strings over an alphabet of
 * boundary bytes. */
#define _DEFAULT_SOURCE
#include "ws_frame.h"

#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- tiny deterministic PRNG (xorshift64*) ----------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Du;
}
static void rnd_fill(uint8_t *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) p[i] = (uint8_t)(rnd() >> 56);
}

/* ---- header parsing ------------------------------------------------------ */

static const uint8_t no_mask[4] = {0, 0, 0, 0};

/* Expect a header of `size` bytes with these fields, 0 for every shorter
 * prefix, and `out` untouched while 0 is returned. Prefixes run to size + 2
 * and the whole input (a 64 KiB frame need not be fed 65546 times). */
static void head_ok(int line, const char *name, const uint8_t *b, size_t n, int req, int size,
                    int fin, int rsv, int op, int masked, uint64_t len, const uint8_t mask[4]) {
  size_t k;
  for (k = 0; k <= n; k++) {
    ws_head h;
    int r;
    if (k > (size_t)size + 2 && k != n) continue;
    memset(&h, 0xA5, sizeof h);
    r = ws_parse_head(guarded(b, k), k, req, &h);
    if (k < (size_t)size) {
      ws_head u;
      memset(&u, 0xA5, sizeof u);
      check(r == 0, line, "%s: prefix %zu: got %d, want 0", name, k, r);
      check(!memcmp(&h, &u, sizeof h), line, "%s: prefix %zu wrote out", name, k);
      continue;
    }
    check(r == size, line, "%s: prefix %zu: got %d, want %d", name, k, r, size);
    if (r != size) continue;
    check(h.fin == fin && h.rsv == rsv && h.opcode == op && h.masked == masked && h.len == len &&
              !memcmp(h.mask, mask ? mask : no_mask, 4),
          line,
          "%s: prefix %zu: fin %d rsv %d op %d masked %d len %llu "
          "mask %02x%02x%02x%02x",
          name, k, h.fin, h.rsv, h.opcode, h.masked, (unsigned long long)h.len, h.mask[0],
          h.mask[1], h.mask[2], h.mask[3]);
  }
}

/* Expect 0 for prefixes up to and excluding byte `decide`, then -1002. */
static void head_err(int line, const char *name, const uint8_t *b, size_t n, int req,
                     size_t decide) {
  size_t k;
  for (k = 0; k <= n; k++) {
    ws_head h;
    int r = ws_parse_head(guarded(b, k), k, req, &h);
    int want = k > decide ? -1002 : 0;
    check(r == want, line, "%s: prefix %zu: got %d, want %d", name, k, r, want);
  }
}

/* A client frame header with the length in a chosen form (7, 16 or 64
 * bits, even when not minimal). Returns its size. */
static size_t build_head(uint8_t *o, int fin, int rsv, int op, int masked, int form, uint64_t len,
                         const uint8_t mask[4]) {
  size_t n = 2, i;
  o[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
  o[1] = masked ? 0x80 : 0;
  if (form == 7) {
    o[1] |= (uint8_t)len;
  } else if (form == 16) {
    o[1] |= 126;
    o[2] = (uint8_t)(len >> 8);
    o[3] = (uint8_t)len;
    n = 4;
  } else {
    o[1] |= 127;
    for (i = 0; i < 8; i++) o[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    n = 10;
  }
  if (masked) {
    memcpy(o + n, mask, 4);
    n += 4;
  }
  return n;
}

static void test_rfc_examples(void) {
  static const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
  static const uint8_t frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
  static const uint8_t frag2[] = {0x80, 0x02, 0x6c, 0x6f};
  static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  static const uint8_t pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                        0x7f, 0x9f, 0x4d, 0x51, 0x58};
  static const uint8_t m[4] = {0x37, 0xfa, 0x21, 0x3d};
  uint8_t *big;
  uint8_t payload[5];
  ws_head h;
  int r;

  /* 5.7: a single-frame unmasked text message (a server's frame). */
  head_ok(__LINE__, "rfc unmasked Hello", hello_unmasked, sizeof hello_unmasked, 0, 2, 1, 0,
          WS_OP_TEXT, 0, 5, NULL);
  head_err(__LINE__, "rfc unmasked Hello, mask required", hello_unmasked, sizeof hello_unmasked, 1,
           1);
  /* 5.7: a single-frame masked text message. */
  head_ok(__LINE__, "rfc masked Hello", hello_masked, sizeof hello_masked, 1, 6, 1, 0, WS_OP_TEXT,
          1, 5, m);
  head_ok(__LINE__, "rfc masked Hello, no mask required", hello_masked, sizeof hello_masked, 0, 6,
          1, 0, WS_OP_TEXT, 1, 5, m);
  r = ws_parse_head(hello_masked, sizeof hello_masked, 1, &h);
  memcpy(payload, hello_masked + r, 5);
  ws_unmask(payload, 5, h.mask, 0);
  CHECK(!memcmp(payload, "Hello", 5), "rfc masked Hello unmasks to %.5s", (char *)payload);
  /* Masked in two pieces, the second resuming at pos 2. */
  memcpy(payload, hello_masked + r, 5);
  ws_unmask(payload, 2, h.mask, 0);
  ws_unmask(payload + 2, 3, h.mask, 2);
  CHECK(!memcmp(payload, "Hello", 5), "rfc masked Hello in pieces: %.5s", (char *)payload);

  /* 5.7: a fragmented unmasked text message. */
  head_ok(__LINE__, "rfc fragment 1", frag1, sizeof frag1, 0, 2, 0, 0, WS_OP_TEXT, 0, 3, NULL);
  head_ok(__LINE__, "rfc fragment 2", frag2, sizeof frag2, 0, 2, 1, 0, WS_OP_CONT, 0, 2, NULL);
  /* 5.7: unmasked ping, masked pong. */
  head_ok(__LINE__, "rfc ping", ping, sizeof ping, 0, 2, 1, 0, WS_OP_PING, 0, 5, NULL);
  head_ok(__LINE__, "rfc masked pong", pong_masked, sizeof pong_masked, 1, 6, 1, 0, WS_OP_PONG, 1,
          5, m);
  memcpy(payload, pong_masked + 6, 5);
  ws_unmask(payload, 5, m, 0);
  CHECK(!memcmp(payload, "Hello", 5), "rfc pong unmasks to %.5s", (char *)payload);

  /* 5.7: 256 bytes of binary data in a single unmasked message, and 64 KiB,
   * each with its payload behind the header. */
  big = calloc(1, 10 + 65536);
  big[0] = 0x82;
  big[1] = 0x7E;
  big[2] = 0x01;
  big[3] = 0x00;
  head_ok(__LINE__, "rfc 256 bytes", big, 4 + 256, 0, 4, 1, 0, WS_OP_BINARY, 0, 256, NULL);
  head_err(__LINE__, "rfc 256 bytes, mask required", big, 4 + 256, 1, 1);
  memset(big, 0, 10);
  big[0] = 0x82;
  big[1] = 0x7F;
  big[7] = 0x01; /* 0x0000000000010000 */
  head_ok(__LINE__, "rfc 64 KiB", big, 10 + 65536, 0, 10, 1, 0, WS_OP_BINARY, 0, 65536, NULL);
  free(big);
}

static void test_lengths(void) {
  static const uint8_t m[4] = {0xde, 0xad, 0xbe, 0xef};
  static const struct {
    int form;
    uint64_t len;
  } cases[] = {
      {7, 0},
      {7, 1},
      {7, 124},
      {7, 125},
      {16, 126},
      {16, 127},
      {16, 256},
      {16, 65534},
      {16, 65535},
      {64, 65536},
      {64, 65537},
      {64, UINT64_C(0xFFFFFFFF)},
      {64, UINT64_C(0x100000000)},
      {64, UINT64_C(0x7FFFFFFFFFFFFFFF)},
      /* Non-minimal encodings of data frames are accepted. */
      {16, 0},
      {16, 5},
      {16, 125},
      {64, 0},
      {64, 125},
      {64, 65535},
  };
  size_t i;
  uint8_t b[WS_HEAD_MAX + 3];
  char name[64];

  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = build_head(b, 1, 0, WS_OP_BINARY, 1, cases[i].form, cases[i].len, m);
    b[n] = 'x'; /* a payload byte or two behind the header */
    b[n + 1] = 'y';
    snprintf(name, sizeof name, "len %llu in %d bits", (unsigned long long)cases[i].len,
             cases[i].form);
    head_ok(__LINE__, name, b, n + 2, 1, (int)n, 1, 0, WS_OP_BINARY, 1, cases[i].len, m);
    /* The same without a mask, as a server's frame. */
    n = build_head(b, 1, 0, WS_OP_BINARY, 0, cases[i].form, cases[i].len, m);
    head_ok(__LINE__, name, b, n, 0, (int)n, 1, 0, WS_OP_BINARY, 0, cases[i].len, NULL);
  }

  /* The 64-bit length's top bit must be clear, decided at byte 2, whatever
   * follows and whether or not the rest of the header is here. */
  {
    static const uint64_t bad[] = {UINT64_C(0x8000000000000000), UINT64_C(0xFFFFFFFFFFFFFFFF),
                                   UINT64_C(0x8000000000000005)};
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      size_t n = build_head(b, 1, 0, WS_OP_BINARY, 1, 64, bad[i], m);
      head_err(__LINE__, "64-bit MSB set", b, n, 1, 2);
      n = build_head(b, 1, 0, WS_OP_BINARY, 0, 64, bad[i], m);
      head_err(__LINE__, "64-bit MSB set, unmasked", b, n, 0, 2);
    }
  }

  /* Random headers of every kind, parsed back. */
  for (i = 0; i < 20000; i++) {
    uint8_t mask[4];
    int fin = (int)(rnd() & 1), rsv = (int)(rnd() & 7);
    static const int ops[] = {0, 1, 2, 8, 9, 10};
    int op = ops[rnd() % 6];
    int masked = (int)(rnd() & 1);
    int form;
    uint64_t len;
    size_t n;
    ws_head h;
    int r;
    if (op >= 8) {
      fin = 1;
      form = 7;
      len = rnd() % 126;
    } else {
      form = (int[]){7, 16, 64}[rnd() % 3];
      len = form == 7 ? rnd() % 126 : form == 16 ? rnd() & 0xFFFF : rnd() >> (1 + rnd() % 63);
    }
    rnd_fill(mask, 4);
    n = build_head(b, fin, rsv, op, masked, form, len, mask);
    r = ws_parse_head(guarded(b, n), n, 0, &h);
    CHECK(r == (int)n && h.fin == fin && h.rsv == rsv && h.opcode == op && h.masked == masked &&
              h.len == len && !memcmp(h.mask, masked ? mask : no_mask, 4),
          "random header %zu: r %d n %zu", i, r, n);
    r = ws_parse_head(guarded(b, n - 1), n - 1, 0, &h);
    CHECK(r == 0, "random header %zu short by one: %d", i, r);
    r = ws_parse_head(guarded(b, n), n, 1, &h);
    CHECK(r == (masked ? (int)n : -1002), "random header %zu, mask required", i);
  }
}

static void test_head_errors(void) {
  static const uint8_t m[4] = {1, 2, 3, 4};
  uint8_t b[WS_HEAD_MAX + 2];
  size_t n;
  int op, fin;
  char name[64];

  /* Reserved opcodes: refused on the first byte, fin or not, masked or not,
   * before anything about the mask. */
  for (op = 0; op < 16; op++) {
    if (op <= 2 || (op >= 8 && op <= 10)) continue;
    for (fin = 0; fin < 2; fin++) {
      snprintf(name, sizeof name, "reserved opcode %d fin %d", op, fin);
      n = build_head(b, fin, 0, op, 1, 7, 3, m);
      head_err(__LINE__, name, b, n, 1, 0);
      n = build_head(b, fin, 0, op, 0, 7, 3, m);
      head_err(__LINE__, name, b, n, 1, 0);
      head_err(__LINE__, name, b, n, 0, 0);
    }
  }

  /* Fragmented control frames: refused on the first byte. */
  for (op = 8; op <= 10; op++) {
    snprintf(name, sizeof name, "fragmented control %d", op);
    n = build_head(b, 0, 0, op, 1, 7, 0, m);
    head_err(__LINE__, name, b, n, 1, 0);
    n = build_head(b, 0, 0, op, 0, 7, 5, m);
    head_err(__LINE__, name, b, n, 0, 0);
  }

  /* Control frames: 125 is the limit; the 16/64-bit forms are refused on
   * the second byte, even for a small value. */
  for (op = 8; op <= 10; op++) {
    snprintf(name, sizeof name, "control %d len 125", op);
    n = build_head(b, 1, 0, op, 1, 7, 125, m);
    head_ok(__LINE__, name, b, n, 1, (int)n, 1, 0, op, 1, 125, m);
    snprintf(name, sizeof name, "control %d len 126", op);
    n = build_head(b, 1, 0, op, 1, 16, 126, m);
    head_err(__LINE__, name, b, n, 1, 1);
    snprintf(name, sizeof name, "control %d 16-bit len 5", op);
    n = build_head(b, 1, 0, op, 1, 16, 5, m);
    head_err(__LINE__, name, b, n, 1, 1);
    snprintf(name, sizeof name, "control %d 64-bit len 65536", op);
    n = build_head(b, 1, 0, op, 1, 64, 65536, m);
    head_err(__LINE__, name, b, n, 1, 1);
    n = build_head(b, 1, 0, op, 0, 64, 1000, m);
    head_err(__LINE__, name, b, n, 0, 1);
  }

  /* Unmasked frames: refused on the second byte when the mask is required,
   * accepted otherwise (with a zeroed mask). */
  for (op = 0; op <= 10; op++) {
    if (op > 2 && op < 8) continue;
    snprintf(name, sizeof name, "unmasked opcode %d", op);
    n = build_head(b, 1, 0, op, 0, 7, 7, m);
    head_err(__LINE__, name, b, n, 1, 1);
    head_ok(__LINE__, name, b, n, 0, (int)n, 1, 0, op, 0, 7, NULL);
  }
  n = build_head(b, 1, 0, WS_OP_BINARY, 0, 64, 70000, m);
  head_err(__LINE__, "unmasked 64-bit", b, n, 1, 1);

  /* RSV bits are reported, not judged, on data and control frames. */
  {
    int rsv;
    for (rsv = 0; rsv < 8; rsv++) {
      snprintf(name, sizeof name, "rsv %d text", rsv);
      n = build_head(b, 1, rsv, WS_OP_TEXT, 1, 16, 300, m);
      head_ok(__LINE__, name, b, n, 1, (int)n, 1, rsv, WS_OP_TEXT, 1, 300, m);
      snprintf(name, sizeof name, "rsv %d ping", rsv);
      n = build_head(b, 1, rsv, WS_OP_PING, 1, 7, 0, m);
      head_ok(__LINE__, name, b, n, 1, (int)n, 1, rsv, WS_OP_PING, 1, 0, m);
      snprintf(name, sizeof name, "rsv %d continuation fin 0", rsv);
      n = build_head(b, 0, rsv, WS_OP_CONT, 1, 7, 1, m);
      head_ok(__LINE__, name, b, n, 1, (int)n, 0, rsv, WS_OP_CONT, 1, 1, m);
    }
    /* and do not hide an error */
    n = build_head(b, 1, 7, 3, 1, 7, 1, m);
    head_err(__LINE__, "rsv 7 reserved opcode", b, n, 1, 0);
  }
}

/* ---- ws_head_write ------------------------------------------------------- */

static void test_head_write(void) {
  static const struct {
    uint64_t len;
    size_t size;
    uint8_t b1;
  } cases[] = {
      {0, 2, 0},
      {1, 2, 1},
      {125, 2, 125},
      {126, 4, 126},
      {127, 4, 126},
      {65535, 4, 126},
      {65536, 10, 127},
      {UINT64_C(0xFFFFFFFF), 10, 127},
      {UINT64_C(0x123456789A), 10, 127},
      {UINT64_C(0x7FFFFFFFFFFFFFFF), 10, 127},
  };
  static const int ops[] = {WS_OP_CONT,  WS_OP_TEXT, WS_OP_BINARY,
                            WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
  size_t i, j, k;
  int fin;

  for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (j = 0; j < sizeof ops / sizeof ops[0]; j++)
      for (fin = 0; fin < 2; fin++) {
        uint8_t out[16];
        ws_head h;
        size_t n;
        int r;
        if (ops[j] >= 8 && (!fin || cases[i].len > 125)) continue;
        memset(out, 0xEE, sizeof out);
        n = ws_head_write(out, ops[j], fin, cases[i].len);
        CHECK(n == cases[i].size, "head_write len %llu: size %zu", (unsigned long long)cases[i].len,
              n);
        if (n != cases[i].size) continue;
        CHECK(out[0] == ((fin ? 0x80 : 0) | ops[j]) && out[1] == cases[i].b1,
              "head_write len %llu: bytes %02x %02x", (unsigned long long)cases[i].len, out[0],
              out[1]);
        if (n == 4)
          CHECK(out[2] == (uint8_t)(cases[i].len >> 8) && out[3] == (uint8_t)cases[i].len,
                "head_write 16-bit bytes");
        if (n == 10)
          for (k = 0; k < 8; k++)
            CHECK(out[2 + k] == (uint8_t)(cases[i].len >> (56 - 8 * k)),
                  "head_write 64-bit byte %zu", k);
        for (k = n; k < sizeof out; k++) CHECK(out[k] == 0xEE, "head_write wrote past %zu", n);
        r = ws_parse_head(guarded(out, n), n, 0, &h);
        CHECK(r == (int)n && h.fin == fin && h.rsv == 0 && h.opcode == ops[j] && !h.masked &&
                  h.len == cases[i].len,
              "head_write len %llu op %d: parses back as %d", (unsigned long long)cases[i].len,
              ops[j], r);
      }
}

/* ---- unmask -------------------------------------------------------------- */

static void naive_unmask(uint8_t *d, size_t n, const uint8_t m[4], uint64_t pos) {
  size_t i;
  for (i = 0; i < n; i++) d[i] ^= m[(pos + i) % 4];
}

static void test_unmask(void) {
  static const uint64_t big_pos[] = {UINT64_C(0x10000000003), UINT64_C(0xFFFFFFFFFFFFFFFD)};
  uint8_t src[64], ref[64], mask[4];
  uint64_t pos;
  size_t len, off, i;
  uint8_t *p;

  /* Every pos 0..7 (and two huge ones), length 0..40, data pointer at every
   * alignment, each ending on the guard page. */
  for (pos = 0; pos < 10; pos++)
    for (len = 0; len <= 40; len++)
      for (off = 0; off < 8; off++) {
        uint64_t ps = pos < 8 ? pos : big_pos[pos - 8];
        rnd_fill(src, len + off);
        rnd_fill(mask, 4);
        memcpy(ref, src, len + off);
        naive_unmask(ref + off, len, mask, ps);
        p = guarded(src, len + off);
        ws_unmask(p + off, len, mask, ps);
        CHECK(!memcmp(p, ref, len + off), "unmask pos %llu len %zu offset %zu",
              (unsigned long long)ps, len, off);
        ws_unmask(p + off, len, mask, ps);
        CHECK(!memcmp(p, src, len + off), "unmask twice pos %llu len %zu", (unsigned long long)ps,
              len);
      }

  /* A large buffer, whole and in random pieces with a running pos. */
  {
    size_t n = (1u << 20) + 13;
    uint8_t *a = malloc(n), *r = malloc(n), *g;
    rnd_fill(a, n);
    for (pos = 0; pos < 4; pos++) {
      rnd_fill(mask, 4);
      memcpy(r, a, n);
      naive_unmask(r, n, mask, pos);
      g = guarded(a, n);
      ws_unmask(g, n, mask, pos);
      CHECK(!memcmp(g, r, n), "unmask 1 MiB pos %llu", (unsigned long long)pos);
      g = guarded(a, n);
      for (i = 0; i < n;) {
        size_t piece = (size_t)(rnd() % 3000);
        if (piece > n - i) piece = n - i;
        ws_unmask(g + i, piece, mask, pos + i);
        i += piece;
      }
      CHECK(!memcmp(g, r, n), "unmask 1 MiB in pieces pos %llu", (unsigned long long)pos);
    }
    free(a);
    free(r);
  }
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Reference, by code point arithmetic rather than a byte table: the index
 * of the first byte after which no well-formed continuation exists, -1 for
 * valid and complete, -2 for valid so far but ending inside a character.
 * A partial character's possible values form the interval [lo, hi] (the
 * missing bytes range over 80..BF); it can still be completed iff that
 * interval meets [min for its length, 0x10FFFF] outside the surrogates. */
static int viable(uint32_t lo, uint32_t hi, uint32_t min) {
  uint32_t a = lo > min ? lo : min, b = hi < 0x10FFFF ? hi : 0x10FFFF;
  if (a > b) return 0;
  return !(a >= 0xD800 && b <= 0xDFFF);
}

static long ref_utf8(const uint8_t *s, size_t n) {
  size_t i = 0, j, need;
  uint32_t cp, min;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC0 && c < 0xE0) {
      need = 1, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c < 0xF0) {
      need = 2, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c < 0xF8) {
      need = 3, cp = c & 0x07u, min = 0x10000;
    } else {
      return (long)i; /* a continuation byte, or F8..FF */
    }
    for (j = 0;; j++) {
      unsigned rest = (unsigned)(6 * (need - j));
      uint32_t lo = cp << rest, hi = lo | ((1u << rest) - 1);
      if (!viable(lo, hi, min)) return (long)(i + j);
      if (j == need) break;
      if (i + j + 1 >= n) return -2;
      c = s[i + j + 1];
      if ((c & 0xC0) != 0x80) return (long)(i + j + 1);
      cp = (cp << 6) | (c & 0x3Fu);
    }
    i += need + 1;
  }
  return -1;
}

/* The validator's verdict in the same terms, feeding byte by byte. */
static long dfa_bytewise(const uint8_t *s, size_t n) {
  uint32_t st = 0;
  size_t i;
  for (i = 0; i < n; i++)
    if (ws_utf8_feed(&st, s + i, 1) < 0) return (long)i;
  return ws_utf8_complete(st) ? -1 : -2;
}

static long dfa_whole(const uint8_t *s, size_t n) {
  uint32_t st = 0;
  if (ws_utf8_feed(&st, s, n) < 0) return -3; /* failed somewhere */
  return ws_utf8_complete(st) ? -1 : -2;
}

/* Check one sample every way: whole, split in two at every byte, byte by
 * byte, all on guarded copies; `want` as ref_utf8 returns it. */
static void utf8_case(int line, const char *name, const void *sv, size_t n, long want) {
  const uint8_t *s = sv;
  long ref = ref_utf8(s, n), got;
  size_t k;
  uint8_t copy[256];

  check(ref == want, line, "%s: reference says %ld, want %ld", name, ref, want);
  got = dfa_whole(guarded(s, n), n);
  check(got == (want >= 0 ? -3 : want), line, "%s: whole gives %ld", name, got);
  memcpy(copy, s, n);
  got = dfa_bytewise(copy, n);
  check(got == want, line, "%s: byte by byte gives %ld, want %ld", name, got, want);
  for (k = 0; k <= n; k++) {
    uint32_t st = 0;
    int r1 = ws_utf8_feed(&st, guarded(s, k), k), r2;
    long pre = ref_utf8(s, k);
    /* The first part fails iff the failing byte is in it. */
    check(r1 == (want >= 0 && (size_t)want < k ? -1 : 0), line, "%s: split %zu: first feed %d",
          name, k, r1);
    if (r1 == 0)
      check(!!ws_utf8_complete(st) == (pre == -1), line,
            "%s: split %zu: complete after first part %d", name, k, ws_utf8_complete(st));
    r2 = ws_utf8_feed(&st, guarded(s + k, n - k), n - k);
    check(r2 == (want >= 0 ? -1 : 0), line, "%s: split %zu: second feed %d", name, k, r2);
    if (want < 0)
      check(!!ws_utf8_complete(st) == (want == -1), line, "%s: split %zu: complete %d", name, k,
            ws_utf8_complete(st));
    if (want >= 0) { /* rejection is sticky */
      r2 = ws_utf8_feed(&st, (const uint8_t *)"a", 1);
      check(r2 == -1 && !ws_utf8_complete(st), line, "%s: split %zu: not sticky", name, k);
    }
  }
}

#define UTF8_OK(s) utf8_case(__LINE__, #s, s, sizeof(s) - 1, -1)
#define UTF8_PART(s) utf8_case(__LINE__, #s, s, sizeof(s) - 1, -2)
#define UTF8_BAD(s, at) utf8_case(__LINE__, #s, s, sizeof(s) - 1, at)

static void test_utf8_samples(void) {
  int c;
  UTF8_OK("");
  UTF8_OK("a");
  UTF8_OK("Hello, world! This line is plain ASCII and longer than 8.");
  UTF8_OK("\x00\x01\x7f");
  UTF8_OK("\xc2\x80");         /* U+0080, smallest 2-byte */
  UTF8_OK("\xdf\xbf");         /* U+07FF */
  UTF8_OK("caf\xc3\xa9");      /* é */
  UTF8_OK("\xe0\xa0\x80");     /* U+0800, smallest 3-byte */
  UTF8_OK("\xe2\x82\xac");     /* € */
  UTF8_OK("\xed\x9f\xbf");     /* U+D7FF, just below the surrogates */
  UTF8_OK("\xee\x80\x80");     /* U+E000, just above */
  UTF8_OK("\xef\xbb\xbf");     /* BOM */
  UTF8_OK("\xef\xbf\xbf");     /* U+FFFF */
  UTF8_OK("\xef\xbf\xbe");     /* U+FFFE (a noncharacter, still valid) */
  UTF8_OK("\xf0\x90\x80\x80"); /* U+10000, smallest 4-byte */
  UTF8_OK("\xf0\x9f\x98\x80"); /* 😀 */
  UTF8_OK("\xf3\xbf\xbf\xbf"); /* U+FFFFF */
  UTF8_OK("\xf4\x80\x80\x80"); /* U+100000 */
  UTF8_OK("\xf4\x8f\xbf\xbf"); /* U+10FFFF */
  /* κόσμε (Autobahn 6.2.x, RFC 3629 examples' cousin) */
  UTF8_OK("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5");
  UTF8_OK("abcdefghij \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 0123456789"
          "ABCDEFGH \xf0\x9f\x98\x80\xe2\x82\xac\xc3\xa9 the end, plain");
  UTF8_OK("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xa7\xe3\x81\x99");

  /* Overlong forms: refused at the first byte that makes them so. */
  UTF8_BAD("\xc0\x80", 0);
  UTF8_BAD("\xc1\xbf", 0);
  UTF8_BAD("\xe0\x80\x80", 1);
  UTF8_BAD("\xe0\x9f\xbf", 1);
  UTF8_BAD("\xf0\x80\x80\x80", 1);
  UTF8_BAD("\xf0\x8f\xbf\xbf", 1);
  /* Surrogates ED A0 80 .. ED BF BF, and an encoded pair. */
  UTF8_BAD("\xed\xa0\x80", 1);
  UTF8_BAD("\xed\xad\xbf", 1);
  UTF8_BAD("\xed\xb0\x80", 1);
  UTF8_BAD("\xed\xbf\xbf", 1);
  UTF8_BAD("\xed\xa0\x80\xed\xb0\x80", 1);
  /* Above U+10FFFF. */
  UTF8_BAD("\xf4\x90\x80\x80", 1);
  UTF8_BAD("\xf4\xbf\xbf\xbf", 1);
  UTF8_BAD("\xf5\x80\x80\x80", 0);
  UTF8_BAD("\xf7\xbf\xbf\xbf", 0);
  UTF8_BAD("\xf8\x88\x80\x80\x80", 0);
  UTF8_BAD("\xfc\x84\x80\x80\x80\x80", 0);
  for (c = 0xF5; c <= 0xFF; c++) {
    uint8_t b[3] = {'x', (uint8_t)c, 'y'};
    char name[32];
    snprintf(name, sizeof name, "byte %02X", c);
    utf8_case(__LINE__, name, b, 3, 1);
  }
  /* Lone and stray continuation bytes, a lead followed by a non-tail. */
  UTF8_BAD("\x80", 0);
  UTF8_BAD("\xbf", 0);
  UTF8_BAD("a\x80", 1);
  UTF8_BAD("\xc3\xa9\xa9", 2);
  UTF8_BAD("\xc2\x41", 1);
  UTF8_BAD("\xe2\x82\x41", 2);
  UTF8_BAD("\xf0\x9f\x98\x41", 3);
  UTF8_BAD("\xe2\xc2\x80", 1);
  UTF8_BAD("0123456789abcdefghij\xff", 20); /* after the 8-byte fast path */
  UTF8_BAD("abcdefg\xc3\x28", 8);
  /* Autobahn 6.4.1-6.4.4: κόσμε, then F4 90 80 80 (> U+10FFFF), then
   * "edited": the 0x90 is where it must fail, not the end. */
  UTF8_BAD("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
           "\x65\x64\x69\x74\x65\x64",
           12);
  /* Truncated at the end: fine so far, not complete. */
  UTF8_PART("\xc3");
  UTF8_PART("\xe2\x82");
  UTF8_PART("\xf0\x9f\x98");
  UTF8_PART("abc\xe2");
  UTF8_PART("\xed\x9f");
  UTF8_PART("\xf4\x8f\xbf");
  UTF8_PART("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce");

  /* Autobahn 6.4.2 as it arrives: three fragments, fail in the second. */
  {
    uint32_t st = 0;
    CHECK(ws_utf8_feed(&st,
                       (const uint8_t *)"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc"
                                        "\xce\xb5\xf4",
                       12) == 0,
          "6.4.2 fragment 1");
    CHECK(ws_utf8_feed(&st, (const uint8_t *)"\x90", 1) == -1, "6.4.2 fragment 2 must fail");
  }
  /* A state we never produce is refused, not used as an index. */
  {
    uint32_t st = 0xDEADBEEF;
    CHECK(ws_utf8_feed(&st, (const uint8_t *)"a", 1) == -1 && !ws_utf8_complete(st),
          "garbage state accepted");
    st = 0;
    CHECK(ws_utf8_feed(&st, NULL, 0) == 0 && ws_utf8_complete(st), "empty feed");
  }
}

/* Exhaustive comparisons with the reference. Failures are counted and only
 * the first few printed. */
static void test_utf8_exhaustive(void) {
  static const uint8_t alpha[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                  0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                  0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  const size_t na = sizeof alpha;
  uint8_t s[5];
  unsigned long bad = 0, total = 0;
  uint32_t v;
  size_t a, b, c, d, e, len;

  for (len = 1; len <= 3; len++) {
    uint32_t count = 1u << (8 * len);
    for (v = 0; v < count; v++) {
      long r, x, y;
      for (a = 0; a < len; a++) s[a] = (uint8_t)(v >> (8 * a));
      r = ref_utf8(s, len);
      x = dfa_bytewise(s, len);
      y = dfa_whole(s, len);
      total++;
      if (x != r || y != (r >= 0 ? -3 : r)) {
        if (bad++ < 10)
          printf("FAIL utf8 exhaustive: %02x %02x %02x (len %zu): ref %ld, "
                 "bytewise %ld, whole %ld\n",
                 s[0], s[1], s[2], len, r, x, y);
      }
    }
  }
  /* 4 and 5 bytes over the boundary alphabet. */
  for (a = 0; a < na; a++)
    for (b = 0; b < na; b++)
      for (c = 0; c < na; c++)
        for (d = 0; d < na; d++)
          for (e = 0; e <= na; e++) {
            long r, x, y;
            size_t n = e == na ? 4 : 5;
            s[0] = alpha[a], s[1] = alpha[b], s[2] = alpha[c];
            s[3] = alpha[d], s[4] = e < na ? alpha[e] : 0;
            r = ref_utf8(s, n);
            x = dfa_bytewise(s, n);
            y = dfa_whole(s, n);
            total++;
            if (x != r || y != (r >= 0 ? -3 : r)) {
              if (bad++ < 20)
                printf("FAIL utf8 alphabet: %02x %02x %02x %02x %02x (%zu): "
                       "ref %ld, bytewise %ld, whole %ld\n",
                       s[0], s[1], s[2], s[3], s[4], n, r, x, y);
            }
          }
  CHECK(bad == 0, "utf8 exhaustive: %lu of %lu disagree", bad, total);

  /* Random mixed text, long enough to exercise the 8-byte ASCII path at
   * every alignment, checked whole and at a random split. */
  {
    static const char *const pieces[] = {"abcdefgh",
                                         "x",
                                         " ",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xf4\x8f\xbf\xbf",
                                         "\xed\x9f\xbf",
                                         "0123456789abcdef"};
    static const uint8_t junk[] = {0x80, 0xC0, 0xED, 0xF4, 0xF5, 0xE0, 0xFF};
    uint8_t buf[300];
    int i;
    bad = 0;
    for (i = 0; i < 20000; i++) {
      size_t n = 0, cut;
      long r, x;
      uint32_t st = 0;
      int r1, r2;
      while (n < 200) {
        const char *p = pieces[rnd() % 9];
        memcpy(buf + n, p, strlen(p));
        n += strlen(p);
      }
      if (rnd() & 1) buf[rnd() % n] = junk[rnd() % sizeof junk];
      r = ref_utf8(buf, n);
      x = dfa_whole(guarded(buf, n), n);
      cut = (size_t)(rnd() % (n + 1));
      r1 = ws_utf8_feed(&st, buf, cut);
      r2 = r1 < 0 ? -1 : ws_utf8_feed(&st, buf + cut, n - cut);
      if (x != (r >= 0 ? -3 : r) || (r2 < 0) != (r >= 0) ||
          (r >= 0 && (r1 < 0) != ((size_t)r < cut)) ||
          (r2 == 0 && !!ws_utf8_complete(st) != (r == -1)))
        bad++;
    }
    CHECK(bad == 0, "utf8 random text: %lu disagree", bad);
  }
}

/* ---- close codes --------------------------------------------------------- */

static void test_close_codes(void) {
  unsigned c, bad = 0;
  static const unsigned extra[] = {65535, 65536, 1u << 31, ~0u};
  size_t i;
  for (c = 0; c <= 5000; c++) {
    int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
    if (!!ws_close_code_valid(c) != want) {
      bad++;
      printf("FAIL close code %u: got %d\n", c, ws_close_code_valid(c));
    }
  }
  CHECK(bad == 0, "close codes 0..5000: %u wrong", bad);
  for (i = 0; i < sizeof extra / sizeof extra[0]; i++)
    CHECK(!ws_close_code_valid(extra[i]), "close code %u accepted", extra[i]);
  /* the named ones, for the reader */
  CHECK(ws_close_code_valid(1000) && ws_close_code_valid(1011) && !ws_close_code_valid(1004) &&
            !ws_close_code_valid(1005) && !ws_close_code_valid(1006) &&
            !ws_close_code_valid(1015) && !ws_close_code_valid(2999) && ws_close_code_valid(3000) &&
            ws_close_code_valid(4999) && !ws_close_code_valid(5000),
        "named close codes");
}

/* ---- SHA-1 and the accept key ------------------------------------------- */

static void hex(const uint8_t *d, size_t n, char *out) {
  size_t i;
  for (i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha1_case(int line, const char *name, const void *data, size_t n, const char *want) {
  uint8_t d[20];
  char h[41];
  ws_sha1(data, n, d);
  hex(d, 20, h);
  check(!strcmp(h, want), line, "sha1 %s: %s, want %s", name, h, want);
}

static void test_sha1(void) {
  char *m;
  size_t n;
  /* FIPS 180-2 appendix A (and the NIST example set). */
  sha1_case(__LINE__, "abc", "abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
  sha1_case(__LINE__, "448-bit", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  sha1_case(__LINE__, "896-bit",
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
            "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
            112, "a49b2446a02c645bf419f995b67091253a04a259");
  sha1_case(__LINE__, "empty", "", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  n = 1000000;
  m = malloc(n);
  memset(m, 'a', n);
  sha1_case(__LINE__, "a million a", m, n, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  /* Padding boundaries (expected values from Python's hashlib). */
  sha1_case(__LINE__, "55 a", m, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  sha1_case(__LINE__, "56 a", m, 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699");
  sha1_case(__LINE__, "63 a", m, 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
  sha1_case(__LINE__, "64 a", m, 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d");
  sha1_case(__LINE__, "65 a", m, 65, "11655326c708d70319be2610e8a57d9a5b959d3b");
  sha1_case(__LINE__, "119 a", m, 119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56");
  sha1_case(__LINE__, "120 a", m, 120, "f34c1488385346a55709ba056ddd08280dd4c6d6");
  /* An unaligned start reads the same bytes. */
  sha1_case(__LINE__, "abc guarded", guarded("abc", 3), 3,
            "a9993e364706816aba3e25717850c26c9cd0d89d");
  free(m);
}

static void accept_ok(int line, const char *key, const char *want) {
  char out[30];
  int r;
  memset(out, 'Z', sizeof out);
  r = ws_accept_key((const char *)guarded(key, strlen(key)), strlen(key), out);
  check(r == 0 && !memcmp(out, want, 29) && out[29] == 'Z', line, "accept %s: %d %.28s, want %s",
        key, r, out, want);
}

static void accept_bad(int line, const char *key, size_t n) {
  char out[29];
  int r;
  memset(out, 'Z', sizeof out);
  r = ws_accept_key((const char *)guarded(key, n), n, out);
  check(r == -1, line, "accept of bad key \"%.*s\" gave %d", (int)n, key, r);
  check(out[0] == 'Z' && out[28] == 'Z', line, "bad key wrote out");
}
#define ACCEPT_BAD(k) accept_bad(__LINE__, k, sizeof(k) - 1)

static void test_accept_key(void) {
  /* RFC 6455 1.3 / 4.2.2: the digest there is b37a4f2c...c4ea, which is
   * "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in base64. */
  accept_ok(__LINE__, "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  /* More, from Python's hashlib + base64. */
  accept_ok(__LINE__, "x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  accept_ok(__LINE__, "AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
  accept_ok(__LINE__, "/////////////////////w==", "XXpj4jYzLM2yUE0C7TIgMwTQh2g=");

  ACCEPT_BAD("");
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ=");   /* 23: one '=' missing */
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ");    /* 22: no padding */
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ==="); /* 25 */
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ== "); /* trailing space */
  ACCEPT_BAD(" dGhlIHNhbXBsZSBub25jZQ==");
  ACCEPT_BAD("AAECAwQFBgcICQoLDA0O");     /* 15 bytes */
  ACCEPT_BAD("AAECAwQFBgcICQoLDA0ODxA="); /* 17 bytes, 24 characters */
  ACCEPT_BAD("AAECAwQFBgcICQoLDA0ODxAR"); /* 18 bytes, 24 characters */
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZR=="); /* non-zero padding bits */
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZf=="); /* ditto */
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25j-Q=="); /* URL-safe alphabet */
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25j_Q==");
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25j*Q==");
  ACCEPT_BAD("dGhlIHNhbXBs ZSBub25jQ==");
  ACCEPT_BAD("dGhlIHNhbXBsZSBu=25jZQ=="); /* '=' inside */
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQ=A");
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25jZQA=");
  ACCEPT_BAD("dGhlIHNhbXBsZSBub25j\xc3Q==");
  accept_bad(__LINE__, "dGhlIHNhbXBsZSBu\0b25jZQ==", 24); /* NUL inside */
  accept_bad(__LINE__, "dGhlIHNhbXBsZSBub25jZQ==", 23);   /* length wins */

  /* Every canonical key of random bytes is accepted, and the answer does
   * not depend on anything but the key. */
  {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int i, bad = 0;
    for (i = 0; i < 2000; i++) {
      char key[25], o1[29], o2[29];
      int j;
      for (j = 0; j < 21; j++) key[j] = al[rnd() % 64];
      key[21] = al[(rnd() % 4) * 16]; /* low 4 bits zero */
      key[22] = key[23] = '=';
      key[24] = 0;
      if (ws_accept_key(key, 24, o1) || ws_accept_key(key, 24, o2) || memcmp(o1, o2, 29) ||
          o1[27] != '=' || o1[28] != 0)
        bad++;
      key[21] = al[(rnd() % 4) * 16 + 1 + rnd() % 15]; /* nonzero bits */
      if (ws_accept_key(key, 24, o1) != -1) bad++;
    }
    CHECK(bad == 0, "random keys: %d wrong", bad);
  }
}

int main(void) {
  guard_init(2u << 20);
  test_rfc_examples();
  test_lengths();
  test_head_errors();
  test_head_write();
  test_unmask();
  test_utf8_samples();
  test_utf8_exhaustive();
  test_close_codes();
  test_sha1();
  test_accept_key();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
