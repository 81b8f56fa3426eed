/* reactor_batch: output held across calls (rx_batch_begin, reactor.h;
 * the loop's state is shared through the private reactor_int.h).
 *
 * Owns: the list of batched connections, oldest first, each with the time
 * its batch is due; ending a batch (its output sent as the end of a turn
 * sends a corked one); the loop's part: waking in time for the oldest due
 * batch and sending the ones past due, whatever their holder is doing.
 *
 * Must never: decide what is held (the writes in reactor.c queue output
 * while RX_F_BATCH is set and end a batch that would grow too large), or
 * free a connection (doom takes a batched one off the list).
 *
 * Threads: any thread holding the big lock; rx_int_batch_due and
 * rx_int_batch_expire on the loop thread only. */
#define _GNU_SOURCE
#include <stdatomic.h>

#include "reactor.h"
#include "reactor_int.h"

void rx_batch_begin(rx_conn *c) {
  if (c->flags & (RX_F_BATCH | RX_F_CLOSED | RX_F_CLOSING)) return;
  c->flags |= RX_F_BATCH;
  rx_node *n = priv(c);
  n->batch_due = rx_int_clock_us() + RX_BATCH_MS * 1000u;
  n->batch_next = NULL;
  n->batch_prev = rx.batch_tail; /* due times only grow: the tail is the newest */
  if (rx.batch_tail)
    priv(rx.batch_tail)->batch_next = c;
  else
    rx.batch_head = c;
  rx.batch_tail = c;
  /* A loop asleep past the due time must wake to keep the promise (its
   * next wait is cut to the due time); once woken, no other thread needs
   * to wake it again before it sleeps anew. */
  if (!rx_in_loop_thread() && atomic_load(&rx.sleeping) && rx.sleep_until > n->batch_due) {
    rx.sleep_until = 0;
    rx_int_wake();
  }
}

void rx_int_batch_unlink(rx_conn *c) {
  rx_node *n = priv(c);
  if (n->batch_prev)
    priv(n->batch_prev)->batch_next = n->batch_next;
  else
    rx.batch_head = n->batch_next;
  if (n->batch_next)
    priv(n->batch_next)->batch_prev = n->batch_prev;
  else
    rx.batch_tail = n->batch_prev;
  n->batch_prev = n->batch_next = NULL;
  c->flags &= ~RX_F_BATCH;
}

void rx_batch_end(rx_conn *c) {
  if (!(c->flags & RX_F_BATCH)) return;
  rx_int_batch_unlink(c);
  /* corked for this turn as well: the turn's end sends it */
  if (!(c->flags & RX_F_CORK)) rx_int_send(c);
}

uint64_t rx_int_batch_due(void) { return rx.batch_head ? priv(rx.batch_head)->batch_due : 0; }

void rx_int_batch_expire(uint64_t now_us) {
  while (rx.batch_head && priv(rx.batch_head)->batch_due <= now_us) rx_batch_end(rx.batch_head);
}
