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
#include "history.h"
#include "reactor.h"
#include "upgrade.h"

typedef struct ps_chan ps_chan;

typedef struct ps_sub {
  struct ps_sub *prev, *next;         /* in the channel */
  struct ps_sub *own_prev, *own_next; /* in the owner's list */
  struct ps_sub **own_head;           /* that list's head */
  ps_chan *ch;
  uint64_t conn;     /* 0: the application's own (global) subscription */
  uint64_t callback; /* 0: straight to the connection */
  int as;            /* PS_AS_*: handed to the protocol's up_ops.frame */
  /* No actor here: a callback's is its connection's (or the global one),
   * found when needed. The struct stays at 72 bytes: fan-out walks these
   * lists, and every byte is cache misses over 10,000 subscribers. */
} ps_sub;

struct ps_chan {
  ps_chan *hnext;         /* hash chain */
  ps_chan *pnext, *pprev; /* the pattern list (patterns only) */
  uint64_t hash;
  size_t len;
  int pattern;
  ps_sub *subs;
  size_t nsubs;
  size_t ncb; /* subscriptions with a callback (posted at publish time) */
  char name[];
};

static struct {
  ps_chan **buckets;
  size_t nbuckets, nchans, nsubs;
  ps_chan *patterns;
  ps_sub *global;   /* the application's own subscriptions */
  dsp_actor *actor; /* global callbacks and channel notices, in order */
  uint64_t seed;
  ps_id last; /* the newest id stamped or delivered here */
} ps;

/* Ends the turn's run of held-back publishes (below), delivering it. */
static void run_flush(int cork);

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
  p->id = (ps_id){0, 0};
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

/* --- ids ------------------------------------------------------------------ */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

ps_id ps_stamp_locked(void) {
  ps.last = ps_id_next(ps.last, now_ms());
  return ps.last;
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

static void seed_init(void) {
  if (ps.seed) return;
  if (getrandom(&ps.seed, sizeof ps.seed, GRND_NONBLOCK) != sizeof ps.seed)
    ps.seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
  ps.seed |= 1; /* nonzero: set */
}

static int table_init(void) {
  if (ps.buckets) return 0;
  ps.nbuckets = 256;
  ps.buckets = calloc(ps.nbuckets, sizeof *ps.buckets);
  if (!ps.buckets) return -1;
  seed_init();
  ps.actor = dsp_actor_new();
  return ps.actor ? 0 : -1;
}

static ps_chan *chan_find(const char *name, size_t len, int pattern, uint64_t h) {
  for (ps_chan *c = ps.buckets[h & (ps.nbuckets - 1)]; c; c = c->hnext)
    if (c->hash == h && c->len == len && c->pattern == pattern && !memcmp(c->name, name, len))
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
    if (c->pprev)
      c->pprev->pnext = c->pnext;
    else
      ps.patterns = c->pnext;
    if (c->pnext) c->pnext->pprev = c->pprev;
  }
  ps.nchans--;
  notice_gone(c);
  free(c);
}

/* --- subscriptions ----------------------------------------------------------- */

static void sub_remove(ps_sub *s) {
  ps_chan *c = s->ch;
  if (s->prev)
    s->prev->next = s->next;
  else
    c->subs = s->next;
  if (s->next) s->next->prev = s->prev;
  if (s->own_prev)
    s->own_prev->own_next = s->own_next;
  else
    *s->own_head = s->own_next;
  if (s->own_next) s->own_next->own_prev = s->own_prev;
  ps.nsubs--;
  c->ncb -= s->callback != 0;
  if (--c->nsubs == 0) chan_free(c);
  free(s);
}

