/* upgrade: what every upgraded connection shares, and the calls the
 * application makes on any of them through its client object.
 *
 * Owns: the up_conn prefix that every upgraded protocol's state begins
 * with (so one function can serve them all), the operations table (up_ops)
 * through which protocol-neutral code (this file, pubsub.c) reaches a
 * connection's protocol, the event kinds an upgraded connection posts
 * (numbered in events.h), and pending / open? / timeout / close /
 * drained-interest by connection id.
 *
 * A protocol plugs in by defining one `const up_ops` and passing it to
 * up_adopt: nothing here or in pubsub.c names it.
 *
 * Must never: frame data, or name a protocol (the protocol modules include
 * this header, never the other way round). */
#ifndef IODINE_UPGRADE_H
#define IODINE_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rx_conn rx_conn;
typedef struct dsp_actor dsp_actor;
typedef struct http_settings http_settings;
struct rx_proto;
struct rx_buf;
struct ps_delivery; /* pubsub.h */

/* The operations of one upgraded protocol, called with the lock held on a
 * connection whose up_conn.ops is this table. */
typedef struct up_ops {
  const char *name; /* "websocket", "sse", "raw": for logs and tests */
  /* The wire form of published message `d` for connection `c`, whose
   * subscription asked for `as` (PS_AS_*). Made on first need and kept in
   * one of d's form slots (ps_form_slot), so every connection that needs
   * the same bytes shares one buffer; the delivery owns the reference.
   * NULL: none (out of memory). */
  struct rx_buf *(*frame)(rx_conn *c, struct ps_delivery *d, int as);
  /* Queue a shared wire form made by `frame` (d: the same delivery).
   * Returns 0, or -1 when closing or dropped over the output cap. */
  int (*write)(rx_conn *c, struct rx_buf *b, const struct ps_delivery *d);
  /* The application's close (up_close): `code` is a WebSocket close code,
   * which a protocol without close codes ignores. */
  void (*close)(rx_conn *c, unsigned code);
  /* Nonzero when `write` sends b's bytes as they are: pub/sub may then
   * join the forms of several messages into one buffer (pubsub.c). */
  int joinable;
} up_ops;

#include "events.h" /* the events an upgraded connection posts */

typedef struct up_conn {
  const up_ops *ops; /* the protocol's operations */
  dsp_actor *actor;  /* the connection's ordering actor */
  const http_settings *set;
  unsigned want_drained : 1; /* the handler has on_drained */
  unsigned closing : 1;      /* nothing more is written: set only by the
                               protocol's own close (websocket.c: ws_to;
                               raw.c: its Close frame; SSE: never, a closed
                               socket says it) */
  struct ps_sub *subs;       /* pub/sub subscriptions (pubsub.c owns them) */
} up_conn;

/* Finish a take-over (lock held): `u` (the first member of the new
 * protocol's state) gets its operations, settings and the connection's actor;
 * the connection gets `proto`, the upgraded mark (rx_mark_upgraded), with
 * `flags` RX_F_IDLE_READ an idle clock only input resets, the ping
 * interval as its idle limit; DSP_OPEN is posted; reading resumes (HTTP may
 * have paused it with bytes waiting, and edge-triggered epoll will not say
 * so again). With u == NULL (out of memory) the connection is closed and
 * the actor released instead. Returns 0 or -1. */
int up_adopt(rx_conn *c, up_conn *u, const up_ops *ops, const http_settings *set, dsp_actor *actor,
             const struct rx_proto *proto, uint32_t flags);

/* The upgraded connection with this id, or NULL. Caller holds the lock. */
up_conn *up_find(uint64_t conn, rx_conn **out);

/* The output cap check every write goes through: a peer that has left more
 * than set->max_pending bytes unread (or twice the largest message, if that
 * is more) is dropped (on_close follows) instead of being sent more. A
 * write to a queue under the cap is always accepted, so memory per peer is
 * bounded by the cap plus one message. Returns 0 or -1 (dropped). */
int up_room(rx_conn *c, const up_conn *u, size_t more);

/* Application calls (any thread; they take the lock). */
long up_pending(uint64_t conn); /* queued writes, -1 when closed */
int up_is_open(uint64_t conn);
long up_timeout(uint64_t conn, long set_ms); /* set when >= 0; returns ms */
int up_close(uint64_t conn, unsigned code);  /* through ops->close */
void up_want_drained(uint64_t conn, int on);

#endif
