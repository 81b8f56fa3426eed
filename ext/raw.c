/* raw: see raw.h for what this file owns.
 *
 * Reading copies each read into a message of its own (one malloc per read,
 * sized to what arrived) from a buffer shared by every raw connection of
 * the process (used only inside on_data, under the big lock), so an idle
 * connection holds no read buffer. */
#define _GNU_SOURCE
#include "raw.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "dispatch.h"
#include "http.h"
#include "pubsub.h"
#include "reactor.h"
#include "tls.h"
#include "upgrade.h"
#include "ws_client.h"

#define RBUF_MAX 65536
static char shared[RBUF_MAX];
/* Per-message bookkeeping counted against the input budget, so a flood of
 * one-byte reads is bounded too. */
#define MSG_OVERHEAD 64

/* raw.h's diagram. raw_to is the only writer of the state, and of
 * up.closing (set on CLOSE_SENT and kept: pub/sub and the client calls
 * read it). */
static const unsigned raw_moves[RAW_NSTATES] = {
    [RAW_CONNECTING] = 1u << RAW_OPEN,
    [RAW_OPEN] = 1u << RAW_CLOSE_SENT | 1u << RAW_EOF,
    [RAW_CLOSE_SENT] = 1u << RAW_EOF,
    [RAW_EOF] = 0,
};

bool raw_may(raw_state from, raw_state to) {
  return from < RAW_NSTATES && to < RAW_NSTATES && (raw_moves[from] >> to & 1u);
}

/* A WebSocket client's state (raw_ws_opts). CONNECTING lasts until the
 * server's 101 has been checked; the handshake shares the connect's
 * deadline. */
typedef struct raw_ws {
  char *request; /* sent once connected, then freed */
  size_t request_len;
  char accept[32];
  char *offered;
  char chosen[128];
  char *head; /* the response head so far (< WSC_MAX_HEAD) */
  size_t head_len;
  wsc_reader rd;
  unsigned ping_out : 1;
} raw_ws;

#define WS_CLOSE_WAIT_MS 2000 /* after our Close, for the server's */

typedef struct raw_conn {
  up_conn up; /* first: upgrade.c casts udata to it */
  rx_conn *c;
  http_settings own; /* a client connection's settings (up.set points here) */
  raw_state state;   /* written by raw_to alone */
  size_t inflight;   /* bytes posted to the application, not yet done */
  uint32_t idle_ms;  /* the idle limit once open */
  uint64_t token;    /* DSP_RAW_BIND's arg */
  unsigned in_paused : 1, out_paused : 1, tls : 1;
  raw_ws *ws;       /* a WebSocket client, or NULL: raw bytes */
  char reason[160]; /* why it ended, for DSP_RAW_CLOSE ("" until known) */
} raw_conn;

static const rx_proto raw_proto;
static const up_ops raw_ops;

/* The output cap (max_pending) must hold whatever an echo of everything in
 * flight adds to a queue we stopped reading at, so the three shares below
 * add up to under the cap: reading stops while the application has more
 * than a quarter of it unhandled (in_budget), or while this connection's
 * own output is over a quarter (out_mark: the peer is not taking what it
 * asked for, and reading on would only grow the queue), and one read is at
 * most an eighth. An application that writes more than it reads can still
 * reach the cap, and is then cut off (up_room). */
static size_t in_budget(const raw_conn *r) { return r->up.set->max_pending / 4; }
static size_t out_mark(const raw_conn *r) { return r->up.set->max_pending / 4; }
static size_t read_size(const raw_conn *r) {
  size_t n = r->up.set->max_pending / 8;
  return n > RBUF_MAX ? RBUF_MAX : n < 1024 ? 1024 : n;
}

static void why(raw_conn *r, const char *fmt, const char *detail) {
  if (r->reason[0]) return; /* the first cause is the one worth telling */
  snprintf(r->reason, sizeof r->reason, fmt, detail ? detail : "");
}

static void raw_to(raw_conn *r, raw_state to) {
  assert(raw_may(r->state, to));
  r->state = to;
  if (to == RAW_CLOSE_SENT) r->up.closing = 1;
}

static void opened(raw_conn *r) {
  raw_to(r, RAW_OPEN);
  r->c->timeout_ms = r->idle_ms;
  rx_touch(r->c);
  dsp_post(r->up.actor, DSP_OPEN, r->c->id, NULL, 0);
}

/* --- WebSocket client frames (r->ws) ---------------------------------------- */