/* The owner's subscription to exactly this channel/pattern, if any. */
static ps_sub *owned(ps_sub *head, const char *name, size_t len, int pattern) {
  for (ps_sub *s = head; s; s = s->own_next)
    if (s->ch->pattern == pattern && s->ch->len == len && !memcmp(s->ch->name, name, len)) return s;
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

int ps_exists(const char *name, size_t len, int pattern) {
  rx_lock();
  int r =
      ps.buckets && chan_find(name, len, pattern != 0, hash_name(name, len, pattern != 0)) != NULL;
  rx_unlock();
  return r;
}

int64_t ps_unsubscribe(uint64_t conn, const char *name, size_t len, int pattern) {
  rx_lock();
  ps_sub **head;
  dsp_actor *actor;
  int64_t r = -1;
  run_flush(1);
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
  run_flush(1);
  while (u->subs) sub_remove(u->subs);
}

/* --- publishing -------------------------------------------------------------- */

/* One message on its way to every recipient in this process: each wire
 * form is made once, on first need, by the recipient's protocol (up_ops),
 * and shared through the form slots of `w`. */
typedef struct {
  ps_delivery w; /* what the protocols see */
  const char *ch;
  size_t clen;
  ps_msg *pm; /* callbacks' shared copy, made on first need */
  long reached;
} delivery;

static void delivery_init(delivery *d, const char *ch, size_t clen, const char *msg, size_t mlen,
                          int text, ps_id id) {
  /* field by field: the form slots are only valid below w.nforms, and
   * zeroing all of them would cost every publish half a kilobyte */
  d->w.msg = msg;
  d->w.len = mlen;
  d->w.text = text != 0;
  d->w.utf8 = text ? 1 : -1;
  d->w.id = id;
  d->w.nforms = 0;
  d->ch = ch;
  d->clen = clen;
  d->pm = NULL;
  d->reached = 0;
}

static void delivery_done(delivery *d) {
  for (unsigned i = 0; i < d->w.nforms; i++) rx_buf_release(d->w.forms[i].buf);
  ps_msg_release(d->pm);
}

/* A new slot (ps_form_slot found none for this key). */
rx_buf **ps_form_add(ps_delivery *d, const void *owner, unsigned variant) {
  if (d->nforms == PS_FORMS_MAX) return NULL;
  ps_form *f = &d->forms[d->nforms++];
  *f = (ps_form){owner, variant, NULL};
  return &f->buf;
}

/* One message to one direct subscription's connection. Corked, many
 * messages to one connection in a turn leave in one write; a run's last
 * pass (see below) writes at once instead, as nothing else is coming. */
static void deliver_to(delivery *d, ps_sub *s, up_conn *u, rx_conn *c, int cork) {
  rx_buf *b = u->ops->frame(c, &d->w, s->as);
  if (!b) return;
  if (cork) rx_cork(c);
  if (u->ops->write(c, b, &d->w) == 0) d->reached++;
}

static void deliver(delivery *d, ps_sub *s) {
  if (s->callback) {
    if (!d->pm) {
      if (!(d->pm = msg_new(d->ch, d->clen, d->w.msg, d->w.len, d->w.text))) return;
      d->pm->id = d->w.id;
    }
    dsp_actor *actor = ps.actor;
    if (s->conn) {
      up_conn *u = up_find(s->conn, NULL);
      if (!u) return; /* closing: its callbacks are being forgotten */
      actor = u->actor;
    }
    msg_retain(d->pm);
    if (dsp_post(actor, DSP_PUBSUB, s->conn, d->pm, s->callback))
      ps_msg_release(d->pm);
    else
      d->reached++;
    return;
  }
  rx_conn *c;
  up_conn *u = up_find(s->conn, &c);
  if (u) deliver_to(d, s, u, c, 1);
}

static void deliver_all(delivery *d, ps_chan *c) {
  for (ps_sub *s = c->subs, *next; s; s = next) {
    next = s->next; /* a dropped connection keeps its subs until on_close */
    deliver(d, s);
  }
}

/* --- a turn's run of publishes to one channel ---------------------------------
 *
 * Publishes to one channel with nothing else in between (no publish to
 * another channel, no subscription change, no write or graceful close of
 * any connection) are held back as a run and reach the channel's direct
 * subscriptions in one pass when it ends: each connection is found and
 * written once per run, with one shared buffer per wire form that holds the
 * run's frames back to back, instead of once per message. Over 10,000
 * subscribers the per-message pass missed the cache on every subscription,
 * connection and queue; now that is once per run.
 *
 * Order is exactly that of delivering each message at once, because the
 * run ends before anything that could come after it on a connection:
 * every other pub/sub call here ends it first, and the reactor's rx_hold
 * ends it before the next write or close of any connection and at the end
 * of the loop turn. Callback subscriptions still get their event at
 * publish time (posted to actors, not written). A channel that a pattern
 * matches is not run: a connection subscribed to both would see the
 * pattern pass after the whole run instead of after each message. */
#define RUN_MAX 128          /* messages held at most: then the run goes (corked) */
#define RUN_BYTES (64 << 10) /* message bytes held at most */
#define RUN_FORMS 4          /* concatenated wire forms kept per run */

static struct {
  ps_chan *ch;
  delivery *d; /* the messages, in publish order; each owns a copy (d->pm) */
  size_t n, cap, bytes;
  rx_buf **forms;           /* one subscriber's k buffers: RUN_MAX */
  rx_buf **keys[RUN_FORMS]; /* a form's k buffers ... */
  rx_buf *cat[RUN_FORMS];   /* ... and the same bytes in one buffer */
  int nforms;
} run;

/* The k buffers in one (made once per distinct form in the run). */
static rx_buf *cat_of(rx_buf **f, size_t k) {
  for (int j = 0; j < run.nforms; j++)
    if (!memcmp(run.keys[j], f, k * sizeof *f)) return run.cat[j];
  if (run.nforms == RUN_FORMS) return NULL; /* rare: the caller writes them one by one */
  if (!run.keys[run.nforms] && !(run.keys[run.nforms] = malloc(RUN_MAX * sizeof *f))) return NULL;
  size_t total = 0;
  for (size_t i = 0; i < k; i++) total += f[i]->len;
  rx_buf *b = rx_buf_new(NULL, total);
  if (!b) return NULL;
  for (size_t i = 0, o = 0; i < k; o += f[i]->len, i++) memcpy(b->data + o, f[i]->data, f[i]->len);
  memcpy(run.keys[run.nforms], f, k * sizeof *f);
  run.cat[run.nforms++] = b;
  return b;
}

/* The run's k messages to one direct subscription. */
static void run_deliver(ps_sub *s, size_t k, int cork) {
  rx_conn *c;
  up_conn *u = up_find(s->conn, &c);
  if (!u) return;
  /* A protocol releases the run before its own Close changes its state
   * (websocket.c's ws_send_close, raw.c's Close frame): what was published
   * before the Close goes first, and pub/sub never writes `closing`. */
  rx_buf *cat = NULL;
  if (k > 1 && u->ops->joinable) {
    size_t i = 0;
    for (; i < k && (run.forms[i] = u->ops->frame(c, &run.d[i].w, s->as)); i++) {
    }
    if (i == k) cat = cat_of(run.forms, k);
  }
  if (cat) {
    if (cork) rx_cork(c);
    if (u->ops->write(c, cat, &run.d[0].w) == 0) rx_count_writes(c, (uint32_t)(k - 1));
  } else {
    for (size_t i = 0; i < k; i++) deliver_to(&run.d[i], s, u, c, cork);
  }
}

/* End the run: deliver it; `cork` when more output follows in this turn. */
static void run_flush(int cork) {
  size_t k = run.n;
  if (!k) return;
  ps_chan *ch = run.ch;
  run.n = 0; /* first: our own writes end nothing */
  run.ch = NULL;
  run.bytes = 0;
  for (ps_sub *s = ch->subs, *next; s; s = next) {
    next = s->next;
    if (!s->callback) run_deliver(s, k, cork);
  }
  for (size_t i = 0; i < k; i++) delivery_done(&run.d[i]);
  for (int j = 0; j < run.nforms; j++) rx_buf_release(run.cat[j]);
  run.nforms = 0;
}

/* The reactor's rx_hold callback: `writing` is the connection whose write
 * or close ends the run (NULL: the turn's end, whose corked output follows
 * anyway). */
static void run_released(rx_conn *writing) { run_flush(writing != NULL); }

/* Hold a publish to channel c back in the run. Returns the subscriptions
 * it reaches (callbacks now, direct ones counted: they are written when
 * the run ends), or -1 when it could not be held (deliver it at once). */
static long run_add(ps_chan *c, const char *ch, size_t clen, const char *msg, size_t mlen, int text,
                    ps_id id) {
  if (run.n && (run.ch != c || run.n == RUN_MAX || run.bytes + mlen > RUN_BYTES)) run_flush(1);
  if (run.n == run.cap) {
    size_t cap = run.cap ? run.cap * 2 : 16;
    delivery *d = realloc(run.d, cap * sizeof *d);
    if (!d) return -1;
    run.d = d;
    run.cap = cap;
    if (!run.forms && !(run.forms = malloc(RUN_MAX * sizeof *run.forms))) return -1;
  }
  ps_msg *pm = msg_new(ch, clen, msg, mlen, text);
  if (!pm) return -1;
  pm->id = id;
  delivery *d = &run.d[run.n];
  delivery_init(d, pm->channel, clen, pm->message, mlen, text, id);
  d->pm = pm;
  if (c->ncb)
    for (ps_sub *s = c->subs, *next; s; s = next) {
      next = s->next;
      if (s->callback) deliver(d, s);
    }
  if (!run.n++) rx_hold(run_released);
  run.ch = c;
  run.bytes += mlen;
  return d->reached + (long)(c->nsubs - c->ncb);
}

static int pattern_matches(const char *channel, size_t clen) {
  for (ps_chan *p = ps.patterns; p; p = p->pnext)
    if (glob_match(p->name, p->len, channel, clen)) return 1;
  return 0;
}

long ps_deliver(const char *sub, size_t slen, int pattern, const char *channel, size_t clen,
                const char *msg, size_t mlen, int text) {
  delivery d;
  delivery_init(&d, channel, clen, msg, mlen, text, (ps_id){0, 0});
  rx_lock();
  run_flush(1);
  if (ps.buckets) {
    ps_chan *c = chan_find(sub, slen, pattern != 0, hash_name(sub, slen, pattern != 0));
    if (c) deliver_all(&d, c);
  }
  rx_unlock();
  delivery_done(&d);
  return d.reached;
}

long ps_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text) {
  rx_lock();
  long n = ps_publish_locked(channel, clen, msg, mlen, text);
  rx_unlock();
  return n;
}

