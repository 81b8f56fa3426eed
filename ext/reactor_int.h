/* reactor_int: the loop's state, shared by the reactor's own files only
 * (reactor.c: connections, output, the loop; reactor_stop.c: lingering
 * close and stopping; reactor_batch.c: output held across calls). Nothing
 * else includes it.
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
  rx_conn *resume_next;             /* resume list link */
  rx_conn *dead_next;               /* end-of-turn free list link */
  rx_conn *cork_next;               /* corked list link */
  rx_conn *batch_prev, *batch_next; /* batch list links (reactor_batch.c) */
  uint64_t batch_due;               /* when the batch must be sent (us) */
} rx_node;

static inline rx_node *priv(rx_conn *c) { return (rx_node *)c; }

#define LINGER_MS 2000
#define LINGER_BYTES (256 * 1024)
#define SWEEP_MS 250
/* A batch (rx_batch_begin) holds at most this many bytes, for at most
 * this long: the loop thread sends what is still held then. */
#define RX_BATCH_BYTES (64 * 1024)
#define RX_BATCH_MS 2

struct rx_state {
  int epfd, wakefd;
  rx_conn **table;
  uint32_t *gens;
  size_t cap, top; /* table size; highest fd + 1 ever used */
  pthread_mutex_t lock;
  rx_conn *resume_head, *resume_tail;
  rx_conn *dead;
  rx_conn *corked;
  rx_conn *batch_head, *batch_tail; /* batched connections, oldest first */
  /* The latest the loop's current wait ends (us), so a thread beginning a
   * batch due sooner knows to wake it; 0 once one did (one is enough). */
  uint64_t sleep_until;
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

void rx_int_wake(void);         /* reactor.c: wake the loop */
uint64_t rx_int_clock_us(void); /* reactor.c: the monotonic clock, in us */
/* reactor.c: send what is queued now, then complete a close or report
 * the queue drained (what the end of a turn does for a corked one) */
void rx_int_send(rx_conn *c);
/* reactor_batch.c */
void rx_int_batch_unlink(rx_conn *c); /* off the batch list, flag cleared */
uint64_t rx_int_batch_due(void);      /* the oldest batch's due time, 0: none */
void rx_int_batch_expire(uint64_t now_us);
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
