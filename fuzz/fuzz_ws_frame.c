/* libFuzzer target for ext/ws_frame.c.
 *
 * Build and run (corpus in fuzz/corpus/ws_frame, findings go to build/):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iext \
 *     ext/ws_frame.c fuzz/fuzz_ws_frame.c -o build/fuzz_ws_frame
 *   mkdir -p build/fuzz-ws-work && build/fuzz_ws_frame -max_total_time=600 \
 *     -artifact_prefix=build/ws- build/fuzz-ws-work fuzz/corpus/ws_frame
 * (one process, one core: without -jobs libFuzzer forks no workers; with
 * -jobs=1 -workers=1 it is the same but logs to ./fuzz-0.log.)
 *
 * Input: byte 0 seeds the split points, byte 1 picks the length of the
 * accept-key prefix (byte 1 % 32), the rest is what a client sent: a stream
 * of frames, walked as the connection code would (require_mask = 1) until a
 * header is incomplete or refused or a payload runs past the end.
 *
 * Every buffer handed to ws_frame is a fresh allocation of exactly its
 * length, so AddressSanitizer sees any over-read. Besides "no crash", it
 * checks:
 *  - the header's size, fields and verdict against the bytes (size within
 *    the buffer, length decoding, mask position, the refusal rules), every
 *    shorter prefix answering 0 (or, for a refused header, 0 then -1002
 *    from some byte on), and ws_head_write round-tripping the fields;
 *  - unmasking whole, in two pieces (resuming with pos) and by a naive
 *    loop all agree;
 *  - text payloads (and close reasons, and the raw input) validated whole,
 *    split in two, and byte by byte agree on the verdict and the failing
 *    byte, and match an arithmetic reference decoder;
 *  - close codes follow the rule;
 *  - ws_accept_key accepts exactly the canonical base64 of 16 bytes (an
 *    independent predicate) and answers base64(SHA-1(key + GUID)) computed
 *    here with a separate encoder. */
#include "ws_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

/* ---- UTF-8 --------------------------------------------------------------- */

/* Same reference as tests/c/test_ws_frame.c: index of the first byte after
 * which no well-formed continuation exists, -1 valid and complete, -2 valid
 * so far but inside a character. */
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
      return (long)i;
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

/* Validate s[0..n) whole, split at `cut`, and byte by byte; all must agree
 * with each other and with the reference. Returns the reference verdict. */
static long check_utf8(const uint8_t *s, size_t n, size_t cut) {
  uint32_t st1 = 0, st2 = 0, st3 = 0;
  int r1, r2;
  long ref = ref_utf8(s, n), at = -1;
  size_t i;
  uint8_t *a, *b;

  if (cut > n) cut = n;
  r1 = ws_utf8_feed(&st1, s, n);
  a = dup_exact(s, cut);
  b = dup_exact(s + cut, n - cut);
  r2 = ws_utf8_feed(&st2, a, cut);
  if (r2 == 0) r2 = ws_utf8_feed(&st2, b, n - cut);
  free(a);
  free(b);
  for (i = 0; i < n; i++)
    if (ws_utf8_feed(&st3, s + i, 1) < 0) {
      at = (long)i;
      break;
    }
  ASSERT(r1 == 0 || r1 == -1);
  ASSERT(r1 == r2);
  ASSERT((r1 < 0) == (at >= 0));
  ASSERT((ref >= 0) == (r1 < 0));
  if (ref >= 0) {
    ASSERT(at == ref);
    ASSERT(!ws_utf8_complete(st1) && !ws_utf8_complete(st2));
  } else {
    ASSERT(st1 == st2 && st1 == st3);
    ASSERT(!!ws_utf8_complete(st1) == (ref == -1));
  }
  return ref;
}

/* ---- accept key ---------------------------------------------------------- */

static int b64v(unsigned char c) {
  const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *p = c ? strchr(al, c) : NULL;
  return p ? (int)(p - al) : -1;
}