long ps_publish_locked(const char *channel, size_t clen, const char *msg, size_t mlen, int text) {
  return ps_publish_id_locked(channel, clen, msg, mlen, text, ps_stamp_locked());
}

long ps_publish_id(const char *channel, size_t clen, const char *msg, size_t mlen, int text,
                   ps_id id) {
  rx_lock();
  long n = ps_publish_id_locked(channel, clen, msg, mlen, text, id);
  rx_unlock();
  return n;
}

long ps_publish_id_locked(const char *channel, size_t clen, const char *msg, size_t mlen, int text,
                          ps_id id) {
  /* this process's own stamps stay above every id delivered here */
  if (ps_id_cmp(id, ps.last) > 0) ps.last = id;
  if (hist_enabled() && !ps_id_none(id)) hist_add(channel, clen, id, msg, mlen, text != 0);
  if (ps.buckets) {
    ps_chan *c = chan_find(channel, clen, 0, hash_name(channel, clen, 0));
    if (c && c->nsubs > c->ncb && !pattern_matches(channel, clen)) {
      long n = run_add(c, channel, clen, msg, mlen, text, id);
      if (n >= 0) return n;
    }
  }
  run_flush(1); /* not held: it goes now, after the run */
  delivery d;
  delivery_init(&d, channel, clen, msg, mlen, text, id);
  if (ps.buckets) {
    ps_chan *c = chan_find(channel, clen, 0, hash_name(channel, clen, 0));
    if (c) deliver_all(&d, c);
    for (ps_chan *p = ps.patterns; p; p = p->pnext)
      if (glob_match(p->name, p->len, channel, clen)) deliver_all(&d, p);
  }
  delivery_done(&d);
  return d.reached;
}

