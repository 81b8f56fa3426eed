/* ext/psid.c alone: the "ms-seq" text form both ways (canonical only,
 * every input split at a guard page so a read past the end crashes), the
 * order, and the sequencer's next-id rule (never back, never equal). */
#include "check.h"

#include <stdint.h>

#include "psid.h"

static int parse_str(const char *s, ps_id *out) {
  size_t n = strlen(s);
  return ps_id_parse(guarded(s, n), n, out);
}

static void good(const char *s, uint64_t ms, uint64_t seq) {
  ps_id id = {7, 7};
  CHECK(parse_str(s, &id) == 0, "%s should parse", s);
  CHECK(id.ms == ms && id.seq == seq, "%s parsed wrong", s);
  char out[PS_ID_TEXT_MAX];
  size_t n = ps_id_format(out, id);
  CHECK(n == strlen(s) && !memcmp(out, s, n), "%s does not format back", s);
}

static void bad(const char *s) {
  ps_id id = {7, 7};
  CHECK(parse_str(s, &id) == -1, "'%s' should be refused", s);
  CHECK(id.ms == 7 && id.seq == 7, "'%s' touched the output", s);
}

int main(void) {
  guard_init(4096);
  good("0-0", 0, 0);
  good("1-0", 1, 0);
  good("1733500000000-0", 1733500000000ull, 0);
  good("1733500000000-42", 1733500000000ull, 42);
  good("18446744073709551615-18446744073709551615", UINT64_MAX, UINT64_MAX);
  bad("");
  bad("-");
  bad("1");
  bad("1-");
  bad("-1");
  bad("01-1");
  bad("1-01");
  bad("1-1-1");
  bad("+1-1");
  bad(" 1-1");
  bad("1-1 ");
  bad("a-1");
  bad("1-b");
  bad("18446744073709551616-0"); /* 2^64 */
  bad("0-18446744073709551616");
  bad("99999999999999999999-0");
  bad("123456789012345678901-0"); /* 21 digits */
  {
    char nul[] = {'1', '-', 0, '1'};
    ps_id id;
    CHECK(ps_id_parse(guarded(nul, 4), 4, &id) == -1, "NUL inside refused");
  }

  /* every prefix of a good id: refused or a shorter good id, never a read past */
  {
    const char *s = "1733500000123-987";
    for (size_t n = 0; n <= strlen(s); n++) {
      ps_id id;
      int r = ps_id_parse(guarded(s, n), n, &id);
      CHECK(r == (n >= 15 ? 0 : -1), "prefix %zu", n);
    }
  }

  /* order */
  CHECK(ps_id_cmp((ps_id){1, 5}, (ps_id){2, 0}) < 0, "ms first");
  CHECK(ps_id_cmp((ps_id){2, 1}, (ps_id){2, 0}) > 0, "then seq");
  CHECK(ps_id_cmp((ps_id){2, 1}, (ps_id){2, 1}) == 0, "equal");
  CHECK(ps_id_none((ps_id){0, 0}) && !ps_id_none((ps_id){0, 1}), "none");

  /* the sequencer */
  ps_id last = {0, 0};
  ps_id a = ps_id_next(last, 1000);
  CHECK(a.ms == 1000 && a.seq == 0, "first id at the clock");
  ps_id b = ps_id_next(a, 1000);
  CHECK(b.ms == 1000 && b.seq == 1, "same ms counts seq");
  ps_id c = ps_id_next(b, 999);
  CHECK(c.ms == 1000 && c.seq == 2, "clock back: never back");
  ps_id d = ps_id_next(c, 1001);
  CHECK(d.ms == 1001 && d.seq == 0, "next ms resets seq");
  ps_id e = ps_id_next((ps_id){5, UINT64_MAX}, 5);
  CHECK(e.ms == 6 && e.seq == 0, "seq overflow borrows a ms");
  ps_id f = ps_id_next(last, 0);
  CHECK(!ps_id_none(f), "never none");
  /* a long run: strictly increasing whatever the clock does */
  ps_id prev = {0, 0};
  uint64_t clock = 500;
  int mono = 1;
  for (int i = 0; i < 100000; i++) {
    clock = (i % 7 == 0) ? clock - (clock > 3 ? 3 : 0) : clock + (i % 3 == 0);
    ps_id n = ps_id_next(prev, clock);
    if (ps_id_cmp(n, prev) <= 0) mono = 0;
    prev = n;
  }
  CHECK(mono, "strictly increasing over 100000 ids");

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
