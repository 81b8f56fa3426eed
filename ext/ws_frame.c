/* ws_frame: the WebSocket wire format (RFC 6455), bytes only.
 *
 * Owns: frame header parsing and building, (un)masking, the incremental
 * UTF-8 validator for text messages, the close-code rule, and the
 * handshake's Sec-WebSocket-Accept, with the SHA-1 (FIPS 180-4) and base64
 * (RFC 4648) it needs, so the core links no crypto library.
 *
 * Must never: allocate, do I/O, keep state outside what the caller passes
 * in, or read a byte outside the [buf, buf + len) it was handed (headers
 * arrive in pieces, at the end of a read buffer). Every multi-byte load
 * goes through memcpy or a byte loop, so no alignment is assumed, and every
 * shift is done on an unsigned type wide enough for it.
 *
 * Everything here was written for this project from the RFCs and FIPS
 * 180-4; the UTF-8 automaton is derived from the table of well-formed byte
 * sequences (Unicode ch. 3, Table 3-7, as restated in RFC 3629 section 4). */
#include "ws_frame.h"

#include <string.h>

/* ------------------------------------------------------------------------
 * Frame headers */

/* Opcodes RFC 6455 defines: 0, 1, 2 (data) and 8, 9, 10 (control); every
 * other value is reserved for extensions we never negotiate. Bit n set
 * means opcode n is known. */
#define WS_KNOWN_OPCODES 0x0707u

int ws_parse_head(const uint8_t *buf, size_t len, int require_mask, ws_head *out) {
  unsigned b0, b1, op, len7;
  size_t need;
  uint64_t plen;

  /* Each error is reported as soon as the bytes that show it are here, not
   * when the whole header is: a peer that sends a bad first byte and then
   * stalls must not hold the connection open waiting for the rest. */
  if (len < 1) return 0;
  b0 = buf[0];
  op = b0 & 0x0Fu;
  if (!((WS_KNOWN_OPCODES >> op) & 1u)) return -1002;
  if (op >= 8 && !(b0 & 0x80u)) return -1002; /* control frames must not be fragmented (5.5) */
  if (len < 2) return 0;
  b1 = buf[1];
  len7 = b1 & 0x7Fu;
  if (require_mask && !(b1 & 0x80u)) return -1002; /* a client must mask every frame (5.1) */
  /* Control payloads are at most 125 bytes, which the 7-bit field holds;
   * the 16/64-bit forms (126, 127) are refused even when the extended
   * value is small, since the sender must use the minimal encoding. */
  if (op >= 8 && len7 > 125) return -1002;
  need = 2;
  if (len7 == 126)
    need += 2;
  else if (len7 == 127) {
    need += 8;
    /* The 64-bit length's most significant bit must be 0 (5.2). */
    if (len >= 3 && (buf[2] & 0x80u)) return -1002;
  }
  if (b1 & 0x80u) need += 4;
  if (len < need) return 0;

  /* Big-endian extended lengths, built byte by byte: no alignment, no
   * dependence on host byte order. Non-minimal data-frame lengths (e.g. 5
   * in the 16-bit form) are accepted, as most peers and Autobahn do. */
  if (len7 == 126) {
    plen = ((uint64_t)buf[2] << 8) | buf[3];
  } else if (len7 == 127) {
    unsigned i;
    plen = 0;
    for (i = 0; i < 8; i++) plen = (plen << 8) | buf[2 + i];
  } else {
    plen = len7;
  }

  out->fin = (uint8_t)(b0 >> 7);
  out->rsv = (uint8_t)((b0 >> 4) & 7u);
  out->opcode = (uint8_t)op;
  out->masked = (uint8_t)(b1 >> 7);
  if (out->masked)
    memcpy(out->mask, buf + need - 4, 4);
  else
    memset(out->mask, 0, 4);
  out->len = plen;
  return (int)need;
}

