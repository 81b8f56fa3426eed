/* dispatch: see dispatch.h for what this file owns. */
#include "dispatch.h"

#include <pthread.h>
#include <stdlib.h>

#include "reactor.h"

struct dsp_actor {
  dsp_event *head, *tail;
  dsp_actor *run_next;
  int refs;      /* the owner's + one per event not yet done */
  int scheduled; /* in the run queue */
  int running;   /* an event of ours is being handled */
  int streak;    /* events run back to back (see dsp_done_next) */
};

/* How many of one actor's events a consumer may run back to back before
 * the actor goes to the tail of the run queue. Running a connection's
 * pipelined requests together is what lets their answers leave in one
 * write (on the loop thread the connection stays corked until the turn
 * ends; an application thread holds them in a batch, rx_batch_begin, and
 * posts the next request itself while the current one still runs, so
 * take_same hands it to the same thread); taking them round-robin with
 * every other connection's made it one write per answer. The cap keeps a
 * flooding connection from starving the rest. */
#define STREAK_MAX 32

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  dsp_actor *run_head, *run_tail;
  int stopped;
  void (*runner)(void);
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, NULL};

static void actor_unref(dsp_actor *a) {
  if (--a->refs == 0) free(a);
}

static void run_push(dsp_actor *a) {
  a->scheduled = 1;
  a->run_next = NULL;
  if (q.run_tail)
    q.run_tail->run_next = a;
  else
    q.run_head = a;
  q.run_tail = a;
}

dsp_actor *dsp_actor_new(void) {
  dsp_actor *a = calloc(1, sizeof *a);
  if (a) a->refs = 1;
  return a;
}

void dsp_actor_release(dsp_actor *a) {
  if (!a) return;
  pthread_mutex_lock(&q.mu);
  actor_unref(a);
  pthread_mutex_unlock(&q.mu);
}

int dsp_post(dsp_actor *a, int kind, uint64_t conn, void *ptr, uint64_t arg) {
  dsp_event *ev = malloc(sizeof *ev);
  if (!ev) return -1;
  ev->next = NULL;
  ev->kind = kind;
  ev->conn = conn;
  ev->ptr = ptr;
  ev->arg = arg;
  pthread_mutex_lock(&q.mu);
  if (!a) {
    a = calloc(1, sizeof *a); /* a one-off actor: no ordering peers */
    if (!a) {
      pthread_mutex_unlock(&q.mu);
      free(ev);
      return -1;
    }
  }
  ev->actor = a;
  a->refs++;
  if (a->tail)
    a->tail->next = ev;
  else
    a->head = ev;
  a->tail = ev;
  if (!a->scheduled && !a->running) {
    run_push(a);
    pthread_cond_signal(&q.cv);
  }
  pthread_mutex_unlock(&q.mu);
  return 0;
}

dsp_event *dsp_next(int block) {
  pthread_mutex_lock(&q.mu);
  while (!q.run_head) {
    if (!block || q.stopped) {
      pthread_mutex_unlock(&q.mu);
      return NULL;
    }
    pthread_cond_wait(&q.cv, &q.mu);
  }
  dsp_actor *a = q.run_head;
  q.run_head = a->run_next;
  if (!q.run_head) q.run_tail = NULL;
  a->scheduled = 0;
  a->running = 1;
  dsp_event *ev = a->head;
  a->head = ev->next;
  if (!a->head) a->tail = NULL;
  pthread_mutex_unlock(&q.mu);
  return ev;
}

void dsp_done(dsp_event *ev) {
  if (!ev) return;
  dsp_actor *a = ev->actor;
  pthread_mutex_lock(&q.mu);
  a->running = 0;
  a->streak = 0;
  if (a->head) {
    run_push(a);
    pthread_cond_signal(&q.cv);
  }
  actor_unref(a);
  pthread_mutex_unlock(&q.mu);
  free(ev);
}

/* The next event of done's actor, if one waits and the streak allows;
 * then done is finished and freed here. NULL: done is untouched. */
static dsp_event *take_same(dsp_event *done) {
  dsp_actor *a = done->actor;
  pthread_mutex_lock(&q.mu);
  dsp_event *ev = a->head;
  if (ev && a->streak < STREAK_MAX) {
    /* still running: nobody else can have taken this actor */
    a->streak++;
    a->head = ev->next;
    if (!a->head) a->tail = NULL;
    actor_unref(a); /* done's reference; ev holds its own */
  } else {
    ev = NULL;
  }
  pthread_mutex_unlock(&q.mu);
  if (ev) free(done);
  return ev;
}

dsp_event *dsp_done_next(dsp_event *done, int block) {
  if (done) {
    dsp_event *ev = take_same(done);
    if (ev) return ev;
  }
  dsp_done(done);
  return dsp_next(block);
}

dsp_event *dsp_done_same(dsp_event *done) {
  if (!done) return NULL;
  dsp_event *ev = take_same(done);
  if (!ev) dsp_done(done);
  return ev;
}

int dsp_pending(void) {
  pthread_mutex_lock(&q.mu);
  int any = q.run_head != NULL;
  pthread_mutex_unlock(&q.mu);
  return any;
}

void dsp_stop(void) {
  pthread_mutex_lock(&q.mu);
  q.stopped = 1;
  pthread_cond_broadcast(&q.cv);
  pthread_mutex_unlock(&q.mu);
}

void dsp_restart(void) {
  pthread_mutex_lock(&q.mu);
  q.stopped = 0;
  pthread_mutex_unlock(&q.mu);
}

void dsp_set_inline(void (*runner)(void)) { q.runner = runner; }

void dsp_after_fork(void) {
  /* Only the forking thread exists in the child; the locks may have been
   * held by threads that are gone. Queued events are kept: they were posted
   * for this process's future too (a global subscription's channel notice,
   * a timer set before the fork). */
  pthread_mutex_init(&q.mu, NULL);
  pthread_cond_init(&q.cv, NULL);
  q.stopped = 0;
}

void dsp_turn(void) {
  if (!q.runner || !dsp_pending()) return;
  /* Application code may block or call back into the core from any
   * thread: it must never run holding the big lock. */
  rx_unlock();
  q.runner();
  rx_lock();
}