static int ws_frame(raw_conn *r, int op, const void *data, size_t len) {
  uint8_t mask[4];
  if (getrandom(mask, sizeof mask, GRND_NONBLOCK) != (ssize_t)sizeof mask) {
    uint64_t x = rx_now_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)r; /* no entropy yet */
    memcpy(mask, &x, 4);
  }
  uint8_t *buf = malloc(WS_HEAD_MAX + len);
  if (!buf) return -1;
  size_t hl = wsc_head_write(buf, op, len, mask);
  if (len) memcpy(buf + hl, data, len);
  ws_unmask(buf + hl, len, mask, 0); /* masking is the same XOR */
  int rc = rx_write(r->c, buf, hl + len);
  free(buf);
  return rc;
}

static void ws_send_close_frame(raw_conn *r, unsigned code) {
  if (r->state != RAW_OPEN || rx_closed(r->c)) return;
  rx_release(r->c); /* output held back for a batch (pub/sub runs) goes first */
  raw_to(r, RAW_CLOSE_SENT);
  uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  ws_frame(r, WS_OP_CLOSE, p, code ? 2 : 0);
  r->c->timeout_ms = WS_CLOSE_WAIT_MS;
  rx_touch(r->c);
}

static void post_data(raw_conn *r, const void *p, size_t n, int text) {
  raw_msg *m = malloc(sizeof *m + n);
  if (!m) {
    why(r, "out of memory%s", NULL);
    rx_close_now(r->c);
    return;
  }
  m->conn = r->c->id;
  m->len = n;
  m->text = text;
  if (n) memcpy(m->data, p, n);
  r->inflight += m->len + MSG_OVERHEAD;
  if (dsp_post(r->up.actor, DSP_RAW_DATA, r->c->id, m, 0)) {
    r->inflight -= m->len + MSG_OVERHEAD;
    free(m);
  }
}

static void opened(raw_conn *r);

/* Frames (or, first, the handshake response) from the server. */
static void ws_input(raw_conn *r, const uint8_t *p, size_t n) {
  raw_ws *ws = r->ws;
  rx_conn *c = r->c;
  if (r->state == RAW_CONNECTING) {
    size_t room = WSC_MAX_HEAD - ws->head_len;
    size_t take = n < room ? n : room;
    if (!ws->head && !(ws->head = malloc(WSC_MAX_HEAD))) {
      why(r, "out of memory%s", NULL);
      rx_close_now(c);
      return;
    }
    memcpy(ws->head + ws->head_len, p, take);
    ws->head_len += take;
    const char *err = NULL;
    long h = wsc_response(ws->head, ws->head_len, ws->accept, ws->offered, ws->chosen,
                          sizeof ws->chosen, &err);
    if (h == 0) return;
    if (h < 0) {
      why(r, "%s", err);
      rx_close_now(c);
      return;
    }
    /* frames may have come right behind the head */
    size_t behind = ws->head_len - (size_t)h;
    char *head = ws->head;
    ws->head = NULL;
    opened(r);
    uint8_t rest[WSC_MAX_HEAD];
    memcpy(rest, head + h, behind);
    free(head);
    if (behind) ws_input(r, rest, behind);
    if (take < n && !rx_closed(c)) ws_input(r, p + take, n - take);
    return;
  }
  while (n && !rx_closed(c)) {
    wsc_event ev;
    size_t used = 0;
    int got = wsc_feed(&ws->rd, p, n, r->up.set->ws_max_msg, &used, &ev);
    p += used;
    n -= used;
    if (!got) return;
    switch (ev.kind) {
    case WSC_MESSAGE:
      if (r->state == RAW_OPEN) post_data(r, ev.data, ev.len, ev.text);
      free(ev.data);
      break;
    case WSC_PING:
      if (r->state == RAW_OPEN && up_room(c, &r->up, ev.len + WS_HEAD_MAX) == 0)
        ws_frame(r, WS_OP_PONG, ev.data, ev.len);
      break;
    case WSC_PONG: break; /* arriving was the point (ping_out is reset by any input) */
    case WSC_CLOSE:
      if (r->state == RAW_OPEN) {
        char code[48];
        snprintf(code, sizeof code, "%u", ev.code);
        why(r, "peer sent Close %s", ev.code ? code : "without a code");
        ws_send_close_frame(r, ev.code); /* echo it (RFC 6455 5.5.1) */
      }
      rx_close(c); /* the server closes the TCP connection first, or we do now */
      return;
    default: { /* WSC_ERROR: the server broke the protocol */
      char code[48];
      snprintf(code, sizeof code, "%u", ev.code);
      why(r, "protocol error: Close %s sent", code);
      ws_send_close_frame(r, ev.code);
      rx_close(c);
      return;
    }
    }
  }
}

