/* reactor_timer: the reactor's deferred tasks and timers, private to the
 * reactor (the public calls, rx_defer / rx_timer / rx_timer_cancel, are
 * declared in reactor.h).
 *
 * Owns: the queue of deferred tasks and the timer min-heap (by due time),
 * each behind one mutex of its own (any thread may add or cancel), and
 * running them on the loop thread when reactor.c's turn asks.
 *
 * Must never: touch a connection, or run a task or timer callback with its
 * mutex held (a callback may add or cancel timers).
 *
 * Threads: rxt_run_* and rxt_wait_ms on the loop thread; the public calls
 * from any thread. */
#ifndef IODINE_REACTOR_TIMER_H
#define IODINE_REACTOR_TIMER_H

#include <stdint.h>

void rxt_init(void);
/* In a child after fork(): a fresh mutex, the parent's pending tasks
 * dropped, the timer heap kept (timers set before the fork run here). */
void rxt_after_fork(void);
/* Milliseconds until the next timer is due (0: now), at most `cap`. */
uint64_t rxt_wait_ms(uint64_t now, uint64_t cap);
int rxt_tasks_waiting(void);
void rxt_run_timers(uint64_t now);
void rxt_run_tasks(void);

/* reactor.c's side: wake the loop if it sleeps in epoll_wait and the
 * caller is another thread (new work it must see this turn). */
void rx_wake_sleeping(void);

#endif
