/* peer.h: what the in-process state tests (test_http_state, test_ws_state)
 * share: running the real reactor's loop, and writing as the peer on the
 * other end of a socketpair (a full socket lets the loop run, so the
 * server reads and the write can go on). Include after check.h. */
#ifndef IODINE_TEST_PEER_H
#define IODINE_TEST_PEER_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include "reactor.h"

static void turns(int n) {
  for (int i = 0; i < n; i++) rx_run_once(5);
}

static void peer_send(int fd, const void *data, size_t n) {
  const char *s = data;
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EAGAIN) {
      turns(1);
      continue;
    }
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

#endif
