/* redis: see redis.h for what this file owns.
 *
 * The engine is one state machine (`eng.state`), written only here, on the
 * loop thread or under the big lock:
 *
 *   IDLE --rd_start--> WAIT --(next_try)--> CONNECTING --both ready--> UP
 *     any failure in CONNECTING or UP: both connections are dropped, WAIT
 *     with the back-off doubled (reset once UP).
 *
 * Each connection (a `link`) keeps the kinds of the replies it waits for
 * in a ring, in the order the commands went out, so a reply is matched to
 * its command by position (Redis answers in order). A link whose oldest
 * outstanding reply is overdue (a frozen Redis keeps the socket open and
 * says nothing) fails the engine: both links are remade, never waited on.
 *
 * Publish queue: pubs from head (oldest unacknowledged) to tail; `send` is
 * the first not yet written on the current connection. An XADD reply pops
 * the head. A reconnect rewinds `send` to the head: everything not
 * acknowledged goes again, in the same order, with the same (origin, seq),
 * and readers drop the copies. */
#define _GNU_SOURCE
#include "redis.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "pubsub.h"
#include "reactor.h"

#include "redis_eng.h"

struct rd_engine eng;

/* --- logging ----------------------------------------------------------------- */

/* Post one of the engine's events: on one actor, so command callbacks run
 * in the order their replies came, one at a time, even with -t N. */
static int post(int kind, uint64_t conn, void *ptr, uint64_t arg) {
  if (!eng.actor) eng.actor = dsp_actor_new();
  return dsp_post(eng.actor, kind, conn, ptr, arg);
}

static void say(int warning, const char *fmt, ...) {
  char *line = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (post(DSP_RD_LOG, (uint64_t)(warning != 0), line, (uint64_t)n) < 0) free(line);
}

void rd_log_free(char *line) { free(line); }

/* --- replies for the application ------------------------------------------- */

static rd_reply *reply_copy(const char *raw, size_t len, size_t nodes) {
  rd_reply *r = malloc(sizeof *r + nodes * sizeof(resp_node) + len);
  if (!r) return NULL;
  r->nodes = (resp_node *)(r + 1);
  char *data = (char *)(r->nodes + nodes);
  memcpy(data, raw, len);
  size_t used;
  long n = resp_parse(data, len, r->nodes, nodes, &used);
  if (n <= 0) {
    free(r);
    return NULL;
  }
  r->n = (size_t)n;
  return r;
}

static rd_reply *reply_error(const char *text) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "-%s\r\n", text);
  return reply_copy(buf, (size_t)n, 1);
}

void rd_reply_free(rd_reply *r) { free(r); }

static void waiter_release(waiter *w) {
  pthread_mutex_lock(&w->m);
  int left = --w->refs;
  pthread_mutex_unlock(&w->m);
  if (left == 0) {
    rd_reply_free(w->reply);
    pthread_mutex_destroy(&w->m);
    pthread_cond_destroy(&w->cv);
    free(w);
  }
}

/* Hand a command's reply to whoever asked (takes r). */
static void answer(app_cmd *a, rd_reply *r) {
  if (a->w) {
    pthread_mutex_lock(&a->w->m);
    a->w->reply = r;
    a->w->done = 1;
    pthread_cond_signal(&a->w->cv);
    pthread_mutex_unlock(&a->w->m);
    waiter_release(a->w);
  } else if (a->cb && r) {
    if (post(DSP_RD_REPLY, 0, r, a->cb) < 0) rd_reply_free(r);
  } else {
    rd_reply_free(r);
  }
  free(a);
}

/* --- links --------------------------------------------------------------------- */

static void link_on_data(rx_conn *c);
static void link_on_close(rx_conn *c);
static void link_on_shutdown(rx_conn *c);
static const rx_proto link_proto = {
    .on_data = link_on_data, .on_close = link_on_close, .on_shutdown = link_on_shutdown};

static int ring_push(rd_link *l, int kind, app_cmd *a) {
  if (l->r_len == l->r_cap) {
    size_t cap = l->r_cap ? l->r_cap * 2 : 64;
    pend *r = malloc(cap * sizeof *r);
    if (!r) return -1;
    for (size_t i = 0; i < l->r_len; i++) r[i] = l->ring[(l->r_head + i) % l->r_cap];
    free(l->ring);
    l->ring = r;
    l->r_cap = cap;
    l->r_head = 0;
  }
  if (l->r_len == 0) l->wait_since = rx_now_ms();
  l->ring[(l->r_head + l->r_len++) % l->r_cap] = (pend){kind, a};
  return 0;
}

