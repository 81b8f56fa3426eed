/* test_dispatch: the run queue's ordering rules, on one thread, no loop.
 *  - an actor's events come out in the order posted, never two at once;
 *  - dsp_done_next keeps to the same actor while it has events (a
 *    connection's pipelined requests run together), up to a streak cap,
 *    after which the actor goes behind the others;
 *  - dsp_done_same never hands out another actor's event. */
#include "check.h"
#include "dispatch.h"

/* dispatch.c releases the reactor's lock around the inline runner; no
 * reactor here. */
void rx_lock(void) {}
void rx_unlock(void) {}

/* Drain everything through dsp_done_next, recording (actor tag, arg). */
static int drain(int *tags, uint64_t *args, int max) {
  int n = 0;
  dsp_event *ev = NULL;
  while ((ev = dsp_done_next(ev, 0)) != NULL && n < max) {
    tags[n] = (int)ev->conn;
    args[n] = ev->arg;
    n++;
  }
  if (ev) dsp_done(ev);
  return n;
}

static void test_same_actor_runs_back_to_back(void) {
  dsp_actor *a = dsp_actor_new(), *b = dsp_actor_new();
  /* A posts 3, then B posts 1, then A posts 2 more (all before any runs) */
  for (uint64_t i = 0; i < 3; i++) dsp_post(a, 1, 1, NULL, i);
  dsp_post(b, 1, 2, NULL, 0);
  for (uint64_t i = 3; i < 5; i++) dsp_post(a, 1, 1, NULL, i);
  int tags[16];
  uint64_t args[16];
  int n = drain(tags, args, 16);
  CHECK(n == 6, "drained %d events", n);
  for (int i = 0; i < 5 && i < n; i++)
    CHECK(tags[i] == 1 && args[i] == (uint64_t)i, "event %d: actor %d arg %llu", i, tags[i],
          (unsigned long long)args[i]);
  CHECK(n == 6 && tags[5] == 2, "B's event comes after A's run");
  dsp_actor_release(a);
  dsp_actor_release(b);
}

static void test_streak_is_capped(void) {
  dsp_actor *a = dsp_actor_new(), *b = dsp_actor_new();
  enum { MANY = 100 };
  for (uint64_t i = 0; i < MANY; i++) dsp_post(a, 1, 1, NULL, i);
  dsp_post(b, 1, 2, NULL, 0);
  int tags[MANY + 1];
  uint64_t args[MANY + 1];
  int n = drain(tags, args, MANY + 1);
  CHECK(n == MANY + 1, "drained %d events", n);
  int b_at = -1;
  for (int i = 0; i < n; i++)
    if (tags[i] == 2) b_at = i;
  /* B waits for A's first streak, but not for all of A */
  CHECK(b_at > 1 && b_at < MANY, "B ran at position %d of %d", b_at, n);
  uint64_t want = 0;
  int in_order = 1;
  for (int i = 0; i < n; i++)
    if (tags[i] == 1 && args[i] != want++) in_order = 0;
  CHECK(in_order, "A's events stay in posted order across the rotation");
  dsp_actor_release(a);
  dsp_actor_release(b);
}

static void test_done_same_keeps_to_one_actor(void) {
  dsp_actor *a = dsp_actor_new(), *b = dsp_actor_new();
  dsp_post(b, 1, 2, NULL, 0);
  dsp_post(a, 1, 1, NULL, 0);
  dsp_post(a, 1, 1, NULL, 1);
  dsp_event *ev = dsp_next(0);
  CHECK(ev && ev->conn == 2, "B was first in the queue");
  ev = dsp_done_same(ev); /* B has nothing more */
  CHECK(ev == NULL, "done_same gave another actor's event");
  ev = dsp_next(0);
  CHECK(ev && ev->conn == 1 && ev->arg == 0, "then A's first");
  ev = dsp_done_same(ev);
  CHECK(ev && ev->conn == 1 && ev->arg == 1, "done_same continues A");
  ev = dsp_done_same(ev);
  CHECK(ev == NULL, "A is exhausted");
  CHECK(!dsp_pending(), "nothing left runnable");
  dsp_actor_release(a);
  dsp_actor_release(b);
}

static void test_an_actor_never_runs_twice_at_once(void) {
  dsp_actor *a = dsp_actor_new();
  dsp_post(a, 1, 1, NULL, 0);
  dsp_event *ev = dsp_next(0);
  dsp_post(a, 1, 1, NULL, 1); /* posted while the first is running */
  CHECK(dsp_next(0) == NULL, "a second consumer got the running actor's event");
  ev = dsp_done_next(ev, 0);
  CHECK(ev && ev->arg == 1, "the next one follows once the first is done");
  dsp_done(ev);
  dsp_actor_release(a);
}

int main(void) {
  test_same_actor_runs_back_to_back();
  test_streak_is_capped();
  test_done_same_keeps_to_one_actor();
  test_an_actor_never_runs_twice_at_once();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
