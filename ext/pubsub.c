/* pubsub: see pubsub.h for what this file owns.
 *
 * Shapes: a channel (or pattern) owns a doubly linked list of its
 * subscriptions; each subscription is also on its owner's list (the
 * connection's up_conn, or the application's global list), so both "who
 * gets this message" and "drop everything of this connection" are walks of
 * short lists. A channel lives while it has subscriptions. */
#define _GNU_SOURCE
#include "pubsub.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "dispatch.h"
#include "glob.h"
#include "raw.h"
#include "reactor.h"
#include "sse.h"
#include "upgrade.h"
#include "websocket.h"
#include "ws_frame.h"

typedef struct ps_chan ps_chan;

typedef struct ps_sub {
  struct ps_sub *prev, *next;         /* in the channel */
  struct ps_sub *own_prev, *own_next; /* in the owner's list */
  struct ps_sub **own_head;           /* that list's head */
  ps_chan *ch;
  uint64_t conn;     /* 0: the application's own (global) subscription */
  uint64_t callback; /* 0: straight to the connection */
  dsp_actor *actor;  /* where callback events go */
} ps_sub;

struct ps_chan {
  ps_chan *hnext;         /* hash chain */
  ps_chan *pnext, *pprev; /* the pattern list (patterns only) */
  uint64_t hash;
  size_t len;
  int pattern;
  ps_sub *subs;
  size_t nsubs;
  char name[];
};

static struct {
  ps_chan **buckets;
  size_t nbuckets, nchans, nsubs;
  ps_chan *patterns;
  ps_sub *global; /* the application's own subscriptions */
  dsp_actor *actor; /* global callbacks and channel notices, in order */
  uint64_t seed;
} ps;

/* --- messages -------------------------------------------------------------- */

static ps_msg *msg_new(const char *ch, size_t clen, const char *m, size_t mlen, int text) {
  ps_msg *p = malloc(sizeof *p + clen + mlen + 2);
  if (!p) return NULL;
  atomic_init((atomic_int *)&p->refs, 1);
  p->text = text;
  p->pattern = 0;
  p->channel_len = clen;
  p->len = mlen;
  p->channel = p->data;
  p->message = p->data + clen + 1;
  memcpy(p->channel, ch, clen);
  p->channel[clen] = 0;
  if (mlen) memcpy(p->message, m, mlen);
  p->message[mlen] = 0;
  return p;
}

static void msg_retain(ps_msg *m) { atomic_fetch_add((atomic_int *)&m->refs, 1); }

void ps_msg_release(ps_msg *m) {
  if (m && atomic_fetch_sub((atomic_int *)&m->refs, 1) == 1) free(m);
}

/* --- the channel table --------------------------------------------------- */

/* FNV-1a over a per-process random seed: cheap, and the seed keeps a
 * client that names channels from guessing collisions. */
static uint64_t hash_name(const char *s, size_t n, int pattern) {
  uint64_t h = ps.seed ^ 0xcbf29ce484222325ull ^ (uint64_t)pattern;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3ull;
  }
  return h ^ (h >> 29);
}

static int table_init(void) {
  if (ps.buckets) return 0;
  ps.nbuckets = 256;
  ps.buckets = calloc(ps.nbuckets, sizeof *ps.buckets);
  if (!ps.buckets) return -1;
  if (getrandom(&ps.seed, sizeof ps.seed, GRND_NONBLOCK) != sizeof ps.seed)
    ps.seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
  ps.actor = dsp_actor_new();
  return ps.actor ? 0 : -1;
}

static ps_chan *chan_find(const char *name, size_t len, int pattern, uint64_t h) {
  for (ps_chan *c = ps.buckets[h & (ps.nbuckets - 1)]; c; c = c->hnext)
    if (c->hash == h && c->len == len && c->pattern == pattern &&
        !memcmp(c->name, name, len))
      return c;
  return NULL;
}

static void grow(void) {
  size_t n = ps.nbuckets * 2;
  ps_chan **b = calloc(n, sizeof *b);
  if (!b) return; /* a longer chain is slower, not wrong */
  for (size_t i = 0; i < ps.nbuckets; i++) {
    ps_chan *c = ps.buckets[i];
    while (c) {
      ps_chan *next = c->hnext;
      c->hnext = b[c->hash & (n - 1)];
      b[c->hash & (n - 1)] = c;
      c = next;
    }
  }
  free(ps.buckets);
  ps.buckets = b;
  ps.nbuckets = n;
}

/* Tell the layer above the channel lost its last subscriber. (Its first
 * subscriber is reported by ps_subscribe's return value instead.) */
static void notice_gone(const ps_chan *c) {
  ps_msg *m = msg_new(c->name, c->len, NULL, 0, 0);
  if (!m) return;
  m->pattern = c->pattern;
  if (dsp_post(ps.actor, DSP_PS_CHANNEL, 0, m, 0)) ps_msg_release(m);
}

