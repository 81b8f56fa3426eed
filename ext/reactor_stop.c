/* reactor_stop: how connections and the loop end (see reactor.h; the
 * loop's state is shared through the private reactor_int.h).
 *
 * Owns: the lingering close after an error answer, and stopping: a graceful
 * stop (listeners first, then every connection's on_shutdown, then the
 * grace period) and a drained one (upgraded connections hear on_shutdown
 * spread over the drain period).
 * Must never: free a connection (bury, in reactor.c, does), or run outside
 * the loop thread, except rx_stop/rx_stop_drained/rx_wake (any thread). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "reactor.h"
#include "reactor_int.h"

/* --- lingering close --------------------------------------------------------
 * After an error answer the peer may still be sending. Closing a socket with
 * unread input makes the kernel send RST, which can destroy our answer before
 * the peer reads it; so we half-close and discard input for a short while. */

static void linger_end(rx_conn *c) {
  c->flags &= ~RX_F_LINGER;
  rx_int_forget(c);
  priv(c)->dead_next = rx.dead;
  rx.dead = c;
}

void rx_linger_data(rx_conn *c) {
  char sink[16384];
  for (;;) {
    ssize_t n = read(c->fd, sink, sizeof sink);
    if (n > 0) {
      /* out_bytes is idle while lingering: it counts what we discarded */
      if ((c->out_bytes += (size_t)n) > LINGER_BYTES) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    break; /* the peer closed: our answer was read */
  }
  linger_end(c);
}

/* Time is up: a peer that neither reads nor closes gets no more. */
static void linger_timeout(rx_conn *c) { linger_end(c); }

static const rx_proto linger_proto = {.on_data = rx_linger_data, .on_timeout = linger_timeout};

int rx_lingering(const rx_conn *c) { return c->proto == &linger_proto; }

/* A closed connection whose answer must reach a peer still sending. */
void rx_linger_begin(rx_conn *c) {
  c->proto = &linger_proto;
  c->timeout_ms = LINGER_MS;
  c->active_ms = rx.now;
  c->out_bytes = 0;
  rx_linger_data(c); /* input may already be waiting: edge-triggered */
}

static void shutdown_one(rx_conn *c) {
  if (c->proto && c->proto->on_shutdown)
    c->proto->on_shutdown(c);
  else if (c->flags & RX_F_LISTENER)
    rx_close_now(c);
}

void rx_begin_shutdown(void) {
  rx.stopping = 1;
  int drain = rx.drain_next && rx.drain_ms;
  rx.drain_next = 0;
  rx.deadline = rx.now + rx.grace_ms + (drain ? rx.drain_ms : 0);
  rx.drain_total = rx.drain_done = rx.drain_cursor = 0;
  /* listeners first: from here new connections are someone else's */
  for (size_t fd = 0; fd < rx.top; fd++) {
    rx_conn *c = rx.table[fd];
    if (c && !(c->flags & RX_F_CLOSED) && (c->flags & RX_F_LISTENER)) shutdown_one(c);
  }
  /* HTTP connections hear it at once (an idle keep-alive one closes, a
   * busy one after its answer: no request of a retiring worker waits out
   * the drain); upgraded ones (WebSocket, SSE) are spread */
  for (size_t fd = 0; fd < rx.top; fd++) {
    rx_conn *c = rx.table[fd];
    if (!c || (c->flags & (RX_F_CLOSED | RX_F_LISTENER | RX_F_PLUMBING)) || rx_lingering(c))
      continue; /* plumbing stays open for the clients (closed last, rx_run) */
    if (drain && (c->flags & RX_F_UPGRADED))
      rx.drain_total++;
    else
      shutdown_one(c);
  }
  rx.drain_start = rx.now;
}

/* Each turn of a drained stop: on_shutdown for the share of the upgraded
 * connections (those open when the stop began, in fd order) the elapsed
 * time allows. One closed meanwhile is simply skipped (and the count
 * catches up at the end of the table). */
void rx_drain_step(void) {
  if (rx.drain_done >= rx.drain_total) return;
  uint64_t elapsed = rx.now - rx.drain_start;
  size_t due =
      elapsed >= rx.drain_ms ? rx.drain_total : (size_t)((rx.drain_total * elapsed) / rx.drain_ms);
  while (rx.drain_done < due && rx.drain_cursor < rx.top) {
    rx_conn *c = rx.table[rx.drain_cursor++];
    if (!c || (c->flags & (RX_F_CLOSED | RX_F_LISTENER)) || !(c->flags & RX_F_UPGRADED) ||
        rx_lingering(c))
      continue;
    rx.drain_done++;
    shutdown_one(c);
  }
  if (rx.drain_cursor >= rx.top) rx.drain_done = rx.drain_total;
}

void rx_close_everything(void) {
  for (size_t fd = 0; fd < rx.top; fd++) {
    rx_conn *c = rx.table[fd];
    if (!c) continue;
    if (rx_lingering(c))
      linger_timeout(c);
    else
      rx_close_now(c);
  }
}

void rx_stop(void) {
  atomic_store(&rx.stop_requested, 1);
  rx_int_wake();
}

void rx_wake(void) { rx_int_wake(); }

void rx_stop_drained(void) {
  rx.drain_next = 1; /* read by begin_shutdown, after the store below */
  atomic_store(&rx.stop_requested, 1);
  rx_int_wake();
}
