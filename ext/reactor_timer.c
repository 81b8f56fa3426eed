/* reactor_timer: see reactor_timer.h for what this file owns. */
#define _GNU_SOURCE
#include "reactor_timer.h"

#include <pthread.h>
#include <stdlib.h>

#include "reactor.h"

typedef struct rx_timer_node {
  uint64_t id, due, interval, reps_left; /* reps_left 0 = forever */
  rx_task_fn fn, done;
  void *arg;
  int cancelled;
} rx_timer_node;

typedef struct rx_task {
  struct rx_task *next;
  rx_task_fn fn;
  void *arg;
} rx_task;

static struct {
  pthread_mutex_t lock; /* the task queue and the heap */
  rx_task *tasks, *tasks_tail;
  rx_timer_node **heap;
  size_t nheap, heapcap;
  uint64_t next_id;
  rx_timer_node *running; /* the timer whose callback runs now */
} tm;

void rxt_init(void) {
  pthread_mutex_init(&tm.lock, NULL);
  tm.next_id = 1;
}

void rxt_after_fork(void) {
  pthread_mutex_init(&tm.lock, NULL);
  tm.tasks = tm.tasks_tail = NULL;
}

uint64_t rxt_wait_ms(uint64_t now, uint64_t cap) {
  pthread_mutex_lock(&tm.lock);
  if (tm.nheap) {
    uint64_t due = tm.heap[0]->due;
    uint64_t wait = due > now ? due - now : 0;
    if (wait < cap) cap = wait;
  }
  pthread_mutex_unlock(&tm.lock);
  return cap;
}

int rx_defer(rx_task_fn fn, void *arg) {
  rx_task *t = malloc(sizeof *t);
  if (!t) return -1;
  t->fn = fn;
  t->arg = arg;
  t->next = NULL;
  pthread_mutex_lock(&tm.lock);
  if (tm.tasks_tail)
    tm.tasks_tail->next = t;
  else
    tm.tasks = t;
  tm.tasks_tail = t;
  pthread_mutex_unlock(&tm.lock);
  rx_wake_sleeping();
  return 0;
}

static void heap_swap(size_t a, size_t b) {
  rx_timer_node *t = tm.heap[a];
  tm.heap[a] = tm.heap[b];
  tm.heap[b] = t;
}

static void heap_up(size_t i) {
  while (i && tm.heap[(i - 1) / 2]->due > tm.heap[i]->due) {
    heap_swap(i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_down(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < tm.nheap && tm.heap[l]->due < tm.heap[m]->due) m = l;
    if (r < tm.nheap && tm.heap[r]->due < tm.heap[m]->due) m = r;
    if (m == i) return;
    heap_swap(i, m);
    i = m;
  }
}

static int heap_push(rx_timer_node *t) {
  if (tm.nheap == tm.heapcap) {
    size_t cap = tm.heapcap ? tm.heapcap * 2 : 64;
    rx_timer_node **h = realloc(tm.heap, cap * sizeof *h);
    if (!h) return -1;
    tm.heap = h;
    tm.heapcap = cap;
  }
  tm.heap[tm.nheap++] = t;
  heap_up(tm.nheap - 1);
  return 0;
}

static rx_timer_node *heap_pop(void) {
  rx_timer_node *t = tm.heap[0];
  tm.heap[0] = tm.heap[--tm.nheap];
  if (tm.nheap) heap_down(0);
  return t;
}

uint64_t rx_timer(uint64_t ms, uint64_t interval_ms, uint64_t reps, rx_task_fn fn, rx_task_fn done,
                  void *arg) {
  rx_timer_node *t = calloc(1, sizeof *t);
  if (!t) return 0;
  t->fn = fn;
  t->done = done;
  t->arg = arg;
  t->interval = interval_ms;
  t->reps_left = reps;
  t->due = rx_now_ms() + ms;
  pthread_mutex_lock(&tm.lock);
  t->id = tm.next_id++;
  uint64_t id = t->id;
  if (heap_push(t) < 0) {
    pthread_mutex_unlock(&tm.lock);
    free(t);
    return 0;
  }
  pthread_mutex_unlock(&tm.lock);
  rx_wake_sleeping();
  return id;
}

void rx_timer_cancel(uint64_t id) {
  pthread_mutex_lock(&tm.lock);
  if (tm.running && tm.running->id == id) tm.running->cancelled = 1;
  for (size_t i = 0; i < tm.nheap; i++)
    if (tm.heap[i]->id == id) {
      tm.heap[i]->cancelled = 1;
      tm.heap[i]->due = 0; /* surface it now so `done` runs promptly */
      heap_up(i);
      break;
    }
  pthread_mutex_unlock(&tm.lock);
  rx_wake_sleeping();
}

void rxt_run_timers(uint64_t now) {
  for (;;) {
    pthread_mutex_lock(&tm.lock);
    if (!tm.nheap || tm.heap[0]->due > now) {
      pthread_mutex_unlock(&tm.lock);
      return;
    }
    rx_timer_node *t = heap_pop();
    tm.running = t;
    pthread_mutex_unlock(&tm.lock);
    if (!t->cancelled) t->fn(t->arg);
    pthread_mutex_lock(&tm.lock);
    tm.running = NULL;
    int again = !t->cancelled && t->interval && (t->reps_left == 0 || --t->reps_left > 0);
    if (again) {
      t->due = now + t->interval;
      again = heap_push(t) == 0;
    }
    pthread_mutex_unlock(&tm.lock);
    if (!again) {
      if (t->done) t->done(t->arg);
      free(t);
    }
  }
}

void rxt_run_tasks(void) {
  pthread_mutex_lock(&tm.lock);
  rx_task *t = tm.tasks;
  tm.tasks = tm.tasks_tail = NULL;
  pthread_mutex_unlock(&tm.lock);
  while (t) {
    rx_task *next = t->next;
    t->fn(t->arg);
    free(t);
    t = next;
  }
}

int rxt_tasks_waiting(void) {
  pthread_mutex_lock(&tm.lock);
  int any = tm.tasks != NULL;
  pthread_mutex_unlock(&tm.lock);
  return any;
}
