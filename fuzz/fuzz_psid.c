/* libFuzzer target for message ids (ext/psid.c): the strict "ms-seq"
 * parser and the formatter.
 *
 * Build and run (corpus in fuzz/corpus/psid; `make fuzz` does both):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iext \
 *     ext/psid.c fuzz/fuzz_psid.c -o build/fuzz_psid
 *
 * Input: any bytes, parsed as an id (an SSE client's Last-Event-ID, an
 * application's since=, arrive this way).
 *
 * The properties:
 *  - the parser reads only the given bytes (an exact-size copy: ASan);
 *  - what it accepts is canonical: formatting the id gives the input back,
 *    byte for byte; what it refuses leaves the output untouched;
 *  - it accepts exactly the inputs an independent check here accepts
 *    (digits '-' digits, no leading zeros, each at most 2^64 - 1);
 *  - the first 16 bytes read as an id format within PS_ID_TEXT_MAX and
 *    parse back to the same id, and ps_id_next of it is greater. */
#include "psid.h"

#include <stdint.h>

#include "fuzz.h"

/* digits only, no leading zero, value <= UINT64_MAX (compared as text) */
static int number_ok(const char *s, size_t n) {
  static const char max[] = "18446744073709551615";
  if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return n < 20 || memcmp(s, max, 20) <= 0;
}

static int canonical(const char *s, size_t n) {
  const char *dash = memchr(s, '-', n);
  if (!dash) return 0;
  size_t a = (size_t)(dash - s);
  return number_ok(s, a) && number_ok(dash + 1, n - a - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  char *s = dup_exact(in, size);
  ps_id id = {7, 9};
  int r = ps_id_parse(s, size, &id);
  ASSERT((r == 0) == canonical(s, size));
  if (r == 0) {
    char out[PS_ID_TEXT_MAX];
    size_t n = ps_id_format(out, id);
    ASSERT(n == size && !memcmp(out, s, n));
  } else {
    ASSERT(id.ms == 7 && id.seq == 9);
  }
  free(s);

  if (size >= 16) {
    ps_id x, y;
    memcpy(&x.ms, in, 8);
    memcpy(&x.seq, in + 8, 8);
    char out[PS_ID_TEXT_MAX];
    size_t n = ps_id_format(out, x);
    ASSERT(n <= PS_ID_TEXT_MAX);
    char *t = dup_exact(out, n);
    ASSERT(ps_id_parse(t, n, &y) == 0 && ps_id_cmp(x, y) == 0);
    free(t);
    if (!(x.ms == UINT64_MAX && x.seq == UINT64_MAX)) {
      uint64_t now = size >= 24 ? (uint64_t)in[16] << 8 | in[17] : 0;
      ASSERT(ps_id_cmp(ps_id_next(x, now), x) > 0);
    }
  }
  return 0;
}
