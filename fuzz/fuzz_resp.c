/* libFuzzer target for the RESP2 reply scanner and parser (ext/resp.c).
 *
 * Build and run (corpus in fuzz/corpus/resp; `make fuzz` does both):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iext \
 *     ext/resp.c fuzz/fuzz_resp.c -o build/fuzz_resp
 *
 * Input: byte 0 picks a split point (as a fraction of the rest); the rest
 * is what a Redis server (or anything pretending to be one) sent.
 *
 * Properties:
 *  - scanning in two steps (the prefix up to the split, then all) gives the
 *    same answer as scanning all at once: the carried state is sound;
 *  - a reply the scanner accepts, resp_parse accepts too, with the same
 *    length and exactly the node count the scanner announced; every string
 *    node points inside the input; array counts add up (each array's n
 *    children follow it in pre-order);
 *  - nothing reads past the input (an exact-size copy: ASan sees it);
 *  - what resp_encode makes of the accepted bulk strings scans back as one
 *    array of them. */
#include "resp.h"

#include <stdint.h>

#include "fuzz.h"

/* The subtree at out[i] ends where? Returns the index past it. */
static size_t subtree(const resp_node *out, size_t n, size_t i) {
  ASSERT(i < n);
  if (out[i].type != RESP_ARRAY || out[i].n <= 0) return i + 1;
  size_t j = i + 1;
  for (int64_t k = 0; k < out[i].n; k++) j = subtree(out, n, j);
  return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  if (size < 1) return 0;
  size_t len = size - 1;
  char *buf = dup_exact(in + 1, len);
  size_t split = len * in[0] / 255;

  resp_scan_state one, two;
  resp_scan_reset(&one);
  resp_scan_reset(&two);
  long whole = resp_scan(&one, buf, len);
  long part = resp_scan(&two, buf, split);
  long r2 = part == -2 ? resp_scan(&two, buf, len) : part;
  if (part == -1)
    ASSERT(whole == -1);
  else if (part > 0)
    ASSERT(whole == part);
  else
    ASSERT(r2 == whole);
  ASSERT(whole == -1 || whole == -2 || (whole > 0 && (size_t)whole <= len));

  if (whole > 0) {
    ASSERT(one.nodes == two.nodes && one.nodes > 0);
    resp_node *out = malloc(one.nodes * sizeof *out);
    ASSERT(out);
    size_t used = 0;
    long n = resp_parse(buf, len, out, one.nodes, &used);
    ASSERT(n == (long)one.nodes && used == (size_t)whole);
    ASSERT(subtree(out, (size_t)n, 0) == (size_t)n);
    if (n > 1) ASSERT(resp_parse(buf, len, out, (size_t)n - 1, &used) == -3);
    const char *args[16];
    size_t lens[16];
    int argc = 0;
    for (long i = 0; i < n; i++) {
      if (out[i].str) {
        ASSERT(out[i].str >= buf && out[i].str + out[i].len <= buf + (size_t)whole);
        if (argc < 16 && out[i].type == RESP_BULK) {
          args[argc] = out[i].str;
          lens[argc++] = out[i].len;
        }
      }
    }
    if (argc) {
      size_t elen = resp_encode_len(argc, lens);
      char *enc = malloc(elen);
      ASSERT(enc);
      ASSERT(resp_encode(enc, argc, args, lens) == elen);
      resp_node back[17];
      ASSERT(resp_parse(enc, elen, back, 17, &used) == argc + 1 && used == elen);
      for (int i = 0; i < argc; i++)
        ASSERT(back[i + 1].len == lens[i] && !memcmp(back[i + 1].str, args[i], lens[i]));
      free(enc);
    }
    free(out);
  } else {
    resp_node out[64];
    size_t used;
    long n = resp_parse(buf, len, out, 64, &used);
    ASSERT(n == whole || n == -3);
  }
  free(buf);
  return 0;
}