static pend ring_pop(rd_link *l) {
  pend p = l->ring[l->r_head];
  l->r_head = (l->r_head + 1) % l->r_cap;
  l->r_len--;
  return p;
}

/* Write one command and remember what its reply will be. */
static int link_send(rd_link *l, const char *data, size_t len, int kind, app_cmd *a) {
  if (!l->c || ring_push(l, kind, a) < 0) return -1;
  rx_cork(l->c); /* a turn's commands leave in one write */
  return rx_write(l->c, data, len);
}

int rd_link_sendv(rd_link *l, int kind, int argc, const char *const *argv, const size_t *lens) {
  char stack[512];
  size_t need = resp_encode_len(argc, lens);
  char *buf = need <= sizeof stack ? stack : malloc(need);
  if (!buf) return -1;
  size_t n = resp_encode(buf, argc, argv, lens);
  int rc = link_send(l, buf, n, kind, NULL);
  if (buf != stack) free(buf);
  return rc;
}

/* Forget the connection and every reply it owed; in-flight application
 * commands get an error reply (they are not sent again: a command may not
 * be safe to repeat). */
static void link_drop(rd_link *l) {
  if (l->c) {
    rx_set_proto(l->c, NULL, NULL);
    rx_close_now(l->c);
    l->c = NULL;
  }
  while (l->r_len) {
    pend p = ring_pop(l);
    if (p.kind == P_APP) answer(p.cmd, reply_error("ERR iodine: the connection to Redis was lost"));
  }
  l->state = L_DOWN;
  l->in_len = 0;
  resp_scan_reset(&l->sc);
  l->ping_out = 0;
  l->closing = 0;
}

/* --- the publish queue ------------------------------------------------------- */

void rd_send_pubs(void) {
  if (eng.cmd.state != L_READY || !eng.positioned) return;
  while (eng.send && eng.inflight < RD_WINDOW) {
    pub *p = eng.send;
    if (link_send(&eng.cmd, p->data, p->len, P_XADD, NULL) < 0) return;
    eng.inflight += p->len;
    eng.send = p->next;
  }
}

static void send_cmds(void) {
  if (eng.cmd.state != L_READY) return;
  while (eng.cmd_head) {
    app_cmd *a = eng.cmd_head;
    eng.cmd_head = a->next;
    if (!eng.cmd_head) eng.cmd_tail = NULL;
    eng.ncmd--;
    if (link_send(&eng.cmd, a->data, a->len, P_APP, a) < 0) {
      answer(a, reply_error("ERR iodine: could not send the command"));
      return;
    }
  }
}

static void free_queue(void) {
  pub *q = eng.rhead ? eng.rhead : eng.head;
  while (q) {
    pub *p = q;
    q = p->next;
    free(p);
  }
  eng.rhead = eng.head = eng.send = eng.tail = NULL;
  eng.nq = eng.qbytes = eng.inflight = eng.nret = eng.rbytes = 0;
  while (eng.cmd_head) {
    app_cmd *a = eng.cmd_head;
    eng.cmd_head = a->next;
    answer(a, reply_error("ERR iodine: the Redis engine was stopped"));
  }
  eng.cmd_tail = NULL;
  eng.ncmd = 0;
}

/* --- the engine's states ----------------------------------------------------- */

static void fail(const char *why) {
  uint64_t now = rx_now_ms();
  if (eng.state == E_UP) {
    say(1, "redis: connection lost to %s (%s); %zu publish(es) wait in the queue, reconnecting",
        eng.where, why, eng.nq);
    eng.down_since = now;
    eng.episode_logged = 1;
  } else if (!eng.episode_logged) {
    say(1, "redis: cannot connect to %s (%s); retrying with back-off (%zu publish(es) queued)",
        eng.where, why, eng.nq);
    eng.episode_logged = 1;
  }
  link_drop(&eng.cmd);
  link_drop(&eng.rd);
  eng.send = eng.head; /* everything unacknowledged goes again, in order */
  eng.inflight = 0;
  eng.st.reconnects++;
  eng.state = E_WAIT;
  eng.next_try = now + eng.backoff;
  eng.backoff = eng.backoff * 2 > eng.backoff_max ? eng.backoff_max : eng.backoff * 2;
}