/* --- history and resume ------------------------------------------------------ */

typedef struct {
  ps_sub *s;
  const char *ch;
  size_t clen;
} replay;

static void replay_one(void *ctx, ps_id id, const char *msg, size_t mlen, int text) {
  replay *r = ctx;
  delivery d;
  delivery_init(&d, r->ch, r->clen, msg, mlen, text, id);
  deliver(&d, r->s);
  delivery_done(&d);
}

void ps_history_configure(size_t per_channel, size_t max_channels, size_t max_bytes) {
  rx_lock();
  seed_init();
  /* this process vouches for what it sees from now on */
  ps_id start = {now_ms(), 0};
  if (ps_id_cmp(ps.last, start) > 0) start = ps.last;
  hist_configure(per_channel, max_channels, max_bytes, ps.seed, start);
  rx_unlock();
}

void ps_after_fork(void) {
  ps_id start = {now_ms(), 0};
  if (ps_id_cmp(ps.last, start) > 0) start = ps.last;
  hist_restart(start);
}

size_t ps_history_bytes(void) {
  rx_lock();
  size_t n = hist_bytes();
  rx_unlock();
  return n;
}

size_t ps_history_channels(void) {
  rx_lock();
  size_t n = hist_channels();
  rx_unlock();
  return n;
}

