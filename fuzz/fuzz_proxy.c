/* libFuzzer target for ext/proxy.c: what a trusted proxy says about the
 * client (RFC 7239 Forwarded, X-Forwarded-For, X-Forwarded-Proto).
 *
 * Build and run (corpus in fuzz/corpus/proxy; `make fuzz` does both):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iext \
 *     ext/proxy.c fuzz/fuzz_proxy.c -o build/fuzz_proxy
 *
 * Input: byte 0 picks one of a few trust lists; the rest is a header value,
 * in a heap block of exactly its length (not NUL-terminated), so ASan sees
 * any over-read.
 *
 * Checks, besides "no crash":
 *  - an address px_forwarded or px_client returns is a non-empty slice of
 *    the value and parses as an IPv4 or IPv6 address (never a port, quote,
 *    bracket or obfuscated name);
 *  - the scheme is NULL or exactly "http" / "https";
 *  - with nobody trusted, the answer is the right-most usable element (the
 *    walk never goes past an untrusted hop); with the NULL list, nothing;
 *  - the same call twice agrees, and on a copy followed by junk bytes with
 *    the same length (no read past the length). */
#define _GNU_SOURCE
#include "proxy.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static const char *specs[] = {"", "*", "127.0.0.1,10.0.0.0/8", "::1,2001:db8::/32,192.0.2.0/24"};
#define NSPECS (sizeof specs / sizeof *specs)
static px_trust *trusts[NSPECS];

static int is_addr(const char *p, size_t n) {
  char buf[64];
  unsigned char out[16];
  if (!n || n >= sizeof buf) return 0;
  memcpy(buf, p, n);
  buf[n] = 0;
  return inet_pton(AF_INET, buf, out) == 1 || inet_pton(AF_INET6, buf, out) == 1;
}

static void check_slice(const char *v, size_t len, const char *a, size_t n) {
  ASSERT(a >= v && a + n <= v + len && n > 0);
  ASSERT(is_addr(a, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!trusts[0])
    for (size_t i = 0; i < NSPECS; i++) {
      char err[128];
      trusts[i] = px_parse(specs[i], err, sizeof err);
      ASSERT(trusts[i]);
    }
  if (!size) return 0;
  px_trust *t = trusts[data[0] % NSPECS];
  const char *v = dup_exact(data + 1, size - 1);
  size_t len = size - 1;
  char *padded = malloc(len + 8);
  ASSERT(padded);
  memcpy(padded, v, len);
  memset(padded + len, data[0] & 1 ? ',' : '"', 8);

  const char *a = NULL, *s = NULL, *a2 = NULL, *s2 = NULL;
  size_t n = 0, n2 = 0;
  int r = px_forwarded(t, v, len, &a, &n, &s);
  if (r) {
    check_slice(v, len, a, n);
    ASSERT(!s || !strcmp(s, "http") || !strcmp(s, "https"));
  }
  int r2 = px_forwarded(t, padded, len, &a2, &n2, &s2);
  ASSERT(r == r2);
  if (r) ASSERT(n == n2 && !memcmp(a, a2, n) && s == s2);
  /* nobody trusted: the answer cannot be left of another usable element */
  if (r && t == trusts[0]) {
    const char *b = NULL, *sb = NULL;
    size_t nb = 0;
    px_trust *all = trusts[1];
    int rb = px_forwarded(all, v, len, &b, &nb, &sb);
    ASSERT(rb);
    ASSERT(b <= a); /* trusting everyone walks at least as far left */
  }
  ASSERT(!px_forwarded(NULL, v, len, &a, &n, &s));

  r = px_client(t, v, len, &a, &n);
  if (r) check_slice(v, len, a, n);
  r2 = px_client(t, padded, len, &a2, &n2);
  ASSERT(r == r2);
  if (r) ASSERT(n == n2 && !memcmp(a, a2, n));

  s = px_scheme(v, len);
  ASSERT(!s || !strcmp(s, "http") || !strcmp(s, "https"));
  ASSERT(s == px_scheme(padded, len));

  free(padded);
  free((void *)v);
  return 0;
}