static void handshake(rd_link *l) {
  l->hs_left = 0;
  if (eng.password) {
    const char *argv[3];
    size_t lens[3];
    int argc = 0;
    argv[argc] = "AUTH";
    lens[argc++] = 4;
    if (eng.user) {
      argv[argc] = eng.user;
      lens[argc++] = eng.user_len;
    }
    argv[argc] = eng.password;
    lens[argc++] = eng.password_len;
    rd_link_sendv(l, P_HS, argc, argv, lens);
    l->hs_left++;
  }
  if (eng.db) {
    SENDV(l, P_HS, "SELECT", eng.dbtext);
    l->hs_left++;
  }
  SENDV(l, P_INFO, "INFO", "server"); /* its run_id: did Redis restart? */
}

static int link_open(rd_link *l) {
  l->c = rx_connect((const struct sockaddr *)&eng.addr, eng.addrlen, &link_proto, l);
  if (!l->c) return -1;
  l->state = L_HANDSHAKE;
  handshake(l);
  return 0;
}

static void try_connect(void) {
  eng.state = E_CONNECTING;
  if (link_open(&eng.cmd) < 0 || link_open(&eng.rd) < 0) fail(strerror(errno));
}

static void became_ready(void) {
  if (eng.state != E_CONNECTING || eng.cmd.state != L_READY || eng.rd.state != L_READY) return;
  eng.state = E_UP;
  eng.backoff = eng.backoff_min;
  eng.next_ping = rx_now_ms() + eng.ping_ms;
  if (!eng.ever_up)
    say(0, "redis: connected to %s (stream %s)", eng.where, eng.stream);
  else if (eng.episode_logged)
    say(0, "redis: connected to %s again after %.1f s; sending %zu queued publish(es)", eng.where,
        (double)(rx_now_ms() - eng.down_since) / 1000.0, eng.nq);
  eng.ever_up = 1;
  eng.episode_logged = 0;
}

void rd_xread(void) {
  char id[48];
  snprintf(id, sizeof id, "%" PRIu64 "-%" PRIu64, eng.last.ms, eng.last.seq);
  char block[16];
  snprintf(block, sizeof block, "%u", eng.block_ms);
  SENDV(&eng.rd, P_XREAD, "XREAD", "COUNT", XREAD_COUNT, "BLOCK", block, "STREAMS", eng.stream, id);
}

/* Drop retained publishes past the count or byte bound (half the queue's),
 * and, while connected, those acknowledged longer ago than a reply
 * deadline (every live reader has read them by then, or is being
 * remade). While disconnected nothing ages out: the entries acknowledged
 * just before Redis died are the ones a restart may have lost. */
static void prune(uint64_t now) {
  int up = eng.state == E_UP;
  while (eng.rhead && ((up && eng.rhead->acked + eng.timeout_ms < now) ||
                       eng.nret > eng.queue_max || eng.rbytes > eng.queue_bytes / 2)) {
    pub *p = eng.rhead;
    eng.rhead = p->next == eng.head ? NULL : p->next;
    if (eng.tail == p) eng.tail = NULL;
    eng.nret--;
    eng.rbytes -= p->len;
    free(p);
  }
}

/* The command connection's INFO: when Redis restarted without keeping its
 * data, the entries it acknowledged last may never have reached a reader
 * that was between two XREADs when it died. Send the retained ones again,
 * before everything else and in order: a reader that has them drops the
 * copies (duplicate filter), one that missed them delivers them now. */
static void on_cmd_info(const resp_node *n) {
  char id[64];
  rd_run_id_of(n, id);
  if (eng.cmd_run_id[0] && strcmp(eng.cmd_run_id, id) != 0 && eng.rhead) {
    eng.head = eng.rhead;
    eng.rhead = NULL;
    eng.nq += eng.nret;
    eng.qbytes += eng.rbytes;
    eng.nret = eng.rbytes = 0;
    for (pub *p = eng.head; p; p = p->next) p->acked = 0;
    eng.send = eng.head;
  }
  memcpy(eng.cmd_run_id, id, sizeof id);
}