static ps_chan *chan_get(const char *name, size_t len, int pattern, int *created) {
  uint64_t h = hash_name(name, len, pattern);
  ps_chan *c = chan_find(name, len, pattern, h);
  *created = 0;
  if (c) return c;
  c = calloc(1, sizeof *c + len + 1);
  if (!c) return NULL;
  c->hash = h;
  c->len = len;
  c->pattern = pattern;
  memcpy(c->name, name, len);
  if (ps.nchans >= ps.nbuckets) grow();
  c->hnext = ps.buckets[h & (ps.nbuckets - 1)];
  ps.buckets[h & (ps.nbuckets - 1)] = c;
  if (pattern) {
    c->pnext = ps.patterns;
    if (ps.patterns) ps.patterns->pprev = c;
    ps.patterns = c;
  }
  ps.nchans++;
  *created = 1; /* the caller tells the engines, synchronously: see .h */
  return c;
}

static void chan_free(ps_chan *c) {
  ps_chan **pp = &ps.buckets[c->hash & (ps.nbuckets - 1)];
  while (*pp != c) pp = &(*pp)->hnext;
  *pp = c->hnext;
  if (c->pattern) {
    if (c->pprev) c->pprev->pnext = c->pnext;
    else ps.patterns = c->pnext;
    if (c->pnext) c->pnext->pprev = c->pprev;
  }
  ps.nchans--;
  notice_gone(c);
  free(c);
}

/* --- subscriptions ----------------------------------------------------------- */

static void sub_remove(ps_sub *s) {
  ps_chan *c = s->ch;
  if (s->prev) s->prev->next = s->next;
  else c->subs = s->next;
  if (s->next) s->next->prev = s->prev;
  if (s->own_prev) s->own_prev->own_next = s->own_next;
  else *s->own_head = s->own_next;
  if (s->own_next) s->own_next->own_prev = s->own_prev;
  ps.nsubs--;
  if (--c->nsubs == 0) chan_free(c);
  free(s);
}

/* The owner's subscription to exactly this channel/pattern, if any. */
static ps_sub *owned(ps_sub *head, const char *name, size_t len, int pattern) {
  for (ps_sub *s = head; s; s = s->own_next)
    if (s->ch->pattern == pattern && s->ch->len == len && !memcmp(s->ch->name, name, len))
      return s;
  return NULL;
}

/* The owner's list head and actor for a connection id (0: global). */
static int owner_of(uint64_t conn, ps_sub ***head, dsp_actor **actor) {
  if (!conn) {
    *head = &ps.global;
    *actor = ps.actor;
    return 0;
  }
  up_conn *u = up_find(conn, NULL);
  if (!u || u->closing) return -1;
  *head = &u->subs;
  *actor = u->actor;
  return 0;
}

int ps_subscribe(uint64_t conn, const char *name, size_t len, int pattern,
                 uint64_t callback) {
  if (!conn && !callback) return -2;
  rx_lock();
  ps_sub **head;
  dsp_actor *actor;
  int r = -1;
  if (table_init() || owner_of(conn, &head, &actor)) goto out;
  ps_sub *old = owned(*head, name, len, pattern);
  if (old) { /* replace: same channel, new delivery */
    old->callback = callback;
    r = 0;
    goto out;
  }
  int created;
  ps_chan *c = chan_get(name, len, pattern != 0, &created);
  ps_sub *s = calloc(1, sizeof *s);
  if (!c || !s) {
    free(s);
    if (c && !c->nsubs) chan_free(c); /* its "gone" notice balances `created` */
    goto out;
  }
  s->ch = c;
  s->conn = conn;
  s->callback = callback;
  s->actor = actor;
  s->next = c->subs;
  if (c->subs) c->subs->prev = s;
  c->subs = s;
  c->nsubs++;
  s->own_head = head;
  s->own_next = *head;
  if (*head) (*head)->own_prev = s;
  *head = s;
  ps.nsubs++;
  r = created;
out:
  rx_unlock();
  return r;
}

int ps_exists(const char *name, size_t len, int pattern) {
  rx_lock();
  int r = ps.buckets && chan_find(name, len, pattern != 0,
                                  hash_name(name, len, pattern != 0)) != NULL;
  rx_unlock();
  return r;
}

int64_t ps_unsubscribe(uint64_t conn, const char *name, size_t len, int pattern) {
  rx_lock();
  ps_sub **head;
  dsp_actor *actor;
  int64_t r = -1;
  if (ps.buckets && owner_of(conn, &head, &actor) == 0) {
    ps_sub *s = owned(*head, name, len, pattern != 0);
    if (s) {
      r = (int64_t)s->callback;
      sub_remove(s);
    }
  }
  rx_unlock();
  return r;
}

void ps_drop_conn(up_conn *u) {
  while (u->subs) sub_remove(u->subs);
}

/* --- publishing -------------------------------------------------------------- */

typedef struct {
  const char *ch, *msg;
  size_t clen, mlen;
  int text;
  rx_buf *ws, *sse; /* framed once, on first need */
  ps_msg *pm;
  long reached;
  rx_buf *raw; /* raw connections: the bytes unframed (raw.h) */
} delivery;

