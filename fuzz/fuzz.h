/* fuzz.h: what the fuzz targets share (header-only; include it after the
 * system headers).
 *  - ASSERT(c): an invariant of the code under test; on failure it names
 *    the line and aborts, which libFuzzer reports as a crash with the input.
 *  - dup_exact(p, n): the n input bytes in a heap block of exactly n bytes
 *    (1 for n = 0), so ASan flags a read one past the end that the fuzzer's
 *    own, larger buffer would hide. */
#ifndef IODINE_FUZZ_H
#define IODINE_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(c)                                                                                  \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__, #c);                          \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static inline void *dup_exact(const void *p, size_t n) {
  void *b = malloc(n ? n : 1);
  ASSERT(b);
  if (n) memcpy(b, p, n);
  return b;
}

#endif
