/* pubsub: channels, pattern subscriptions and fan-out, in this process.
 *
 * Owns: the channel table (a seeded hash, so channel names chosen by
 * clients cannot force collisions), pattern subscriptions (glob.h), every
 * subscription of every connection and of the application, and delivery:
 *
 *  - a subscription without a callback sends the message straight to its
 *    connection from C, through the connection's operations (upgrade.h's
 *    up_ops): its protocol frames the message (a WebSocket frame, an SSE
 *    event, raw bytes) once per publish per wire form, in one
 *    reference-counted buffer that every recipient's write queue shares
 *    (no Python per recipient; the reactor copies frames of <= 256 bytes
 *    that wait behind other output into the recipient's pending buffer,
 *    cheaper than a reference). This file keeps the delivery's form slots
 *    (ps_delivery) and names no protocol;
 *  - a subscription with a callback posts a DSP_PUBSUB event (on the
 *    connection's actor, so it is ordered with that connection's other
 *    callbacks) carrying one shared ps_msg;
 *  - consecutive publishes to one channel (a turn's run) are held back and
 *    reach its direct subscriptions in one pass: one lookup and one write
 *    per subscriber, the run's frames joined into one shared buffer per
 *    wire form when the protocol writes forms as they are (up_ops
 *    joinable). The run ends before any other pub/sub call, any write or
 *    graceful close of any connection (reactor.h rx_hold) and at the end of
 *    the loop turn, so each connection sees the order of at-once delivery.
 *    A channel a pattern matches is delivered at once, never held.
 *
 * Every message carries an id (psid.h) from its sequencer, or none for
 * this-process-only messages; protocols find it in ps_delivery (SSE sends
 * it as `id:`), callbacks in ps_msg. With history
 * on (history.h, called with the lock held), every message with an id is
 * kept, subscribed or not, and ps_subscribe_as with `since` replays the
 * kept ones to the new subscription in the same critical section that
 * creates it.
 *
 * It also tells the layer above when a channel or pattern gains its first
 * subscription (ps_subscribe returns 1: the caller tells the engines at
 * once, before any publish that follows can race past the engine's own
 * subscription) or loses its last (a DSP_PS_CHANNEL event, since that can
 * happen inside the loop, when a connection closes; by the time it is
 * handled the channel may exist again: ps_exists says). That is when an
 * engine such as Redis must subscribe or unsubscribe: once per channel per
 * process, however many clients share it.
 *
 * Threads: every function takes the big lock itself except those marked
 * "lock held". Must never: call into Python, copy a message per
 * recipient, or name a protocol (websocket, sse, raw depend on this file,
 * never the other way round). */
#ifndef IODINE_PUBSUB_H
#define IODINE_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "psid.h"

typedef struct rx_conn rx_conn;
typedef struct up_conn up_conn;

#include "events.h" /* DSP_PUBSUB, DSP_PS_CHANNEL */

/* A published message as callbacks see it. Reference counted: release it
 * with ps_msg_release once read. */
typedef struct ps_msg {
  int refs;    /* private (atomic) */
  int text;    /* published as str (1) or bytes (0) */
  int pattern; /* for DSP_PS_CHANNEL */
  size_t channel_len;
  size_t len;
  char *channel; /* points into data */
  char *message; /* points into data */
  ps_id id;      /* {0, 0}: none (ps_deliver) */
  char data[];
} ps_msg;

void ps_msg_release(ps_msg *m);

/* A published message on its way to the direct subscribers in this
 * process, as a protocol's up_ops.frame sees it. Each wire form is made
 * once: the protocol keeps what it made in a form slot keyed by an owner
 * of its choosing (its ops table) and a variant number (a frame type, a
 * compression window...), and every later subscriber with the same key
 * shares that buffer. The delivery owns one reference to each slot's
 * buffer and drops them when the publish is done. */
struct rx_buf;
#define PS_FORMS_MAX 24 /* distinct wire forms per publish (WebSocket: 18) */
typedef struct ps_form {
  const void *owner;
  unsigned variant;
  struct rx_buf *buf;
} ps_form;

typedef struct ps_delivery {
  const char *msg;
  size_t len;
  int text; /* published as str (1) or bytes (0) */
  int utf8; /* -1: not checked yet, else whether msg is UTF-8 (a protocol
                that needs to know checks once and stores it here) */
  ps_id id; /* {0, 0}: none */
  unsigned nforms;
  ps_form forms[PS_FORMS_MAX];
} ps_delivery;

/* The form slot for (owner, variant): *slot is NULL until the first
 * subscriber's protocol fills it. Returns NULL when all PS_FORMS_MAX slots
 * are taken (that subscriber is then not reached). Lock held. Inline: it
 * runs once per recipient, and the slot is nearly always the first. */
