/* check.h: what the C unit tests share (header-only, so the Makefile's
 * "ext/X.c + tests/c/test_X.c" rule needs nothing more).
 *
 *  - CHECK(cond, fmt, ...): a counted check that prints the failing line;
 *    the test's main prints "N passed, M failed" from `passed`/`failed`.
 *  - guard pages: guard_init(room) maps `room` readable bytes followed by a
 *    PROT_NONE page; guarded(src, n) copies n bytes so that the last one is
 *    the last readable byte, so a parser that reads one byte past its input
 *    crashes at once (picohttpparser's trick), on top of ASan. */
#ifndef IODINE_TEST_CHECK_H
#define IODINE_TEST_CHECK_H

#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS (include check.h first) */
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int passed, failed;

static inline void check(int ok, int line, const char *fmt, ...) {
  va_list ap;
  if (ok) {
    passed++;
    return;
  }
  failed++;
  printf("FAIL line %d: ", line);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}
#define CHECK(c, ...) check(!!(c), __LINE__, __VA_ARGS__)

static char *guard_base;
static size_t guard_room; /* readable bytes before the PROT_NONE page */

static inline void guard_init(size_t room) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  room = (room + pg - 1) / pg * pg;
  void *m = mmap(NULL, room + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED || mprotect((char *)m + room, pg, PROT_NONE)) {
    perror("guard page");
    exit(2);
  }
  guard_base = m;
  guard_room = room;
}

/* src may already lie in the guarded region: copied with memmove. (Not
 * inlined: GCC then "proves" impossible lengths at some call sites.) */
__attribute__((noinline, unused)) static void *guarded(const void *src, size_t n) {
  char *p = guard_base + guard_room - n;
  if (n) memmove(p, src, n);
  return p;
}

#endif