/* Bytes can flow (connected, TLS done): a WebSocket client sends its
 * handshake and opens only on the server's 101; raw bytes open now. */
static void connected(raw_conn *r) {
  if (!r->ws) {
    opened(r);
    return;
  }
  if (r->ws->request) {
    rx_write(r->c, r->ws->request, r->ws->request_len);
    free(r->ws->request);
    r->ws->request = NULL;
  }
}

/* The peer's input is over (FIN, reset, or a failed TLS handshake). */
static void input_over(raw_conn *r) {
  rx_conn *c = r->c;
  if (r->state == RAW_CONNECTING) { /* the TLS or WebSocket handshake did not finish */
    const char *v = r->tls ? tls_verify_error(c) : NULL;
    if (v)
      why(r, "tls: certificate verify failed: %s", v);
    else if (r->tls && !tls_handshake_done(c))
      why(r, "tls: handshake failed%s", NULL);
    else
      why(r, "handshake: the server closed the connection%s", NULL);
    rx_close_now(c);
    return;
  }
  raw_to(r, RAW_EOF);
  why(r, "peer closed%s", NULL);
  /* What the peer sent is still the application's to answer: close once
   * it has handled it (raw_msg_done) and our answers are flushed. */
  if (!r->inflight) rx_close(c);
}

static void on_data(rx_conn *c) {
  raw_conn *r = c->udata;
  while (!rx_closed(c) && r->state != RAW_EOF) {
    if (r->inflight > in_budget(r)) {
      r->in_paused = 1;
      return;
    }
    if (c->out_bytes > out_mark(r)) {
      r->out_paused = 1;
      return;
    }
    long n = rx_read(c, shared, read_size(r));
    if (r->state == RAW_CONNECTING && r->tls && tls_handshake_done(c) && !r->ws) opened(r);
    if (r->state == RAW_CONNECTING && r->tls && r->ws && r->ws->request && tls_handshake_done(c))
      connected(r);
    if (n == 0) return;
    if (n < 0) {
      input_over(r);
      return;
    }
    if (r->ws) {
      r->ws->ping_out = 0;
      ws_input(r, (const uint8_t *)shared, (size_t)n);
      continue;
    }
    post_data(r, shared, (size_t)n, 0);
  }
}

static void on_connect(rx_conn *c, int err) {
  raw_conn *r = c->udata;
  if (err) {
    why(r, "connect: %s", strerror(err));
    rx_close_now(c);
  } else if (r->tls) {
    rx_resume(c); /* the first read sends the ClientHello */
  } else {
    connected(r);
  }
}

static void on_timeout(rx_conn *c) {
  raw_conn *r = c->udata;
  if (r->ws && r->up.closing) {
    rx_close_now(c); /* the server never answered our Close */
  } else if (r->ws && r->state == RAW_OPEN && !r->ws->ping_out) {
    r->ws->ping_out = 1; /* silent for a period: ask; a second one ends it */
    ws_frame(r, WS_OP_PING, NULL, 0);
  } else if (r->state == RAW_CONNECTING) {
    why(r, "connect timeout%s", NULL);
    rx_close_now(c);
  } else if (rx_closing(c)) {
    rx_close_now(c); /* a whole period without flushing: not coming back */
  } else {
    why(r, "idle timeout%s", NULL);
    rx_close(c);
  }
}

static void on_shutdown(rx_conn *c) {
  raw_conn *r = c->udata;
  why(r, "server stopping%s", NULL);
  if (r->state == RAW_CONNECTING)
    rx_close_now(c);
  else
    dsp_post(r->up.actor, DSP_SHUTDOWN, c->id, NULL, 0); /* then up_close */
}

static void on_drained(rx_conn *c) {
  raw_conn *r = c->udata;
  if (r->out_paused) {
    r->out_paused = 0;
    rx_resume(c);
  }
  if (r->up.want_drained && r->state != RAW_CONNECTING && !r->up.closing)
    dsp_post(r->up.actor, DSP_DRAINED, c->id, NULL, 0);
}

