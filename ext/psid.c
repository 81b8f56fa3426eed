/* psid: see psid.h for what this file owns. */
#include "psid.h"

#include "ascii.h"

size_t ps_id_format(char out[PS_ID_TEXT_MAX], ps_id id) {
  size_t n = ascii_u64(out, id.ms);
  out[n++] = '-';
  return n + ascii_u64(out + n, id.seq);
}

/* One canonical decimal number of s[0..n): digits only, no leading zero
 * (but "0"), at most UINT64_MAX. */
static int get_u64(const char *s, size_t n, uint64_t *out) {
  if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned d = (unsigned char)s[i] - (unsigned)'0';
    if (d > 9) return -1;
    if (v > (UINT64_MAX - d) / 10) return -1; /* would overflow */
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int ps_id_parse(const char *s, size_t n, ps_id *out) {
  size_t dash = 0;
  while (dash < n && s[dash] != '-') dash++;
  if (dash == n) return -1;
  ps_id id;
  if (get_u64(s, dash, &id.ms) || get_u64(s + dash + 1, n - dash - 1, &id.seq)) return -1;
  *out = id;
  return 0;
}

ps_id ps_id_next(ps_id last, uint64_t now_ms) {
  ps_id id;
  if (now_ms > last.ms) {
    id.ms = now_ms;
    id.seq = 0;
  } else if (last.seq < UINT64_MAX) { /* same ms, or the clock went back */
    id.ms = last.ms;
    id.seq = last.seq + 1;
  } else { /* 2^64 messages in one ms: borrow the next ms */
    id.ms = last.ms + 1;
    id.seq = 0;
  }
  if (ps_id_none(id)) id.seq = 1; /* a clock at the epoch */
  return id;
}
