/* history: see history.h for what this file owns.
 *
 * Shapes: a seeded hash of hist_chan (chained), and one doubly linked list
 * of all of them from least to most recently published to (the eviction
 * order). Each channel has a ring of `per_channel` entry pointers,
 * allocated with the channel; entries are one allocation each (id, flags,
 * bytes). Bytes are counted as allocated: an entry's header and message,
 * a channel's header, name and ring. */
#include "history.h"

#include <stdlib.h>
#include <string.h>

typedef struct hist_entry {
  ps_id id;
  size_t len;
  int text;
  char data[];
} hist_entry;

typedef struct hist_chan {
  struct hist_chan *hnext;         /* hash chain */
  struct hist_chan *older, *newer; /* the eviction list */
  uint64_t hash;
  ps_id floor;        /* the newest id known missing */
  size_t head, count; /* ring: oldest at head */
  hist_entry **ring;
  size_t len;
  char name[];
} hist_chan;

static struct {
  size_t per_channel, max_channels, max_bytes;
  uint64_t seed;
  ps_id floor; /* of a channel not kept (never seen, or dropped) */
  hist_chan **buckets;
  size_t nbuckets, nchans, bytes;
  hist_chan *oldest, *newest;
} h;

static size_t entry_size(size_t mlen) { return sizeof(hist_entry) + mlen; }
static size_t chan_size(size_t clen) {
  return sizeof(hist_chan) + clen + h.per_channel * sizeof(hist_entry *);
}

static void raise_floor(ps_id *floor, ps_id id) {
  if (ps_id_cmp(id, *floor) > 0) *floor = id;
}

static uint64_t hash_name(const char *s, size_t n) {
  uint64_t x = h.seed ^ 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    x ^= (unsigned char)s[i];
    x *= 0x100000001b3ull;
  }
  return x ^ (x >> 29);
}

static hist_chan *find(const char *ch, size_t clen, uint64_t hash) {
  if (!h.buckets) return NULL;
  for (hist_chan *c = h.buckets[hash & (h.nbuckets - 1)]; c; c = c->hnext)
    if (c->hash == hash && c->len == clen && !memcmp(c->name, ch, clen)) return c;
  return NULL;
}

static void unlink_lru(hist_chan *c) {
  if (c->older)
    c->older->newer = c->newer;
  else
    h.oldest = c->newer;
  if (c->newer)
    c->newer->older = c->older;
  else
    h.newest = c->older;
  c->older = c->newer = NULL;
}

static void push_newest(hist_chan *c) {
  c->older = h.newest;
  c->newer = NULL;
  if (h.newest)
    h.newest->newer = c;
  else
    h.oldest = c;
  h.newest = c;
}

/* Drop a channel's oldest entry; its id becomes the floor. */
static void drop_oldest_entry(hist_chan *c) {
  hist_entry *e = c->ring[c->head];
  raise_floor(&c->floor, e->id);
  h.bytes -= entry_size(e->len);
  free(e);
  c->ring[c->head] = NULL;
  c->head = (c->head + 1) % h.per_channel;
  c->count--;
}

/* Drop a whole channel; what it held is covered by the global floor. */
static void drop_chan(hist_chan *c) {
  while (c->count) drop_oldest_entry(c);
  raise_floor(&h.floor, c->floor);
  hist_chan **pp = &h.buckets[c->hash & (h.nbuckets - 1)];
  while (*pp != c) pp = &(*pp)->hnext;
  *pp = c->hnext;
  unlink_lru(c);
  h.bytes -= chan_size(c->len);
  h.nchans--;
  free(c->ring);
  free(c);
}

void hist_clear(void) {
  while (h.oldest) drop_chan(h.oldest);
}

static void grow(void) {
  size_t n = h.nbuckets * 2;
  hist_chan **b = calloc(n, sizeof *b);
  if (!b) return; /* longer chains: slower, not wrong */
  for (size_t i = 0; i < h.nbuckets; i++)
    for (hist_chan *c = h.buckets[i], *next; c; c = next) {
      next = c->hnext;
      c->hnext = b[c->hash & (n - 1)];
      b[c->hash & (n - 1)] = c;
    }
  free(h.buckets);
  h.buckets = b;
  h.nbuckets = n;
}