/* base64 through a bit accumulator (the library encodes 3-byte groups). */
static void enc64(const uint8_t *in, size_t n, char *out) {
  const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t i, o = 0;
  for (i = 0; i < n; i++) {
    acc = (acc << 8) | in[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out[o++] = al[(acc >> bits) & 63];
    }
  }
  if (bits) out[o++] = al[(acc << (6 - bits)) & 63];
  while (o % 4) out[o++] = '=';
  out[o] = 0;
}

static void check_key(const uint8_t *k, size_t n) {
  char *key = (char *)dup_exact(k, n);
  char out[29], want[29];
  uint8_t msg[64], d[20];
  int valid = n == 24 && key[22] == '=' && key[23] == '=', r;
  size_t i;

  for (i = 0; valid && i < 22; i++) valid = b64v((unsigned char)key[i]) >= 0;
  if (valid) valid = (b64v((unsigned char)key[21]) & 15) == 0;
  memset(out, 'Z', sizeof out);
  r = ws_accept_key(key, n, out);
  ASSERT(r == (valid ? 0 : -1));
  if (r == 0) {
    memcpy(msg, key, 24);
    memcpy(msg + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    ws_sha1(msg, 60, d);
    enc64(d, 20, want);
    ASSERT(!memcmp(out, want, 29));
  } else {
    ASSERT(out[0] == 'Z');
  }
  free(key);
}

/* ---- frames -------------------------------------------------------------- */

static int rule_close(unsigned c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

/* Check the verdict r for buf[0..n) against the bytes themselves. */
static void check_head(const uint8_t *buf, size_t n, int r, const ws_head *h) {
  unsigned op, len7;
  size_t ext, i;
  uint64_t len = 0;

  ASSERT(r == -1002 || r == 0 || (r >= 2 && r <= WS_HEAD_MAX));
  if (r <= 0) return;
  ASSERT((size_t)r <= n);
  op = buf[0] & 15u;
  len7 = buf[1] & 127u;
  ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  ASSERT(h->masked == 1 && (buf[1] & 0x80));
  ASSERT((size_t)r == 2 + ext + 4);
  ASSERT(h->fin == (buf[0] >> 7) && h->rsv == ((buf[0] >> 4) & 7) && h->opcode == op);
  ASSERT(op <= 2 || (op >= 8 && op <= 10));
  ASSERT(op < 8 || (h->fin && h->len <= 125 && len7 <= 125));
  for (i = 0; i < ext; i++) len = (len << 8) | buf[2 + i];
  ASSERT(h->len == (ext ? len : len7));
  ASSERT(h->len >> 63 == 0);
  ASSERT(!memcmp(h->mask, buf + r - 4, 4));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t seed, keysel;
  size_t off;
  int in_text = 0;
  uint32_t msg_state = 0;

  if (size < 2) return 0;
  seed = data[0];
  keysel = data[1];
  data += 2;
  size -= 2;

  /* The accept key on a prefix, and on a key made canonical from the
   * input's first 16 bytes (so the valid path is always exercised). */
  check_key(data, (keysel % 32) < size ? (keysel % 32) : size);
  if (size >= 16) {
    char k[29];
    enc64(data, 16, k);
    check_key((const uint8_t *)k, 24);
  }
  /* The raw bytes as UTF-8, split at a seeded point. */
  check_utf8(data, size, size ? (size_t)seed * 7919u % (size + 1) : 0);

  for (off = 0; off < size;) {
    size_t n = size - off, k, avail, cut;
    uint8_t *buf = dup_exact(data + off, n), *pre;
    uint8_t *pa, *pb, *orig;
    ws_head h, h2;
    int r, rk, seen_err = 0;

    r = ws_parse_head(buf, n, 1, &h);
    check_head(buf, n, r, &h);

    /* Every prefix: 0 before the header is whole, then the same answer; a
     * refused header is 0 up to some byte and -1002 from there on. */
    for (k = 0; k < n && k <= WS_HEAD_MAX; k++) {
      pre = dup_exact(buf, k);
      rk = ws_parse_head(pre, k, 1, &h2);
      free(pre);
      if (r > 0) {
        ASSERT(rk == ((int)k < r ? 0 : r));
      } else if (r == 0) {
        ASSERT(rk == 0);
      } else {
        ASSERT(rk == 0 || rk == -1002);
        if (rk == -1002)
          seen_err = 1;
        else
          ASSERT(!seen_err);
      }
    }
    /* Without require_mask, a masked header parses the same. */
    if (r > 0) {
      rk = ws_parse_head(buf, n, 0, &h2);
      ASSERT(rk == r && !memcmp(&h, &h2, sizeof h));
    } else if (r == -1002 && n >= 2 && !(buf[1] & 0x80)) {
      rk = ws_parse_head(buf, n, 0, &h2);
      ASSERT(rk == -1002 || rk == 0 || rk >= 2);
      if (rk > 0) ASSERT(!h2.masked && (size_t)rk <= n);
    }

    if (r <= 0) {
      free(buf);
      break;
    }

    /* ws_head_write writes the same fields back, minimally. */
    {
      uint8_t w[16];
      size_t wn = ws_head_write(w, h.opcode, h.fin, h.len);
      ASSERT(wn == (h.len <= 125 ? 2u : h.len <= 0xFFFF ? 4u : 10u));
      rk = ws_parse_head(w, wn, 0, &h2);
      ASSERT(rk == (int)wn && h2.fin == h.fin && h2.opcode == h.opcode && h2.len == h.len &&
             h2.rsv == 0 && !h2.masked);
    }

    /* Unmask whatever part of the payload is here: whole, in two pieces,
     * and naively. */
    avail = n - (size_t)r;
    if (h.len < avail) avail = (size_t)h.len;
    orig = dup_exact(buf + r, avail);
    pa = dup_exact(orig, avail);
    pb = dup_exact(orig, avail);
    cut = avail ? (size_t)seed * 31u % (avail + 1) : 0;
    ws_unmask(pa, avail, h.mask, 0);
    {
      uint8_t *b1 = dup_exact(pb, cut), *b2 = dup_exact(pb + cut, avail - cut);
      ws_unmask(b1, cut, h.mask, 0);
      ws_unmask(b2, avail - cut, h.mask, cut);
      memcpy(pb, b1, cut);
      memcpy(pb + cut, b2, avail - cut);
      free(b1);
      free(b2);
    }
    for (k = 0; k < avail; k++) ASSERT(pa[k] == (uint8_t)(orig[k] ^ h.mask[k & 3]));
    ASSERT(!memcmp(pa, pb, avail));

    /* Text: the frame alone, and the message so far across fragments. */
    if (h.opcode == WS_OP_TEXT || h.opcode == WS_OP_BINARY) {
      in_text = h.opcode == WS_OP_TEXT;
      msg_state = 0;
    }
    if (h.opcode == WS_OP_TEXT || (h.opcode == WS_OP_CONT && in_text)) {
      uint8_t *t = dup_exact(pa, avail);
      check_utf8(t, avail, cut);
      if (ws_utf8_feed(&msg_state, t, avail) < 0)
        in_text = 0; /* the connection would close with 1007 here */
      free(t);
    }
    if (h.opcode == WS_OP_CLOSE && avail >= 2) {
      unsigned code = ((unsigned)pa[0] << 8) | pa[1];
      uint8_t *t = dup_exact(pa + 2, avail - 2);
      ASSERT(!!ws_close_code_valid(code) == rule_close(code));
      check_utf8(t, avail - 2, cut > 2 ? cut - 2 : 0);
      free(t);
    }
    free(orig);
    free(pa);
    free(pb);
    free(buf);

    if (h.len > n - (size_t)r) break; /* the payload runs past the input */
    off += (size_t)r + (size_t)h.len;
  }
  return 0;
}