/* --- replies ---------------------------------------------------------------- */

static void end_refusing(void) {
  if (eng.refusing) {
    say(1, "redis: the publish queue was full: %" PRIu64 " publish(es) refused", eng.refusing);
    eng.refusing = 0;
  }
}

/* One complete reply at raw[0..len) on link l. Returns -1 when the engine
 * failed (l is gone). */
static int on_reply(rd_link *l, const char *raw, size_t len, size_t nodes) {
  if (!l->r_len) {
    fail("a reply nobody asked for");
    return -1;
  }
  pend p = ring_pop(l);
  l->wait_since = rx_now_ms();
  if (p.kind == P_APP) {
    answer(p.cmd, reply_copy(raw, len, nodes));
    return 0;
  }
  if (nodes > l->nodes_cap) {
    resp_node *nn = realloc(l->nodes, nodes * sizeof *nn);
    if (!nn) {
      fail("out of memory");
      return -1;
    }
    l->nodes = nn;
    l->nodes_cap = nodes;
  }
  size_t used;
  long cnt = resp_parse(raw, len, l->nodes, l->nodes_cap, &used);
  if (cnt <= 0) {
    fail("a reply that does not parse");
    return -1;
  }
  const resp_node *n = l->nodes;
  if (n->type == RESP_ERROR && p.kind != P_XADD) {
    char why[200];
    snprintf(why, sizeof why, "%s answered: %.*s",
             p.kind == P_HS ? "the handshake (AUTH/SELECT)" : "a command",
             (int)(n->len > 120 ? 120 : n->len), n->str);
    fail(why);
    return -1;
  }
  switch (p.kind) {
  case P_HS: l->hs_left--; break;
  case P_PING: l->ping_out = 0; break;
  case P_XADD: {
    pub *q = eng.head;
    if (!q) break;
    eng.head = q->next;
    if (eng.send == q) eng.send = q->next; /* cannot happen; kept safe */
    eng.nq--;
    eng.qbytes -= q->len;
    eng.inflight = eng.inflight > q->len ? eng.inflight - q->len : 0;
    /* kept a while (see on_cmd_info), not freed */
    q->acked = rx_now_ms();
    if (!eng.rhead) eng.rhead = q;
    eng.nret++;
    eng.rbytes += q->len;
    prune(q->acked);
    if (eng.refusing && eng.nq < eng.queue_max) end_refusing(); /* the episode is over */
    if (n->type == RESP_ERROR && eng.xadd_errors++ == 0)
      say(1, "redis: XADD failed (%.*s); that message is dropped (logged once)",
          (int)(n->len > 120 ? 120 : n->len), n->str);
    rd_send_pubs();
    if (l->closing && !l->r_len && !eng.head) link_drop(l);
    break;
  }
  case P_INFO:
    if (l->reader) {
      rd_on_info(n);
    } else {
      on_cmd_info(n);
      l->state = L_READY;
      send_cmds();
      rd_send_pubs();
    }
    became_ready();
    break;
  case P_REVRANGE:
    rd_on_revrange(n, (size_t)cnt);
    became_ready();
    break;
  case P_FIRST:
    rd_on_first(n, (size_t)cnt);
    became_ready();
    break;
  case P_XREAD: rd_on_xread(n, (size_t)cnt); break;
  }
  return 0;
}

static void link_on_data(rx_conn *c) {
  rd_link *l = c->udata;
  for (;;) {
    if (l->in_cap - l->in_len < READ_CHUNK / 4) {
      size_t cap = l->in_cap ? l->in_cap * 2 : READ_CHUNK;
      if (cap > RD_MAX_REPLY + READ_CHUNK) {
        fail("a reply larger than RD_MAX_REPLY");
        return;
      }
      char *in = realloc(l->in, cap);
      if (!in) {
        fail("out of memory");
        return;
      }
      l->in = in;
      l->in_cap = cap;
    }
    long n = rx_read(c, l->in + l->in_len, l->in_cap - l->in_len);
    if (n == 0) return;
    if (n < 0) {
      fail("Redis closed the connection");
      return;
    }
    l->in_len += (size_t)n;
    size_t off = 0;
    while (off < l->in_len) {
      long r = resp_scan(&l->sc, l->in + off, l->in_len - off);
      if (r == -2) break;
      if (r < 0) {
        fail("a malformed reply");
        return;
      }
      size_t nodes = l->sc.nodes;
      resp_scan_reset(&l->sc);
      if (on_reply(l, l->in + off, (size_t)r, nodes) < 0) return;
      off += (size_t)r;
      if (!l->c) return; /* closed after its last reply (shutdown) */
    }
    if (off) {
      memmove(l->in, l->in + off, l->in_len - off);
      l->in_len -= off;
    }
  }
}

