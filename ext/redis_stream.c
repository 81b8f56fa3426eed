/* redis_stream: reading the deployment's stream (see redis_eng.h for how
 * the engine's two files share its state, redis.h for the whole design).
 *
 * Owns: the reader's position (eng.last) and how a Redis restart moves it,
 * decoding stream entries, and the duplicate filter (the highest publish
 * counter delivered per publishing process).
 * Must never: write to the command connection, or deliver an entry twice
 * (the filter) or out of the stream's order. Loop thread, lock held. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "psid.h"
#include "redis_eng.h"

/* --- reading the stream ------------------------------------------------------ */

/* A stream entry id is a message id (psid.h parses both). */
static int parse_id(const resp_node *n, ps_id *id) {
  if (n->type != RESP_BULK || n->n < 0) return -1;
  return ps_id_parse(n->str, n->len, id);
}

/* Is (origin, seq) new? Remembers it. The table holds RD_ORIGINS
 * publishers (open addressing, at most half full); when it is full the
 * publisher seen longest ago is forgotten (it can only matter again if it
 * resends after thousands of other publishers appeared). */
static int fresh(uint64_t origin, uint64_t seq) {
  size_t mask = RD_ORIGINS - 1, i = rd_mix64(origin) & mask;
  for (; eng.origins[i].used; i = (i + 1) & mask) {
    if (eng.origins[i].origin == origin) {
      eng.origins[i].seen = eng.st.delivered;
      if (seq <= eng.origins[i].seq) return 0;
      eng.origins[i].seq = seq;
      return 1;
    }
  }
  if (eng.norigins >= RD_ORIGINS / 2) { /* full: rebuild without the one(s) seen longest ago */
    origin_slot *old = malloc(sizeof eng.origins);
    if (old) {
      memcpy(old, eng.origins, sizeof eng.origins);
      uint64_t oldest = UINT64_MAX;
      for (size_t k = 0; k < RD_ORIGINS; k++)
        if (old[k].used && old[k].seen < oldest) oldest = old[k].seen;
      memset(eng.origins, 0, sizeof eng.origins);
      eng.norigins = 0;
      for (size_t k = 0; k < RD_ORIGINS; k++) {
        if (!old[k].used || old[k].seen == oldest) continue;
        size_t j = rd_mix64(old[k].origin) & mask;
        while (eng.origins[j].used) j = (j + 1) & mask;
        eng.origins[j] = old[k];
        eng.norigins++;
      }
      free(old);
    }
    i = rd_mix64(origin) & mask;
    while (eng.origins[i].used) i = (i + 1) & mask;
  }
  eng.origins[i] = (origin_slot){origin, seq, eng.st.delivered, 1};
  eng.norigins++;
  return 1;
}

static int field_is(const resp_node *n, char name) {
  return n->type == RESP_BULK && n->len == 1 && n->str[0] == name;
}

static uint64_t num(const resp_node *n, int base) {
  char tmp[24];
  size_t len = n->len < sizeof tmp - 1 ? n->len : sizeof tmp - 1;
  memcpy(tmp, n->str, len);
  tmp[len] = 0;
  return strtoull(tmp, NULL, base);
}

/* One entry: nodes[0] is [id, [field, value, ...]]. Returns the nodes it
 * spans, or 0 when it is malformed. */
