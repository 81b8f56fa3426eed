/* test_resp: ext/resp.c alone. Every input is fed whole and in every split
 * (first k bytes, then all): the scanner must say "need more" for every
 * proper prefix and finish with the same answer, without rescanning from
 * the start (its state carries over). Inputs sit at the end of a guarded
 * page, so a read past the end crashes. */
#include "check.h"

#include "resp.h"

#include <inttypes.h>

#define S(lit) lit, sizeof(lit) - 1

/* Scan `in` split at every point; expect `want` (> 0: the length; -1 bad)
 * and, for good input, `nodes` nodes. */
static void scan_all_splits(const char *lit, size_t n, long want, size_t nodes) {
  for (size_t k = 0; k <= n; k++) {
    resp_scan_state st;
    resp_scan_reset(&st);
    long r = -2;
    if (k < n) {
      const char *p = guarded(lit, k);
      r = resp_scan(&st, p, k);
      if (want == -1 && r == -1) continue; /* bad already in the prefix */
      CHECK(r == -2, "prefix %zu of %.*s: %ld, want -2", k, (int)n, lit, r);
    }
    const char *p = guarded(lit, n);
    r = resp_scan(&st, p, n);
    CHECK(r == want, "split %zu of %.*s: %ld, want %ld", k, (int)n, lit, r, want);
    if (want > 0) CHECK(st.nodes == nodes, "nodes %zu want %zu", st.nodes, nodes);
  }
}

static long parse(const char *lit, size_t n, resp_node *out, size_t cap, size_t *used) {
  const char *p = guarded(lit, n);
  return resp_parse(p, n, out, cap, used);
}

static void test_leaves(void) {
  scan_all_splits(S("+OK\r\n"), 5, 1);
  scan_all_splits(S("-ERR wrong\r\n"), 12, 1);
  scan_all_splits(S(":-42\r\n"), 6, 1);
  scan_all_splits(S("$5\r\nhe\r\no\r\n"), 11, 1); /* CRLF inside a bulk */
  scan_all_splits(S("$0\r\n\r\n"), 6, 1);
  scan_all_splits(S("$-1\r\n"), 5, 1);
  scan_all_splits(S("*-1\r\n"), 5, 1);
  scan_all_splits(S("*0\r\n"), 4, 1);

  resp_node nd[4];
  size_t used = 0;
  CHECK(parse(S(":-42\r\n"), nd, 4, &used) == 1 && nd[0].type == RESP_INT && nd[0].n == -42,
        "integer");
  CHECK(parse(S("$5\r\nhe\r\no\r\n+x"), nd, 4, &used) == 1 && used == 11 && nd[0].len == 5 &&
            !memcmp(nd[0].str, "he\r\no", 5),
        "bulk, followed by more");
  CHECK(parse(S("$-1\r\n"), nd, 4, &used) == 1 && nd[0].type == RESP_BULK && nd[0].n == -1,
        "nil bulk");
  CHECK(parse(S("-ERR x\r\n"), nd, 4, &used) == 1 && nd[0].type == RESP_ERROR && nd[0].len == 5 &&
            !memcmp(nd[0].str, "ERR x", 5),
        "error");
}

static void test_arrays(void) {
  /* an XREAD reply: [[key, [[id, [f, v, f, v]]]]] */
  static const char xr[] = "*1\r\n*2\r\n$3\r\nkey\r\n*1\r\n*2\r\n$3\r\n1-1\r\n"
                           "*4\r\n$1\r\nc\r\n$2\r\nch\r\n$1\r\nm\r\n$0\r\n\r\n";
  scan_all_splits(xr, sizeof xr - 1, sizeof xr - 1, 11);
  resp_node nd[16];
  size_t used = 0;
  long n = parse(xr, sizeof xr - 1, nd, 16, &used);
  CHECK(n == 11 && used == sizeof xr - 1, "xread: %ld nodes", n);
  CHECK(nd[0].type == RESP_ARRAY && nd[0].n == 1 && nd[1].n == 2 && nd[2].len == 3 &&
            nd[5].len == 3 && !memcmp(nd[5].str, "1-1", 3) && nd[6].n == 4 &&
            nd[10].type == RESP_BULK && nd[10].len == 0,
        "xread shape");
  /* too small an output array */
  CHECK(parse(xr, sizeof xr - 1, nd, 5, &used) == -3, "cap too small");
  /* nested empty and nil arrays close their parents */
  scan_all_splits(S("*3\r\n*0\r\n*-1\r\n*1\r\n:1\r\n"), 21, 5);
  /* two replies back to back: the first only */
  resp_scan_state st;
  resp_scan_reset(&st);
  const char *p = guarded(S("*1\r\n:1\r\n+OK\r\n"));
  CHECK(resp_scan(&st, p, 13) == 8, "first reply only");
}