static void link_on_close(rx_conn *c) {
  rd_link *l = c->udata;
  if (!l || l->c != c) return;
  l->c = NULL;
  if (eng.stopping) {
    link_drop(l);
    return;
  }
  fail("the connection closed");
}

static void link_on_shutdown(rx_conn *c) {
  rd_link *l = c->udata;
  eng.stopping = 1;
  if (l->reader || eng.state != E_UP || (!eng.head && !l->r_len)) {
    link_drop(l); /* nothing to wait for, or nobody to wait on */
    return;
  }
  l->closing = 1; /* acknowledgements still to come: close once they have (or at the grace) */
}

/* --- the tick: deadlines, reconnects, PINGs --------------------------------- */

static void check_link(rd_link *l, uint64_t now) {
  if (!l->c) return;
  uint64_t limit = eng.timeout_ms;
  if (l->reader && l->state == L_READY) limit += eng.block_ms;
  if ((l->r_len || l->state == L_HANDSHAKE) && now - l->wait_since > limit) {
    char why[96];
    snprintf(why, sizeof why, "no reply for %" PRIu64 " ms on the %s connection",
             now - l->wait_since, l->name);
    fail(why);
  }
}

static void tick(void *arg) {
  (void)arg;
  if (!eng.configured || !eng.started || eng.stopping || rx_stopping()) return;
  uint64_t now = rx_now_ms();
  prune(now);
  if (eng.state == E_WAIT && now >= eng.next_try) {
    try_connect();
    return;
  }
  if (eng.state == E_CONNECTING || eng.state == E_UP) {
    check_link(&eng.cmd, now);
    if (eng.state == E_WAIT) return;
    check_link(&eng.rd, now);
    if (eng.state == E_WAIT) return;
  }
  if (eng.state == E_UP && now >= eng.next_ping && !eng.cmd.ping_out) {
    SENDV(&eng.cmd, P_PING, "PING");
    eng.cmd.ping_out = 1;
    eng.next_ping = now + eng.ping_ms;
  }
}

/* --- the public side ---------------------------------------------------------- */

static void new_origin(void) {
  uint64_t o = 0;
  if (getrandom(&o, sizeof o, 0) != (ssize_t)sizeof o) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    o = rd_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid());
  }
  eng.origin = o;
  eng.seq = 0;
  snprintf(eng.origin_hex, sizeof eng.origin_hex, "%016" PRIx64, o);
}

static char *dup_str(const char *s, size_t *len) {
  if (!s) return NULL;
  *len = strlen(s);
  return strdup(s);
}

static void start_locked(void);