/* --- subscribing (a resume replays first) ------------------------------------- */

int ps_subscribe(uint64_t conn, const char *name, size_t len, int pattern, uint64_t callback) {
  return ps_subscribe_as(conn, name, len, pattern, callback, PS_AS_PUBLISHED, NULL, NULL);
}

int ps_subscribe_as(uint64_t conn, const char *name, size_t len, int pattern, uint64_t callback,
                    int as, const ps_id *since, ps_resume *out) {
  if (out) *out = (ps_resume){0, 0};
  if (!conn && !callback) return -2;
  if (since && pattern) return -3;
  rx_lock();
  run_flush(1);
  ps_sub **head;
  dsp_actor *actor;
  int r = -1;
  if (table_init() || owner_of(conn, &head, &actor)) goto out;
  ps_sub *s = owned(*head, name, len, pattern);
  if (s) { /* replace: same channel, new delivery */
    s->ch->ncb += (size_t)(callback != 0) - (size_t)(s->callback != 0);
    s->callback = callback;
    s->as = as;
    r = 0;
  } else {
    int created;
    ps_chan *c = chan_get(name, len, pattern != 0, &created);
    s = calloc(1, sizeof *s);
    if (!c || !s) {
      free(s);
      if (c && !c->nsubs) chan_free(c); /* its "gone" notice balances `created` */
      goto out;
    }
    s->ch = c;
    s->conn = conn;
    s->callback = callback;
    c->ncb += callback != 0;
    s->as = as;
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
  }
  if (since) {
    /* Still under the lock: the replay reaches this subscription before
     * any live message can, and no message falls between the two. */
    replay rp = {s, name, len};
    size_t n;
    int complete = hist_since(name, len, *since, replay_one, &rp, &n);
    if (out) *out = (ps_resume){(long)n, complete};
  }
out:
  rx_unlock();
  return r;
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