static size_t entry(const resp_node *n, size_t avail) {
  if (avail < 2 || n[0].type != RESP_ARRAY || n[0].n != 2) return 0;
  ps_id id;
  if (parse_id(&n[1], &id)) return 0;
  size_t span = 3;
  if (avail < 3 || n[2].type != RESP_ARRAY) return 0;
  if (n[2].n <= 0) {
    eng.last = id;
    return span;
  }
  size_t k = (size_t)n[2].n;
  if (avail < 3 + k) return 0;
  span += k;
  const resp_node *ch = NULL, *msg = NULL;
  int text = 0, have_origin = 0;
  uint64_t origin = 0, seq = 0;
  for (size_t i = 0; i + 1 < k; i += 2) {
    const resp_node *f = &n[3 + i], *v = &n[4 + i];
    if (v->type != RESP_BULK || v->n < 0) continue;
    if (field_is(f, 'c'))
      ch = v;
    else if (field_is(f, 'm'))
      msg = v;
    else if (field_is(f, 't'))
      text = v->len == 1 && v->str[0] == '1';
    else if (field_is(f, 'o')) {
      origin = num(v, 16);
      have_origin = 1;
    } else if (field_is(f, 's'))
      seq = num(v, 10);
  }
  eng.last = id;
  if (!ch || !msg) return span;
  if (have_origin && !fresh(origin, seq)) {
    eng.st.duplicates++;
    return span;
  }
  eng.st.delivered++;
  ps_publish_id_locked(ch->str, ch->len, msg->str, msg->len, text, id);
  return span;
}

void rd_on_xread(const resp_node *n, size_t count) {
  /* [[key, [entry, ...]]] or nil when the block time passed */
  if (n[0].type == RESP_ARRAY && n[0].n == 1 && count >= 4 && n[1].type == RESP_ARRAY &&
      n[1].n == 2 && n[3].type == RESP_ARRAY) {
    size_t at = 4, left = n[3].n > 0 ? (size_t)n[3].n : 0;
    while (left-- && at < count) {
      size_t span = entry(&n[at], count - at);
      if (!span) break;
      at += span;
    }
  }
  rd_xread();
}

void rd_run_id_of(const resp_node *n, char id[64]) {
  id[0] = 0;
  if (n->type == RESP_BULK && n->n > 0) {
    const char *p = memmem(n->str, n->len, "run_id:", 7);
    if (p) {
      p += 7;
      size_t k = 0;
      while (p < n->str + n->len && *p != '\r' && *p != '\n' && k < 63) id[k++] = *p++;
      id[k] = 0;
    }
  }
}

void rd_on_info(const resp_node *n) {
  char id[64];
  rd_run_id_of(n, id);
  if (!eng.positioned) {
    /* first connect: start at the stream's current end */
    SENDV(&eng.rd, P_REVRANGE, "XREVRANGE", eng.stream, "+", "-", "COUNT", "1");
  } else if (eng.run_id[0] && strcmp(eng.run_id, id) != 0) {
    /* Redis restarted: is its stream a new one (read it from its start) or
     * the old one, persisted (go on from where we were)? Its first entry
     * says. */
    SENDV(&eng.rd, P_FIRST, "XRANGE", eng.stream, "-", "+", "COUNT", "1");
  } else {
    eng.rd.state = L_READY;
    rd_xread();
  }
  memcpy(eng.run_id, id, sizeof id);
}

static int id_after(ps_id a, ps_id b) { return a.ms > b.ms || (a.ms == b.ms && a.seq > b.seq); }

/* After a restart: a stream that is empty or begins after our position is
 * a new one (everything in it is new to us: read from its start; entries
 * we already delivered, resent by their publishers, are dropped by the
 * duplicate filter). One that begins at or before our position survived
 * (AOF or RDB): go on from our position, or we would deliver it again. */
void rd_on_first(const resp_node *n, size_t count) {
  ps_id first = {0, 0};
  int have = n[0].type == RESP_ARRAY && n[0].n >= 1 && count >= 3 && !parse_id(&n[2], &first);
  if (!have || id_after(first, eng.last)) eng.last = (ps_id){0, 0};
  eng.rd.state = L_READY;
  rd_xread();
}

void rd_on_revrange(const resp_node *n, size_t count) {
  ps_id id = {0, 0};
  if (n[0].type == RESP_ARRAY && n[0].n >= 1 && count >= 3) parse_id(&n[2], &id);
  eng.last = id;
  eng.positioned = 1;
  eng.rd.state = L_READY;
  rd_xread();
  rd_send_pubs();
}