int rd_configure(const rd_settings *s) {
  struct sockaddr_storage addr;
  unsigned addrlen;
  memset(&addr, 0, sizeof addr);
  if (!strncmp(s->host, "unix:", 5)) {
    struct sockaddr_un *un = (struct sockaddr_un *)&addr;
    if (strlen(s->host + 5) >= sizeof un->sun_path) return -ENAMETOOLONG;
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, s->host + 5);
    addrlen = sizeof *un;
  } else {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    if (getaddrinfo(s->host, port, &hints, &res) || !res) return -EHOSTUNREACH;
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    addrlen = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
  }
  rx_lock();
  if (eng.configured) {
    link_drop(&eng.cmd);
    link_drop(&eng.rd);
    free(eng.user);
    free(eng.password);
    free(eng.stream);
  }
  eng.addr = addr;
  eng.addrlen = addrlen;
  eng.user = dup_str(s->user, &eng.user_len);
  eng.password = dup_str(s->password, &eng.password_len);
  eng.stream = dup_str(s->stream ? s->stream : "iodine:pubsub", &eng.stream_len);
  eng.db = s->db;
  snprintf(eng.dbtext, sizeof eng.dbtext, "%d", s->db);
  snprintf(eng.maxlen, sizeof eng.maxlen, "%" PRIu64, s->stream_max ? s->stream_max : 100000);
  eng.ping_ms = s->ping_ms ? s->ping_ms : 30000;
  eng.timeout_ms = s->timeout_ms ? s->timeout_ms : 5000;
  eng.backoff_min = s->backoff_min_ms ? s->backoff_min_ms : 50;
  eng.backoff_max = s->backoff_max_ms ? s->backoff_max_ms : 5000;
  eng.block_ms = s->block_ms ? s->block_ms : 1000;
  eng.queue_max = s->queue_max ? s->queue_max : 10000;
  eng.queue_bytes = s->queue_bytes ? s->queue_bytes : (64u << 20);
  if (!strncmp(s->host, "unix:", 5))
    snprintf(eng.where, sizeof eng.where, "%s/%d", s->host, s->db);
  else
    snprintf(eng.where, sizeof eng.where, "%s:%d/%d", s->host, s->port, s->db);
  eng.cmd.name = "command";
  eng.rd.name = "stream";
  eng.rd.reader = 1;
  eng.backoff = eng.backoff_min;
  if (!eng.configured) new_origin();
  eng.configured = 1;
  eng.send = eng.head;
  eng.inflight = 0;
  if (eng.started) {
    eng.state = E_WAIT;
    eng.next_try = 0;
  } else if (eng.loop) {
    start_locked();
  }
  rx_unlock();
  return 0;
}

void rd_unconfigure(void) {
  rx_lock();
  if (eng.configured) {
    eng.stopping = 1;
    link_drop(&eng.cmd);
    link_drop(&eng.rd);
    free_queue();
    eng.configured = 0;
    eng.state = E_IDLE;
  }
  rx_unlock();
}

static void tick_done(void *arg) {
  (void)arg;
  eng.tick = 0;
}

/* Connect from the next tick on (lock held). */
static void start_locked(void) {
  eng.started = 1;
  eng.stopping = 0;
  if (eng.state == E_IDLE || eng.state == E_WAIT) {
    eng.state = E_WAIT;
    eng.next_try = 0;
  }
  if (!eng.tick) eng.tick = rx_timer(0, TICK_MS, 0, tick, tick_done, NULL);
}

void rd_start(void) {
  rx_lock();
  eng.loop = 1; /* an engine configured from now on (by the app, while serving) starts too */
  if (eng.configured) start_locked();
  rx_unlock();
}

void rd_after_fork(void) {
  /* The parent's connections are gone (rx_after_fork closed their fds
   * without callbacks); its queue is its own business. */
  eng.cmd.c = NULL;
  eng.rd.c = NULL;
  eng.cmd.r_len = eng.rd.r_len = 0;
  eng.cmd.state = eng.rd.state = L_DOWN;
  eng.cmd.in_len = eng.rd.in_len = 0;
  resp_scan_reset(&eng.cmd.sc);
  resp_scan_reset(&eng.rd.sc);
  free_queue();
  memset(eng.origins, 0, sizeof eng.origins);
  eng.norigins = 0;
  eng.positioned = 0;
  eng.ever_up = 0;
  eng.run_id[0] = 0;
  eng.cmd_run_id[0] = 0;
  eng.last = (ps_id){0, 0};
  eng.started = 0;
  eng.loop = 0;
  eng.actor = NULL; /* the parent's (its queue state is the parent's): a new one on first use */
  eng.stopping = 0;
  eng.tick = 0; /* a parent's tick, if any, is inherited: tick() is harmless */
  eng.state = E_IDLE;
  eng.refusing = 0;
  memset(&eng.st, 0, sizeof eng.st);
  if (eng.configured) new_origin();
}

