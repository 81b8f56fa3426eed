/* dispatch: where events leave the C core for application (Python) code.
 *
 * Owns: the run queue of events, the per-connection ordering guarantee, and
 * the choice between running application code on the loop thread (threads
 * <= 1: no hand-off, one GIL acquisition per batch) or on a pool of N
 * application threads that block here, outside the GIL, for work.
 *
 * Ordering. Every event belongs to an actor (one per connection). An actor's
 * events run one at a time, in the order posted, never two at once, even
 * with many threads: the actor sits in the run queue at most once and goes
 * back to its tail only after its current event is done.
 *
 * Must never: touch a socket or take the reactor's big lock (so it may be
 * called with that lock held, or not). */
#ifndef IODINE_DISPATCH_H
#define IODINE_DISPATCH_H

#include <stdint.h>

typedef struct dsp_actor dsp_actor;

/* Event kinds: events.h is their one registry (part of the Python
 * binding, api.h). */
#include "events.h"

typedef struct dsp_event {
  struct dsp_event *next;
  dsp_actor *actor;
  int kind;
  uint64_t conn; /* connection id, 0 for none */
  void *ptr;
  uint64_t arg;
} dsp_event;

dsp_actor *dsp_actor_new(void);       /* one reference, the caller's */
void dsp_actor_release(dsp_actor *a); /* drop the caller's reference */

/* Post an event. `a` may be NULL for an event with no ordering peer.
 * Returns 0, or -1 when out of memory. Any thread. */
int dsp_post(dsp_actor *a, int kind, uint64_t conn, void *ptr, uint64_t arg);

/* Consumers. dsp_next(0) returns NULL at once when nothing is runnable;
 * dsp_next(1) blocks until something is, or returns NULL once dsp_stop() has
 * been called and nothing is left. Every event returned must be passed to
 * dsp_done() when handled (that is what lets its actor run again). */
dsp_event *dsp_next(int block);
void dsp_done(dsp_event *ev);
/* dsp_done(done) (NULL: nothing) then dsp_next(block): one call per event
 * for the Python consumers instead of two. When done's actor has another
 * event waiting, that one is returned (up to a streak cap) instead of the
 * run queue's head: a connection's pipelined requests run together. */
dsp_event *dsp_done_next(dsp_event *done, int block);
/* Like dsp_done_next(done, 0) but only ever returns done's actor's next
 * event (NULL: none, or the streak is spent; done is finished either way).
 * For a consumer whose budget is spent: it finishes the connection's run
 * instead of cutting its batch of answers in two. */
dsp_event *dsp_done_same(dsp_event *done);
int dsp_pending(void); /* nonzero when events are runnable */

/* Release blocked consumers once the queue is empty; dsp_restart() undoes it
 * for the next run. */
void dsp_stop(void);
void dsp_restart(void);

/* Inline mode: `runner` is called on the loop thread, with the big lock
 * released, whenever events are waiting at the end of a loop turn; it is
 * expected to call dsp_next(0) until NULL or its own budget. NULL selects
 * pool mode (application threads call dsp_next(1)). */
void dsp_set_inline(void (*runner)(void));
/* In a child right after fork(). */
void dsp_after_fork(void);
/* The reactor's end-of-turn hook. */
void dsp_turn(void);

#endif