struct rx_buf **ps_form_add(ps_delivery *d, const void *owner, unsigned variant);
static inline struct rx_buf **ps_form_slot(ps_delivery *d, const void *owner, unsigned variant) {
  for (unsigned i = 0; i < d->nforms; i++)
    if (d->forms[i].owner == owner && d->forms[i].variant == variant) return &d->forms[i].buf;
  return ps_form_add(d, owner, variant);
}

/* Subscribe connection `conn` (0: the application itself, which then needs
 * a callback) to a channel or pattern. `callback` is an id the
 * application keeps (0: deliver straight to the connection). Subscribing
 * again to the same name (and pattern flag) replaces the old subscription.
 * Returns 1 when this created the channel (its first subscription), 0 when
 * it joined or replaced one, -1 when the connection is gone or not
 * upgraded, -2 when a global subscription has no callback. */
int ps_subscribe(uint64_t conn, const char *name, size_t len, int pattern, uint64_t callback);
/* How a direct subscription frames messages (handed to up_ops.frame; a
 * WebSocket's meaning): as published (str as text, bytes as binary),
 * always text (bytes that are not valid UTF-8 still go as binary: a text
 * frame must be UTF-8), or always binary. */
enum { PS_AS_PUBLISHED = 0, PS_AS_TEXT = 1, PS_AS_BINARY = 2 };

/* What a resume found: how many kept messages were replayed, and whether
 * they are every message after `since` this process saw (0: history is
 * off, or `since` is older than what it holds). */
typedef struct ps_resume {
  long replayed;
  int complete;
} ps_resume;

/* ps_subscribe, with the frame type `as` (PS_AS_*, direct WebSocket
 * delivery) and, when `since` is not NULL, a resume: every kept message of
 * the channel after *since goes to this subscription first, in order, and
 * then the live ones; both under the big lock, so none falls between or
 * comes twice. `since` needs a channel (not a pattern: -3). `out` (may be
 * NULL) gets what the resume found. */
int ps_subscribe_as(uint64_t conn, const char *name, size_t len, int pattern, uint64_t callback,
                    int as, const ps_id *since, ps_resume *out);

/* History (history.h): keep the last `per_channel` messages (0: off) of at
 * most `max_channels` channels in at most `max_bytes`. Call before serving
 * (workers inherit it). */
void ps_history_configure(size_t per_channel, size_t max_channels, size_t max_bytes);
size_t ps_history_bytes(void);
/* In a freshly forked process (server.c srv_after_fork, one thread): its
 * history starts empty and vouches only for what it sees from now on. */
void ps_after_fork(void);
size_t ps_history_channels(void);

/* The next id of this process's sequencer (lock held): the cluster's
 * master stamps relayed messages with it. */
ps_id ps_stamp_locked(void);

/* Returns the replaced/removed subscription's callback id (0 when it had
 * none), or -1 when there was no such subscription. */
int64_t ps_unsubscribe(uint64_t conn, const char *name, size_t len, int pattern);

/* Deliver `channel`'s message only to the subscribers of one subscription
 * name: the channel itself (pattern 0) or one pattern. An engine that,
 * like Redis, reports a message once per matching subscription uses this,
 * so nobody receives it twice. Returns the number reached. */
long ps_deliver(const char *sub, size_t slen, int pattern, const char *channel, size_t clen,
                const char *msg, size_t mlen, int text);

/* The same, for a caller that holds the lock (the cluster relay). */
long ps_publish_locked(const char *channel, size_t clen, const char *msg, size_t mlen, int text);

/* Message ids (psid.h) are in Redis stream id form "ms-seq": unique and
 * ordered per channel across the deployment. The sequencer is the Redis
 * stream (its engine passes ids in), else this server's master (the
 * cluster relay passes them in), else this process alone: ps_publish and
 * ps_publish_locked stamp the next id of this process's own sequencer,
 * which never goes below an id already delivered here. */

/* Deliver to every matching subscription in this process, carrying `id`
 * (SSE events get it as `id:`; history keeps it). The sequencer's and the
 * engines' way in. */
long ps_publish_id(const char *channel, size_t clen, const char *msg, size_t mlen, int text,
                   ps_id id);
/* The same, lock held (the cluster relay, engines living in the loop). */
long ps_publish_id_locked(const char *channel, size_t clen, const char *msg, size_t mlen, int text,
                          ps_id id);

/* Nonzero while the channel (or pattern) has subscriptions. */
int ps_exists(const char *name, size_t len, int pattern);

/* Deliver to every matching subscription in this process. `text` picks the
 * WebSocket frame type. Returns the number of subscriptions reached (a
 * publish held in a run counts its direct subscriptions then: they are
 * written when the run ends). */
long ps_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text);

/* Drop every subscription of a closing connection (lock held). The layer
 * above forgets the matching callbacks when it handles DSP_CLOSE. */
void ps_drop_conn(up_conn *u);

/* Counts, for tests and stats. */
size_t ps_channel_count(void);
size_t ps_sub_count(void);

#endif