int rd_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text) {
  rx_lock();
  if (!eng.configured) {
    rx_unlock();
    return -2;
  }
  char seq[24];
  int seqlen = snprintf(seq, sizeof seq, "%" PRIu64, eng.seq + 1);
  const char *argv[] = {"XADD", eng.stream,     "MAXLEN", "~", eng.maxlen, "*",
                        "c",    channel,        "m",      msg, "t",        text ? "1" : "0",
                        "o",    eng.origin_hex, "s",      seq};
  size_t lens[] = {4, eng.stream_len, 6, 1, strlen(eng.maxlen), 1, 1, clen, 1, mlen, 1, 1, 1, 16,
                   1, (size_t)seqlen};
  size_t need = resp_encode_len(16, lens);
  if (eng.nq >= eng.queue_max || eng.qbytes + need > eng.queue_bytes) {
    if (eng.refusing++ == 0)
      say(1,
          "redis: the publish queue is full (%zu publish(es), %zu bytes): publishes are "
          "refused until Redis takes them",
          eng.nq, eng.qbytes);
    eng.st.refused++;
    rx_unlock();
    return -1;
  }
  pub *p = malloc(sizeof *p + need);
  if (!p) {
    rx_unlock();
    return -1;
  }
  end_refusing();
  p->next = NULL;
  p->acked = 0;
  p->len = resp_encode(p->data, 16, argv, lens);
  eng.seq++;
  if (eng.tail) eng.tail->next = p;
  eng.tail = p;
  if (!eng.head) eng.head = p;
  if (!eng.send) eng.send = p;
  eng.nq++;
  eng.qbytes += p->len;
  rd_send_pubs();
  rx_unlock();
  return 0;
}

static app_cmd *make_cmd(int argc, const char *const *argv, const size_t *lens) {
  size_t need = resp_encode_len(argc, lens);
  app_cmd *a = malloc(sizeof *a + need);
  if (!a) return NULL;
  a->next = NULL;
  a->cb = 0;
  a->w = NULL;
  a->len = resp_encode(a->data, argc, argv, lens);
  return a;
}

static int queue_cmd(app_cmd *a) {
  if (!eng.configured) return -2;
  if (eng.ncmd >= eng.queue_max) return -1;
  if (eng.cmd.state == L_READY && !eng.cmd_head) {
    if (link_send(&eng.cmd, a->data, a->len, P_APP, a) < 0)
      answer(a, reply_error("ERR iodine: could not send the command"));
    return 0;
  }
  if (eng.cmd_tail)
    eng.cmd_tail->next = a;
  else
    eng.cmd_head = a;
  eng.cmd_tail = a;
  eng.ncmd++;
  return 0;
}

int rd_cmd(int argc, const char *const *argv, const size_t *lens, uint64_t callback) {
  if (argc < 1) return -1;
  app_cmd *a = make_cmd(argc, argv, lens);
  if (!a) return -1;
  a->cb = callback;
  rx_lock();
  int rc = queue_cmd(a);
  rx_unlock();
  if (rc < 0) free(a);
  return rc;
}

rd_reply *rd_cmd_wait(int argc, const char *const *argv, const size_t *lens, uint32_t timeout_ms,
                      int *err) {
  *err = 0;
  if (rx_in_loop_thread()) {
    *err = -4;
    return NULL;
  }
  if (argc < 1) {
    *err = -1;
    return NULL;
  }
  app_cmd *a = make_cmd(argc, argv, lens);
  waiter *w = calloc(1, sizeof *w);
  if (!a || !w) {
    free(a);
    free(w);
    *err = -1;
    return NULL;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&w->m, NULL);
  w->refs = 2; /* the caller and the command */
  a->w = w;
  rx_lock();
  int rc = queue_cmd(a);
  rx_unlock();
  if (rc < 0) {
    free(a);
    w->refs = 1;
    waiter_release(w);
    *err = rc;
    return NULL;
  }
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  rd_reply *r = NULL;
  pthread_mutex_lock(&w->m);
  while (!w->done)
    if (pthread_cond_timedwait(&w->cv, &w->m, &until) == ETIMEDOUT) break;
  if (w->done) {
    r = w->reply;
    w->reply = NULL;
  } else {
    *err = -3;
  }
  pthread_mutex_unlock(&w->m);
  waiter_release(w);
  return r;
}

void rd_get_stats(rd_stats *out) {
  rx_lock();
  eng.st.configured = eng.configured;
  eng.st.connected = eng.state == E_UP;
  eng.st.queued = eng.nq;
  eng.st.queued_bytes = eng.qbytes;
  eng.st.origin = eng.origin;
  *out = eng.st;
  rx_unlock();
}