static void on_close(rx_conn *c) {
  raw_conn *r = c->udata;
  ps_drop_conn(&r->up); /* subscriptions end with the connection */
  why(r,
      r->state == RAW_CONNECTING ? "closed before connecting%s"
      : rx_peer_gone(c)          ? "peer closed%s" /* a reset while we wrote */
                                 : "closed%s",
      NULL);
  if (r->ws) {
    wsc_reader_free(&r->ws->rd);
    free(r->ws->request);
    free(r->ws->offered);
    free(r->ws->head);
    free(r->ws);
  }
  char *text = strdup(r->reason);
  dsp_post(r->up.actor, DSP_RAW_CLOSE, c->id, text, 0);
  dsp_actor_release(r->up.actor);
  free(r);
}

static const rx_proto raw_proto = {
    .on_data = on_data,
    .on_drained = on_drained,
    .on_timeout = on_timeout,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
    .on_connect = on_connect,
};

rx_conn *raw_attach(int fd, const http_settings *s, const char *peer, uint16_t port) {
  (void)peer;
  (void)port;
  raw_conn *r = calloc(1, sizeof *r);
  dsp_actor *a = r ? dsp_actor_new() : NULL;
  rx_conn *c = a ? rx_attach(fd, &raw_proto, r) : NULL;
  if (!c) {
    if (a) dsp_actor_release(a);
    free(r);
    return NULL;
  }
  r->c = c;
  r->idle_ms = s->ping_ms;
  r->token = (uint64_t)s->tag;
  if (s->tls && tls_attach(c, s->tls)) {
    dsp_actor_release(a);
    rx_set_proto(c, NULL, NULL);
    free(r);
    rx_close_now(c);
    return c; /* closed: the reactor owns the fd now */
  }
  dsp_post(a, DSP_RAW_BIND, c->id, NULL, r->token);
  /* up_adopt posts DSP_OPEN, sets the idle limit and starts reading */
  up_adopt(c, &r->up, &raw_ops, s, a, &raw_proto, 0);
  raw_to(r, RAW_OPEN);
  return c;
}

static int post_failed(uint64_t token, const char *reason) {
  char *text = strdup(reason);
  if (!text) return -1;
  if (dsp_post(NULL, DSP_RAW_FAILED, 0, text, token)) {
    free(text);
    return -1;
  }
  return 0;
}

int raw_fail(uint64_t token, const char *reason) { return post_failed(token, reason); }

/* A numeric address (or a Unix path) as a sockaddr. */
static int make_addr(const char *addr, int port, struct sockaddr_storage *ss, unsigned *len) {
  memset(ss, 0, sizeof *ss);
  if (!strncmp(addr, "unix:", 5)) {
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    size_t n = strlen(addr + 5);
    if (!n || n >= sizeof un->sun_path) return -1;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, addr + 5, n + 1);
    *len = (unsigned)sizeof *un;
    return 0;
  }
  if (port <= 0 || port > 65535) return -1;
  struct sockaddr_in *in = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    *len = (unsigned)sizeof *in;
    return 0;
  }
  if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *len = (unsigned)sizeof *in6;
    return 0;
  }
  return -1;
}

static raw_ws *ws_new(const raw_ws_opts *o) {
  raw_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  size_t alen = o->accept ? strlen(o->accept) : 0;
  ws->request = malloc(o->request_len ? o->request_len : 1);
  ws->offered = strdup(o->protocols ? o->protocols : "");
  if (!ws->request || !ws->offered || alen >= sizeof ws->accept) {
    free(ws->request);
    free(ws->offered);
    free(ws);
    return NULL;
  }
  memcpy(ws->request, o->request, o->request_len);
  ws->request_len = o->request_len;
  memcpy(ws->accept, o->accept, alen + 1);
  return ws;
}

