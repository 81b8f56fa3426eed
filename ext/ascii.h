/* ascii: byte helpers for protocol text, where case rules are ASCII's and
 * never the locale's (header names, hex escapes, tokens), and the one
 * decimal writer (HTTP lengths and ports, RESP counts, stream ids). Header-only so
 * every file that parses text, and the unit tests that build one file
 * alone, get the same definitions. */
#ifndef IODINE_ASCII_H
#define IODINE_ASCII_H

#include <stddef.h>
#include <stdint.h>

/* The longest decimal a uint64_t takes (18446744073709551615). */
#define ASCII_U64_MAX 20

/* v in decimal at dst (ASCII_U64_MAX bytes of room, no terminator);
 * returns the length. Used instead of snprintf, whose format parsing
 * costs more than the number (perf: vfprintf and strnlen were 0.6% of a
 * keep-alive request). */
static inline size_t ascii_u64(char *dst, uint64_t v) {
  char tmp[ASCII_U64_MAX];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) dst[i] = tmp[n - 1 - i];
  return n;
}

static inline int ascii_lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }

/* n bytes of a and b equal, ignoring ASCII case. */
static inline int ascii_same_ci(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) return 0;
  return 1;
}

/* The value of one hex digit, or -1. */
static inline int ascii_hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch = ascii_lower(ch);
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

#endif