static rx_buf *ws_frame_of(delivery *d) {
  if (!d->ws) {
    uint8_t hd[10];
    size_t hl = ws_head_write(hd, d->text ? WS_OP_TEXT : WS_OP_BINARY, 1, d->mlen);
    d->ws = rx_buf_new(NULL, hl + d->mlen);
    if (d->ws) {
      memcpy(d->ws->data, hd, hl);
      memcpy(d->ws->data + hl, d->msg, d->mlen);
    }
  }
  return d->ws;
}

/* A raw connection gets the message bytes as they are: no framing. */
static rx_buf *raw_bytes_of(delivery *d) {
  if (!d->raw) d->raw = rx_buf_new(d->msg, d->mlen);
  return d->raw;
}

static rx_buf *sse_event_of(delivery *d) {
  if (!d->sse) {
    long n = sse_format(NULL, 0, d->msg, d->mlen, NULL, 0, NULL, 0);
    d->sse = rx_buf_new(NULL, (size_t)n);
    if (d->sse) sse_format(d->sse->data, (size_t)n, d->msg, d->mlen, NULL, 0, NULL, 0);
  }
  return d->sse;
}

static void deliver(delivery *d, ps_sub *s) {
  if (s->callback) {
    if (!d->pm && !(d->pm = msg_new(d->ch, d->clen, d->msg, d->mlen, d->text))) return;
    msg_retain(d->pm);
    if (dsp_post(s->actor, DSP_PUBSUB, s->conn, d->pm, s->callback)) ps_msg_release(d->pm);
    else d->reached++;
    return;
  }
  rx_conn *c;
  up_conn *u = up_find(s->conn, &c);
  if (!u) return;
  rx_buf *b = u->kind == UP_WEBSOCKET ? ws_frame_of(d)
              : u->kind == UP_RAW      ? raw_bytes_of(d)
                                       : sse_event_of(d);
  if (!b) return;
  /* Many messages to one connection in a turn leave in one write. */
  rx_cork(c);
  int r = u->kind == UP_WEBSOCKET ? ws_write_framed(c, b)
          : u->kind == UP_RAW     ? raw_write_buf(c, b, d->text)
                                  : sse_write_formatted(c, b);
  if (r == 0) d->reached++;
}

static void deliver_all(delivery *d, ps_chan *c) {
  for (ps_sub *s = c->subs, *next; s; s = next) {
    next = s->next; /* a dropped connection keeps its subs until on_close */
    deliver(d, s);
  }
}

long ps_deliver(const char *sub, size_t slen, int pattern, const char *channel,
                size_t clen, const char *msg, size_t mlen, int text) {
  delivery d = {channel, msg, clen, mlen, text != 0, NULL, NULL, NULL, 0, NULL};
  rx_lock();
  if (ps.buckets) {
    ps_chan *c = chan_find(sub, slen, pattern != 0, hash_name(sub, slen, pattern != 0));
    if (c) deliver_all(&d, c);
  }
  rx_unlock();
  rx_buf_release(d.ws);
  rx_buf_release(d.sse);
  rx_buf_release(d.raw);
  ps_msg_release(d.pm);
  return d.reached;
}

long ps_publish(const char *channel, size_t clen, const char *msg, size_t mlen,
                int text) {
  rx_lock();
  long n = ps_publish_locked(channel, clen, msg, mlen, text);
  rx_unlock();
  return n;
}

long ps_publish_locked(const char *channel, size_t clen, const char *msg,
                       size_t mlen, int text) {
  delivery d = {channel, msg, clen, mlen, text != 0, NULL, NULL, NULL, 0, NULL};
  if (ps.buckets) {
    ps_chan *c = chan_find(channel, clen, 0, hash_name(channel, clen, 0));
    if (c) deliver_all(&d, c);
    for (ps_chan *p = ps.patterns; p; p = p->pnext)
      if (glob_match(p->name, p->len, channel, clen)) deliver_all(&d, p);
  }
  rx_buf_release(d.ws);
  rx_buf_release(d.sse);
  rx_buf_release(d.raw);
  ps_msg_release(d.pm);
  return d.reached;
}

long ps_publish_id(const char *channel, size_t clen, const char *msg,
                   size_t mlen, int text, ps_id id) {
  rx_lock();
  long n = ps_publish_id_locked(channel, clen, msg, mlen, text, id);
  rx_unlock();
  return n;
}

long ps_publish_id_locked(const char *channel, size_t clen, const char *msg,
                          size_t mlen, int text, ps_id id) {
  (void)id; /* ids reach deliveries and history in a later step */
  return ps_publish_locked(channel, clen, msg, mlen, text);
}

size_t ps_channel_count(void) {
  rx_lock();
  size_t n = ps.nchans;
  rx_unlock();
  return n;
}

size_t ps_sub_count(void) {
  rx_lock();
  size_t n = ps.nsubs;
  rx_unlock();
  return n;
}
