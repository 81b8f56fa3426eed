/* libFuzzer target for ext/pmd.c: the Sec-WebSocket-Extensions offer
 * parser and the bounded inflater.
 *
 *   make fuzz FUZZ_TARGETS=pmd     (or: build/fuzz_pmd over fuzz/corpus/pmd)
 *
 * Input: byte 0 picks the settings (on/off, window bits 9..15, a memory
 * cap); byte 1 the inflate room (0..255, times 64 bytes); then the header
 * values, separated by '\n', up to a NUL byte; after the NUL, deflate data
 * fed to an inflater in pieces (byte 1 also seeds the split points).
 *
 * Each header value is a fresh allocation of exactly its length (ASan sees
 * an over-read). Besides "no crash" it checks:
 *  - a refused negotiation leaves params zeroed; an accepted one has every
 *    window within 8..15, never above the settings' bits (unless the
 *    client asked 8), client context kept only if it fits the cap;
 *  - the response names server_no_context_takeover, names a window only if
 *    the offer did, and, parsed again as an offer, is itself accepted;
 *  - the inflater never emits more than the room, and any verdict other
 *    than 0 is one of the close codes it may answer. */
#include "pmd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static uint64_t emitted;

static int emit(void *ctx, const uint8_t *p, size_t n) {
  (void)ctx;
  (void)p;
  emitted += n;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  pmd_config cfg = {data[0] & 1, 9 + (data[0] >> 1) % 7, (size_t)(data[0] >> 4) * 8192};
  uint64_t room = (uint64_t)data[1] * 64;
  const uint8_t *p = data + 2, *end = data + size;
  const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
  const uint8_t *hend = nul ? nul : end;

  /* header values */
  char *vals[8];
  const char *cvals[8];
  size_t lens[8], n = 0;
  const uint8_t *s = p;
  while (s <= hend && n < 8) {
    const uint8_t *e = memchr(s, '\n', (size_t)(hend - s));
    if (!e) e = hend;
    vals[n] = dup_exact(s, (size_t)(e - s));
    cvals[n] = vals[n];
    lens[n] = (size_t)(e - s);
    n++;
    s = e + 1;
  }
  pmd_params pm;
  int ok = pmd_negotiate(cvals, lens, n, &cfg, &pm);
  if (!ok) {
    ASSERT(!pm.on);
  } else {
    ASSERT(cfg.enabled && pm.on);
    ASSERT(pm.server_bits >= 8 && pm.server_bits <= 15);
    ASSERT(pm.client_bits >= 8 && pm.client_bits <= 15);
    ASSERT(pm.server_bits <= cfg.window_bits);
    ASSERT(!pm.say_client_bits || pm.client_bits <= cfg.window_bits);
    /* a kept context fits the cap (pmd.c's INFLATE_FIXED: 7400 bytes) */
    if (!pm.client_no_ctx)
      ASSERT(((size_t)1 << (pm.client_bits < 9 ? 9 : pm.client_bits)) + 7400 <= cfg.mem);
    char resp[PMD_RESPONSE_MAX];
    size_t rl = pmd_response(&pm, resp);
    ASSERT(rl <= 128 && strlen(resp) == rl);
    ASSERT(!strncmp(resp, "permessage-deflate; server_no_context_takeover", 46));
    ASSERT(!!strstr(resp, "server_max_window_bits") == pm.say_server_bits);
    ASSERT(!!strstr(resp, "client_max_window_bits") == pm.say_client_bits);
    /* our answer is a well-formed offer we accept ourselves */
    const char *rv[1] = {resp};
    size_t rlens[1] = {rl};
    pmd_config all = {1, 15, 1 << 20};
    pmd_params again;
    ASSERT(pmd_negotiate(rv, rlens, 1, &all, &again) == 1);
  }
  for (size_t i = 0; i < n; i++) free(vals[i]);

  /* inflate what follows the NUL, in pieces */
  if (nul) {
    const uint8_t *z = nul + 1;
    size_t zl = (size_t)(end - z);
    pmd_params np = {1, 15, 15, (uint8_t)(data[1] & 1), 0, 0};
    pmd_inflater *keep = NULL;
    pmd_inflater *inf = pmd_inflate_begin(&np, &keep);
    ASSERT(inf);
    emitted = 0;
    size_t cut = zl ? (size_t)data[1] % (zl + 1) : 0;
    uint8_t *a = dup_exact(z, cut), *b = dup_exact(z + cut, zl - cut);
    int r = pmd_inflate(inf, a, cut, 0, room, emit, NULL);
    if (!r) r = pmd_inflate(inf, b, zl - cut, 1, room - emitted, emit, NULL);
    ASSERT(r == 0 || r == -1007 || r == -1009 || r == -1011);
    ASSERT(emitted <= room);
    pmd_inflate_end(inf, &keep, r != 0);
    pmd_inflater_free(keep);
    free(a);
    free(b);
  }
  return 0;
}