uint64_t raw_connect(const char *addr, int port, const http_settings *s, tls_ctx *tls,
                     const char *servername, uint32_t timeout_ms, uint64_t token,
                     const raw_ws_opts *wso) {
  struct sockaddr_storage ss;
  unsigned len;
  if (make_addr(addr, port, &ss, &len)) {
    post_failed(token, "connect: not a numeric address or unix:/path");
    return 0;
  }
  raw_conn *r = calloc(1, sizeof *r);
  dsp_actor *a = r ? dsp_actor_new() : NULL;
  if (r && wso && !(r->ws = ws_new(wso))) {
    if (a) dsp_actor_release(a);
    a = NULL;
  }
  if (!a) {
    free(r);
    post_failed(token, "connect: out of memory");
    return 0;
  }
  r->own = *s;
  r->own.tls = NULL; /* a server-side setting: ours is `tls` */
  r->idle_ms = s->ping_ms;
  r->token = token;
  r->tls = tls != NULL;
  r->up.ops = &raw_ops;
  r->up.actor = a;
  r->up.set = &r->own;
  rx_lock();
  rx_conn *c = rx_connect((const struct sockaddr *)&ss, len, &raw_proto, r);
  if (!c) {
    char why_[96];
    snprintf(why_, sizeof why_, "connect: %s", strerror(errno));
    rx_unlock();
    dsp_actor_release(a);
    if (r->ws) {
      free(r->ws->request);
      free(r->ws->offered);
      free(r->ws);
    }
    free(r);
    post_failed(token, why_);
    return 0;
  }
  r->c = c;
  rx_mark_upgraded(c); /* the upgraded-connection calls apply */
  c->timeout_ms = timeout_ms;
  rx_touch(c);
  uint64_t id = c->id;
  dsp_post(a, DSP_RAW_BIND, id, NULL, token);
  if (tls && tls_attach_client(c, tls, servername)) {
    why(r, "tls: cannot start (bad server name?)%s", NULL);
    rx_close_now(c);
  }
  rx_unlock();
  return id;
}

int raw_send(uint64_t conn, const void *data, size_t len, int text) {
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  int rc = -1;
  if (u && u->ops == &raw_ops && !u->closing && !rx_closed(c)) {
    raw_conn *r = (raw_conn *)u;
    if (up_room(c, u, len))
      why(r, "output over max_pending (peer not reading)%s", NULL);
    else if (r->ws)
      rc = ws_frame(r, text ? WS_OP_TEXT : WS_OP_BINARY, data, len);
    else
      rc = len ? rx_write(c, data, len) : 0;
  }
  rx_unlock();
  return rc;
}

int raw_write(uint64_t conn, const void *data, size_t len) { return raw_send(conn, data, len, 0); }

/* --- pub/sub fan-out and close (up_ops) ----------------------------------------- */

/* A raw connection gets the message bytes as they are, once per publish. */
static rx_buf *ops_frame(rx_conn *c, ps_delivery *d, int as) {
  (void)c;
  (void)as;
  rx_buf **slot = ps_form_slot(d, &raw_ops, 0);
  if (slot && !*slot) *slot = rx_buf_new(d->msg, d->len);
  return slot ? *slot : NULL;
}

/* The shared bytes unframed; a WebSocket client frames them (masked, so
 * one copy per recipient), as text when they were published as str. */
static int ops_write(rx_conn *c, rx_buf *b, const ps_delivery *d) {
  raw_conn *r = c->udata;
  if (r->up.closing || rx_closed(c)) return -1;
  if (up_room(c, &r->up, b->len)) {
    why(r, "output over max_pending (peer not reading)%s", NULL);
    return -1;
  }
  if (r->ws) return ws_frame(r, d->text ? WS_OP_TEXT : WS_OP_BINARY, b->data, b->len);
  return rx_write_buf(c, b);
}

/* A WebSocket client sends a Close frame with `code` and waits briefly for
 * the server's; raw bytes close once queued output is sent. */
static void ops_close(rx_conn *c, unsigned code) {
  raw_conn *r = c->udata;
  if (r->ws && r->state == RAW_OPEN)
    ws_send_close_frame(r, code);
  else
    rx_close(c);
}

static const up_ops raw_ops = {
    .name = "raw",
    .frame = ops_frame,
    .write = ops_write,
    .close = ops_close,
};

long raw_subprotocol(uint64_t conn, char *out, size_t cap) {
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  long n = -1;
  if (u && u->ops == &raw_ops && cap) {
    raw_conn *r = (raw_conn *)u;
    const char *ch = r->ws ? r->ws->chosen : "";
    n = (long)strlen(ch);
    if ((size_t)n >= cap) n = (long)cap - 1;
    memcpy(out, ch, (size_t)n);
    out[n] = 0;
  }
  rx_unlock();
  return n;
}

void raw_msg_done(raw_msg *m) {
  if (!m) return;
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(m->conn, &c);
  if (u && u->ops == &raw_ops) {
    raw_conn *r = (raw_conn *)u;
    r->inflight -= m->len + MSG_OVERHEAD;
    if (r->state == RAW_EOF && !r->inflight) {
      rx_close(c); /* half-closed: the last of its input is answered */
    } else if (r->in_paused && r->inflight <= in_budget(r) / 2) {
      r->in_paused = 0;
      rx_resume(c);
    }
  }
  rx_unlock();
  free(m);
}

void raw_str_free(char *s) { free(s); }