void hist_configure(size_t per_channel, size_t max_channels, size_t max_bytes, uint64_t seed,
                    ps_id start) {
  /* Rings are sized by per_channel: a new size starts over (a resume then
   * reports the gap through the floor). */
  if (per_channel != h.per_channel || seed != h.seed) hist_clear();
  h.per_channel = per_channel;
  h.max_channels = max_channels ? max_channels : 1;
  h.max_bytes = max_bytes;
  h.seed = seed;
  raise_floor(&h.floor, start);
  if (!per_channel) {
    free(h.buckets);
    h.buckets = NULL;
    h.nbuckets = 0;
    return;
  }
  while (h.oldest && (h.nchans > h.max_channels || h.bytes > h.max_bytes)) drop_chan(h.oldest);
  if (!h.buckets) {
    h.nbuckets = 64;
    h.buckets = calloc(h.nbuckets, sizeof *h.buckets);
    if (!h.buckets) h.per_channel = 0;
  }
}

int hist_enabled(void) { return h.per_channel != 0; }

void hist_restart(ps_id start) {
  hist_clear();
  raise_floor(&h.floor, start);
}

static hist_chan *chan_new(const char *ch, size_t clen, uint64_t hash) {
  hist_chan *c = calloc(1, sizeof *c + clen);
  hist_entry **ring = calloc(h.per_channel, sizeof *ring);
  if (!c || !ring) {
    free(c);
    free(ring);
    return NULL;
  }
  c->hash = hash;
  c->len = clen;
  c->ring = ring;
  c->floor = h.floor; /* everything before is unknown here */
  memcpy(c->name, ch, clen);
  if (h.nchans >= h.nbuckets) grow();
  c->hnext = h.buckets[hash & (h.nbuckets - 1)];
  h.buckets[hash & (h.nbuckets - 1)] = c;
  push_newest(c);
  h.nchans++;
  h.bytes += chan_size(clen);
  return c;
}

int hist_add(const char *ch, size_t clen, ps_id id, const char *msg, size_t mlen, int text) {
  if (!h.per_channel) return -1;
  uint64_t hash = hash_name(ch, clen);
  hist_chan *c = find(ch, clen, hash);
  size_t need = entry_size(mlen) + (c ? 0 : chan_size(clen));
  /* can never fit, even alone in the budget: a known gap */
  if (mlen > h.max_bytes || entry_size(mlen) + chan_size(clen) > h.max_bytes) {
    if (c)
      raise_floor(&c->floor, id);
    else
      raise_floor(&h.floor, id);
    return -1;
  }
  if (c) {
    unlink_lru(c); /* out of the eviction order while room is made */
  } else {
    while (h.oldest && h.nchans >= h.max_channels) drop_chan(h.oldest);
  }
  /* room: older channels first, then this channel's own oldest entries */
  while (h.oldest && h.bytes + need > h.max_bytes) drop_chan(h.oldest);
  if (c) {
    if (c->count == h.per_channel) {
      drop_oldest_entry(c);
    }
    while (c->count && h.bytes + need > h.max_bytes) drop_oldest_entry(c);
    push_newest(c);
  }
  if (h.bytes + need > h.max_bytes) { /* cannot happen (checked above); never exceed */
    if (c)
      raise_floor(&c->floor, id);
    else
      raise_floor(&h.floor, id);
    return -1;
  }
  hist_entry *e = malloc(entry_size(mlen));
  if (!c && e) c = chan_new(ch, clen, hash);
  if (!e || !c) {
    free(e);
    if (c)
      raise_floor(&c->floor, id);
    else
      raise_floor(&h.floor, id);
    return -1;
  }
  e->id = id;
  e->len = mlen;
  e->text = text;
  if (mlen) memcpy(e->data, msg, mlen);
  c->ring[(c->head + c->count) % h.per_channel] = e;
  c->count++;
  h.bytes += entry_size(mlen);
  return 0;
}

int hist_since(const char *ch, size_t clen, ps_id since, hist_visit_fn visit, void *ctx,
               size_t *count) {
  *count = 0;
  if (!h.per_channel) return 0;
  hist_chan *c = find(ch, clen, hash_name(ch, clen));
  if (!c) return ps_id_cmp(since, h.floor) >= 0;
  for (size_t i = 0; i < c->count; i++) {
    const hist_entry *e = c->ring[(c->head + i) % h.per_channel];
    if (ps_id_cmp(e->id, since) <= 0) continue;
    visit(ctx, e->id, e->data, e->len, e->text);
    (*count)++;
  }
  return ps_id_cmp(since, c->floor) >= 0;
}

size_t hist_bytes(void) { return h.bytes; }
size_t hist_channels(void) { return h.nchans; }

size_t hist_messages(const char *ch, size_t clen) {
  if (!h.per_channel) return 0;
  hist_chan *c = find(ch, clen, hash_name(ch, clen));
  return c ? c->count : 0;
}
