/* reactor_int: the loop's state, shared by the reactor's own files only
 * (reactor.c: connections, output, the loop; reactor_stop.c: lingering
 * close and stopping). Nothing else includes it.
 *
 * Owns: nothing by itself; `rx` is defined in reactor.c. Loop thread, or
 * the big lock, as reactor.h says. */
#ifndef IODINE_REACTOR_INT_H
#define IODINE_REACTOR_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "reactor.h"

enum { SEG_MEM, SEG_BUF, SEG_FILE };

struct rx_seg {
  rx_seg *next;
  uint8_t kind;
  uint32_t writes; /* writes queued in it (small ones share a SEG_MEM) */
  uint32_t cap;    /* SEG_MEM: bytes of data[] allocated */
  int fd;          /* SEG_FILE */
  uint64_t off;    /* SEG_MEM/SEG_BUF: offset in data; SEG_FILE: file offset */
  uint64_t len;    /* bytes left to send */
  rx_buf *buf;     /* SEG_BUF */
  char data[];     /* SEG_MEM */
};

/* A connection as the reactor allocates it: the public rx_conn first (the
 * pointer everyone holds), then what only the reactor's files may touch:
 * the output queue and the list links. */
typedef struct rx_node {
  rx_conn c; /* first: an rx_conn * is an rx_node * */
  rx_seg *out_head, *out_tail;
  rx_conn *resume_next; /* resume list link */
  rx_conn *dead_next;   /* end-of-turn free list link */
  rx_conn *cork_next;   /* corked list link */
} rx_node;

static inline rx_node *priv(rx_conn *c) { return (rx_node *)c; }

#define LINGER_MS 2000
#define LINGER_BYTES (256 * 1024)
#define SWEEP_MS 250

struct rx_state {
  int epfd, wakefd;
  rx_conn **table;
  uint32_t *gens;
  size_t cap, top; /* table size; highest fd + 1 ever used */
  pthread_mutex_t lock;
  rx_conn *resume_head, *resume_tail;
  rx_conn *dead;
  rx_conn *corked;
  void (*held)(rx_conn *c); /* rx_hold: output held back, released before any write */
  atomic_int stop_requested;
  atomic_int sleeping;
  int stopping;
  uint32_t grace_ms;
  /* A drained stop (a worker retiring in a rolling restart): listeners
   * and HTTP connections hear it at once, upgraded ones (RX_F_UPGRADED)
   * hear on_shutdown spread evenly over drain_ms, so their clients do not
   * all reconnect in the same instant; the grace period follows the drain. */
  uint32_t drain_ms, drain_next; /* drain_next: the stop asked for a drain */
  uint64_t drain_start;
  size_t drain_total, drain_done, drain_cursor;
  uint64_t deadline, now, next_sweep;
  void (*turn_hook)(void);
  int (*busy_probe)(void);
  int ready;
  int timers_on;   /* off in a cluster's master: timers belong to workers */
  size_t open;     /* sockets attached and not yet closed (listeners too) */
  size_t plumbing; /* of those, marked RX_F_PLUMBING (not counted) */
};
extern struct rx_state rx;

void rx_int_wake(void); /* reactor.c: wake the loop */
/* reactor.c: out of the table and the counts, fd closed (the end of a
 * socket, lingering or not) */
void rx_int_forget(rx_conn *c);
/* reactor_stop.c */
int rx_lingering(const rx_conn *c);
void rx_linger_begin(rx_conn *c);
void rx_linger_data(rx_conn *c);
void rx_begin_shutdown(void);
void rx_drain_step(void);
void rx_close_everything(void);

#endif