static void test_bad(void) {
  scan_all_splits(S("?x\r\n"), -1, 0);
  scan_all_splits(S("+OK\rx"), -1, 0);
  scan_all_splits(S(":12a\r\n"), -1, 0);
  scan_all_splits(S(":\r\n"), -1, 0);
  scan_all_splits(S(":-\r\n"), -1, 0);
  scan_all_splits(S(":99999999999999999999\r\n"), -1, 0);
  scan_all_splits(S("$-2\r\n"), -1, 0);
  scan_all_splits(S("$3\r\nabcd\r\n"), -1, 0); /* no CRLF after the body */
  scan_all_splits(S("*-2\r\n"), -1, 0);
  /* limits */
  char big[64];
  snprintf(big, sizeof big, "$%u\r\n", RESP_MAX_BULK + 1u);
  scan_all_splits(big, strlen(big), -1, 0);
  snprintf(big, sizeof big, "*%u\r\n", RESP_MAX_ELEMENTS + 1u);
  scan_all_splits(big, strlen(big), -1, 0);
  /* nine arrays deep is one too many */
  static const char deep[] = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
  scan_all_splits(deep, sizeof deep - 1, -1, 0);
  resp_node nd[16];
  size_t used;
  CHECK(parse(deep, sizeof deep - 1, nd, 16, &used) == -1, "too deep (parse)");
  CHECK(parse(deep + 4, sizeof deep - 5, nd, 16, &used) == 9, "eight deep is fine");
  /* a line with no CR for longer than RESP_MAX_LINE */
  static char longline[RESP_MAX_LINE + 8];
  longline[0] = '+';
  memset(longline + 1, 'a', sizeof longline - 1);
  resp_scan_state st;
  resp_scan_reset(&st);
  CHECK(resp_scan(&st, guarded(longline, sizeof longline), sizeof longline) == -1, "long line");
  resp_scan_reset(&st);
  CHECK(resp_scan(&st, guarded(longline, 100), 100) == -2, "a short unfinished line waits");
}

static void test_node_limit_is_counted(void) {
  /* 3 elements + the array: 4 nodes, counted by the scanner */
  resp_scan_state st;
  resp_scan_reset(&st);
  const char *p = guarded(S("*3\r\n:1\r\n:2\r\n:3\r\n"));
  CHECK(resp_scan(&st, p, 16) == 16 && st.nodes == 4, "node count");
}

static void test_encode(void) {
  const char *argv[] = {"XADD", "k", "", "a\r\nb"};
  size_t lens[] = {4, 1, 0, 4};
  char out[256];
  size_t need = resp_encode_len(4, lens);
  size_t n = resp_encode(out, 4, argv, lens);
  static const char want[] = "*4\r\n$4\r\nXADD\r\n$1\r\nk\r\n$0\r\n\r\n$4\r\na\r\nb\r\n";
  CHECK(n == need && n == sizeof want - 1 && !memcmp(out, want, n), "encode");
  /* what we encode, we can scan: ten arguments, two-digit counts */
  const char *many[12];
  size_t ml[12];
  for (int i = 0; i < 12; i++) {
    many[i] = "0123456789abc";
    ml[i] = (size_t)i + 1;
  }
  n = resp_encode(out, 12, many, ml);
  CHECK(n == resp_encode_len(12, ml), "encode len 12");
  resp_node nd[16];
  size_t used;
  CHECK(resp_parse(out, n, nd, 16, &used) == 13 && used == n && nd[0].n == 12 && nd[12].len == 12,
        "encoded command parses back");
}

int main(void) {
  guard_init(RESP_MAX_LINE * 4);
  test_leaves();
  test_arrays();
  test_bad();
  test_node_limit_is_counted();
  test_encode();
  printf("test_resp: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