size_t ws_head_write(uint8_t *out, int opcode, int fin, uint64_t len) {
  out[0] = (uint8_t)((fin ? 0x80u : 0u) | ((unsigned)opcode & 0x0Fu));
  if (len <= 125) {
    out[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xFFFFu) {
    out[1] = 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return 4;
  }
  {
    unsigned i;
    out[1] = 127;
    /* A payload this large cannot exist in memory, but keep the wire legal:
     * the top bit of the 64-bit length must be clear. */
    len &= UINT64_C(0x7FFFFFFFFFFFFFFF);
    for (i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
  }
}

/* ------------------------------------------------------------------------
 * Masking */

void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t pos) {
  /* data[i] is payload byte pos + i, so it takes mask[(pos + i) % 4]. Lay
   * the mask out twice, rotated so m8[0] lines up with data[0]; then any
   * index i uses m8[i % 8] (period 4 divides 8), and a whole 8-byte word
   * starting at a multiple of 8 uses the word m8 exactly. */
  uint8_t m8[8];
  unsigned k = (unsigned)(pos & 3u);
  size_t i = 0;
  unsigned j;

  for (j = 0; j < 8; j++) m8[j] = mask[(k + j) & 3u];
  if (len >= 8) {
    uint64_t m, w0, w1, w2, w3;
    memcpy(&m, m8, 8); /* host order on both sides: XOR is bytewise */
    for (; len - i >= 32; i += 32) {
      memcpy(&w0, data + i, 8);
      memcpy(&w1, data + i + 8, 8);
      memcpy(&w2, data + i + 16, 8);
      memcpy(&w3, data + i + 24, 8);
      w0 ^= m;
      w1 ^= m;
      w2 ^= m;
      w3 ^= m;
      memcpy(data + i, &w0, 8);
      memcpy(data + i + 8, &w1, 8);
      memcpy(data + i + 16, &w2, 8);
      memcpy(data + i + 24, &w3, 8);
    }
    for (; len - i >= 8; i += 8) {
      memcpy(&w0, data + i, 8);
      w0 ^= m;
      memcpy(data + i, &w0, 8);
    }
  }
  for (; i < len; i++) data[i] ^= m8[i & 7u];
}

/* ------------------------------------------------------------------------
 * UTF-8
 *
 * Table 3-7 lists every well-formed sequence:
 *
 *   00..7F
 *   C2..DF  80..BF
 *   E0      A0..BF  80..BF
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF  80..BF
 *   F1..F3  80..BF  80..BF  80..BF
 *   F4      80..8F  80..BF  80..BF
 *
 * The restricted second bytes are exactly what excludes overlong forms (E0,
 * F0), surrogates (ED) and code points above U+10FFFF (F4); C0, C1 and
 * F5..FF never occur. Bytes are sorted into classes that the table never
 * needs to tell apart, and a state says what the current character still
 * needs. Because each state accepts exactly the bytes that can continue
 * some row of the table, the automaton rejects at the first byte after
 * which no well-formed continuation exists (fail fast). */

enum {
  U_ACCEPT = 0, /* on a character boundary */
  U_TAIL1 = 1,  /* one more 80..BF */
  U_TAIL2 = 2,  /* two more 80..BF */
  U_TAIL3 = 3,  /* three more 80..BF */
  U_E0 = 4,     /* after E0: A0..BF, then one tail */
  U_ED = 5,     /* after ED: 80..9F, then one tail */
  U_F0 = 6,     /* after F0: 90..BF, then two tails */
  U_F4 = 7,     /* after F4: 80..8F, then two tails */
  U_REJECT = 8  /* sticky: the text can no longer be valid */
};

enum {
  C_ASCII, /* 00..7F */
  C_80,    /* 80..8F */
  C_90,    /* 90..9F */
  C_A0,    /* A0..BF */
  C_NEVER, /* C0, C1, F5..FF */
  C_LEAD2, /* C2..DF */
  C_E0,    /* E0 */
  C_LEAD3, /* E1..EC, EE..EF */
  C_ED,    /* ED */
  C_F0,    /* F0 */
  C_LEAD4, /* F1..F3 */
  C_F4,    /* F4 */
  C_COUNT
};
_Static_assert(C_80 == 1 && C_NEVER == 4 && C_ED == 8 && C_F4 == 11,
               "utf8_class below spells the classes as numbers");

/* utf8_class[byte]: the C_ value of each byte (numbers, to fit 16 a row). */
static const uint8_t utf8_class[256] = {
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00..0F */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10..1F */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 20..2F */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 30..3F */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 40..4F */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 50..5F */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 60..6F */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 70..7F */
    1, 1,  1,  1,  1,  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 80..8F */
    2, 2,  2,  2,  2,  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 90..9F */
    3, 3,  3,  3,  3,  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* A0..AF */
    3, 3,  3,  3,  3,  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* B0..BF */
    4, 4,  5,  5,  5,  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* C0..CF */
    5, 5,  5,  5,  5,  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* D0..DF */
    6, 7,  7,  7,  7,  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7, /* E0..EF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* F0..FF */
};

/* utf8_next[state][class]: the state after one more byte. Short names so
 * the rows line up with the table above. */
#define OK U_ACCEPT
#define T1 U_TAIL1
#define T2 U_TAIL2
#define T3 U_TAIL3
#define RJ U_REJECT
static const uint8_t utf8_next[U_REJECT + 1][C_COUNT] = {
    /*          00-7F 80-8F 90-9F A0-BF never C2-DF  E0  E1-EF  ED    F0  F1-F3  F4 */
    [U_ACCEPT] = {OK, RJ, RJ, RJ, RJ, T1, U_E0, T2, U_ED, U_F0, T3, U_F4},
    [U_TAIL1] = {RJ, OK, OK, OK, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ},
    [U_TAIL2] = {RJ, T1, T1, T1, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ},
    [U_TAIL3] = {RJ, T2, T2, T2, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ},
    [U_E0] = {RJ, RJ, RJ, T1, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ},
    [U_ED] = {RJ, T1, T1, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ},
    [U_F0] = {RJ, RJ, T2, T2, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ},
    [U_F4] = {RJ, T2, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ},
    [U_REJECT] = {RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ, RJ},
};
#undef OK
#undef T1
#undef T2
#undef T3
#undef RJ

#define HIGH_BITS UINT64_C(0x8080808080808080)

int ws_utf8_feed(uint32_t *state, const uint8_t *s, size_t n) {
  uint32_t st = *state;
  size_t i = 0;

  /* A state we never produce is treated as rejected rather than used as a
   * table index. */
  if (st >= U_REJECT) {
    *state = U_REJECT;
    return -1;
  }
  while (i < n) {
    uint8_t c = s[i];
    if (st == U_ACCEPT && c < 0x80) {
      /* Text is mostly ASCII: between characters, after an ASCII byte,
       * skip 8 bytes at a time while none has its high bit set. The check
       * on c first keeps non-Latin text (every byte >= 0x80) off this
       * path, where the 8-byte test would fail every time. */
      uint64_t w;
      i++;
      while (n - i >= 8) {
        memcpy(&w, s + i, 8);
        if (w & HIGH_BITS) break;
        i += 8;
      }
      continue;
    }
    st = utf8_next[st][utf8_class[c]];
    if (st == U_REJECT) {
      *state = U_REJECT;
      return -1;
    }
    i++;
  }
  *state = st;
  return 0;
}

int ws_utf8_complete(uint32_t state) { return state == U_ACCEPT; }

/* ------------------------------------------------------------------------
 * Close codes (RFC 6455 7.4) */

int ws_close_code_valid(unsigned code) {
  /* 1004 is reserved, 1005/1006/1015 are for reporting only and must never
   * be sent; 0-999 and 1016-2999 are unassigned or reserved. 1012-1014
   * (registered with IANA later) are refused, as the contract says. */
  if (code >= 1000 && code <= 1003) return 1;
  if (code >= 1007 && code <= 1011) return 1;
  return code >= 3000 && code <= 4999;
}

/* ------------------------------------------------------------------------
 * SHA-1 (FIPS 180-4, section 6.1) */

static uint32_t rotl32(uint32_t x, unsigned n) {
  /* n is always 1..31 here, so neither shift reaches 32. */
  return (x << n) | (x >> (32u - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  uint32_t a, b, c, d, e, f, k, t;
  unsigned i;

  for (i = 0; i < 16; i++)
    w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
           ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
  for (i = 16; i < 80; i++) w[i] = rotl32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  a = h[0];
  b = h[1];
  c = h[2];
  d = h[3];
  e = h[4];
  for (i = 0; i < 80; i++) {
    if (i < 20) {
      f = (b & c) | (~b & d); /* Ch */
      k = 0x5A827999u;
    } else if (i < 40) {
      f = b ^ c ^ d; /* Parity */
      k = 0x6ED9EBA1u;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d); /* Maj */
      k = 0x8F1BBCDCu;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6u;
    }
    t = rotl32(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rotl32(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void ws_sha1(const void *data, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  const uint8_t *p = data;
  uint8_t tail[128];
  size_t rest, padded, i;
  /* The length in bits, modulo 2^64 as the standard defines it (unsigned
   * arithmetic wraps, it does not overflow). */
  uint64_t bits = (uint64_t)len << 3;

  while (len >= 64) {
    sha1_block(h, p);
    p += 64;
    len -= 64;
  }
  /* Padding: a 1 bit, zeros, then the 64-bit length, so the total is a
   * multiple of 512 bits; it spills into a second block when fewer than 9
   * bytes remain after the data. */
  rest = len;
  memset(tail, 0, sizeof tail);
  if (rest) memcpy(tail, p, rest);
  tail[rest] = 0x80;
  padded = rest < 56 ? 64 : 128;
  for (i = 0; i < 8; i++) tail[padded - 1 - i] = (uint8_t)(bits >> (8 * i));
  sha1_block(h, tail);
  if (padded == 128) sha1_block(h, tail + 64);
  for (i = 0; i < 5; i++) {
    out[4 * i] = (uint8_t)(h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(h[i] >> 8);
    out[4 * i + 3] = (uint8_t)h[i];
  }
}

/* ------------------------------------------------------------------------
 * base64 (RFC 4648 section 4, standard alphabet) and the accept key */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of a base64 character, or -1. Comparisons on the
 * character's value, not a 256-entry table: this runs 22 times per
 * handshake. Unsigned so a negative `char` cannot index or compare oddly. */
static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Encode n bytes; writes 4 * ceil(n / 3) characters, no NUL. */
static void b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t i = 0, o = 0;
  uint32_t v;

  for (; n - i >= 3; i += 3) {
    v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
    out[o++] = b64_alphabet[(v >> 18) & 63u];
    out[o++] = b64_alphabet[(v >> 12) & 63u];
    out[o++] = b64_alphabet[(v >> 6) & 63u];
    out[o++] = b64_alphabet[v & 63u];
  }
  if (n - i) { /* 1 or 2 bytes left: 2 or 3 characters, then padding */
    v = (uint32_t)in[i] << 16;
    if (n - i == 2) v |= (uint32_t)in[i + 1] << 8;
    out[o++] = b64_alphabet[(v >> 18) & 63u];
    out[o++] = b64_alphabet[(v >> 12) & 63u];
    out[o++] = n - i == 2 ? b64_alphabet[(v >> 6) & 63u] : '=';
    out[o++] = '=';
  }
}

/* Is key the canonical base64 form of exactly 16 bytes? 16 bytes are five
 * 3-byte groups (20 characters) plus one byte, which encodes as two
 * characters and "==". The second of those carries only 2 data bits; its
 * low 4 bits are padding and must be zero, or the string is not *the*
 * encoding of any 16 bytes (RFC 4648 3.5 lets decoders refuse it). */
static int key_is_16_bytes(const char *key, size_t key_len) {
  size_t i;
  int v = 0;

  if (key_len != 24 || key[22] != '=' || key[23] != '=') return 0;
  for (i = 0; i < 22; i++) {
    v = b64_value((unsigned char)key[i]);
    if (v < 0) return 0;
  }
  return (v & 15) == 0; /* v is key[21]'s value */
}

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int ws_accept_key(const char *key, size_t key_len, char out[29]) {
  /* 24 key characters + 36 GUID characters: one 60-byte message. */
  uint8_t msg[24 + sizeof(WS_GUID) - 1];
  uint8_t digest[20];

  if (!key_is_16_bytes(key, key_len)) return -1;
  memcpy(msg, key, 24);
  memcpy(msg + 24, WS_GUID, sizeof(WS_GUID) - 1);
  ws_sha1(msg, sizeof msg, digest);
  b64_encode(digest, sizeof digest, out); /* 20 bytes -> 28 characters */
  out[28] = '\0';
  return 0;
}
