/* websocket: see websocket.h for what this file owns.
 *
 * Input is streamed: a frame's payload is unmasked and appended to the
 * message as it arrives, so the read buffer stays small whatever the frame
 * size, and a 1 MiB message costs one growing buffer, handed to the
 * application without a copy (the ws_msg header lives in front of it). */
#define _GNU_SOURCE
#include "websocket.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "ascii.h"
#include "dispatch.h"
#include "http.h"
#include "http_upgrade.h"
#include "pmd.h"
#include "pubsub.h"
#include "reactor.h"
#include "upgrade.h"
#include "ws_frame.h"

/* Reading. Input is read into one buffer shared by every connection of the
 * process (`shared`, RBUF_MAX bytes, used only inside on_data, which runs
 * under the reactor's big lock) and parsed from there. Only the tail of a frame that has not
 * fully arrived is copied into the connection's own buffer, which is freed
 * again as soon as it is consumed. An idle connection (10,000 subscribers
 * are mostly idle) then holds no read buffer at all, and a busy one reads
 * in RBUF_MAX gulps. Payloads stream through (see above), so the buffer
 * size never limits a message: a partial frame head is at most 14 bytes
 * and a partial payload is appended to the message as it comes. */
#define RBUF_MAX 16384
static uint8_t shared[RBUF_MAX];
/* Per-message bookkeeping counted against the input budget, so a flood of
 * empty messages is bounded too. */
#define MSG_OVERHEAD 64

typedef struct ws_conn {
  up_conn up; /* first: upgrade.c casts udata to it */
  rx_conn *c;
  uint8_t *rbuf; /* `shared` inside on_data; else pending bytes, or NULL */
  size_t rpos, rlen;
  /* the frame being read */
  ws_head head;
  uint64_t frame_pos; /* payload bytes of this frame already taken */
  int in_frame;
  /* the message being assembled */
  int msg_op; /* WS_OP_TEXT, WS_OP_BINARY, or 0 between messages */
  ws_msg *msg;
  size_t msg_cap;
  uint64_t msg_wire; /* payload bytes of the message as they came (compressed) */
  uint32_t utf8;
  uint8_t ctl[125];
  /* permessage-deflate (pmd.h) */
  pmd_params pmd;
  pmd_inflater *inf;      /* inflating the message in progress, or NULL */
  pmd_inflater *inf_keep; /* the connection's own (context takeover) */
  /* flow */
  size_t inflight; /* bytes posted to the application, not yet done */
  ws_state state;  /* websocket.h's diagram; written by ws_to alone */
  unsigned read_paused : 1, ping_out : 1;
  unsigned msg_z : 1; /* the message in progress is compressed */
} ws_conn;

static const rx_proto ws_proto;
static const up_ops ws_ops;

/* --- the state machine ------------------------------------------------------ */

/* Legal moves, one bit per target state: a move with no entry is a bug. */
#define B(s) (1u << (s))
static const unsigned ws_moves[WS_NSTATES] = {
    [WS_OPEN] = B(WS_FAILING) | B(WS_CLOSE_SENT) | B(WS_CLOSED),
    [WS_FAILING] = B(WS_CLOSE_SENT) | B(WS_CLOSED),
    [WS_CLOSE_SENT] = B(WS_CLOSED),
    [WS_CLOSED] = 0,
};
#undef B

bool ws_may(ws_state from, ws_state to) {
  return from < WS_NSTATES && to < WS_NSTATES && (ws_moves[from] >> to & 1u);
}

/* The only writer of w->state, and so of w->up.closing (which the shared
 * calls in upgrade.c and pubsub.c read): nothing is written from
 * CLOSE_SENT on. */
static void ws_to(ws_conn *w, ws_state to) {
  assert(ws_may(w->state, to));
  w->state = to;
  w->up.closing = to >= WS_CLOSE_SENT;
}

static size_t in_budget(const ws_conn *w) {
  uint64_t m = w->up.set->ws_max_msg;
  return m < (1u << 20) ? (1u << 20) : (size_t)m;
}

/* --- output ---------------------------------------------------------------- */

static int send_frame(ws_conn *w, int op, const void *data, size_t len) {
  uint8_t hd[10];
  size_t hl = ws_head_write(hd, op, 1, len);
  struct iovec iov[2] = {{hd, hl}, {(void *)data, len}};
  return rx_writev(w->c, iov, len ? 2 : 1);
}

/* A data message: compressed when agreed, big enough, and it shrinks. */
static int send_data(ws_conn *w, int op, const void *data, size_t len) {
  if (w->pmd.on && len >= w->up.set->ws_deflate_min) {
    const uint8_t *f;
    size_t fl;
    if (pmd_deflate_frame(w->pmd.server_bits, op, data, len, &f, &fl) == 0)
      return rx_write(w->c, f, fl);
  }
  return send_frame(w, op, data, len);
}

void ws_send_close(rx_conn *c, unsigned code, const char *reason, size_t rlen) {
  ws_conn *w = c->udata;
  if (w->state == WS_CLOSE_SENT || rx_closed(c)) return;
  rx_release(c); /* output held back for a batch (pub/sub runs) goes first */
  ws_to(w, WS_CLOSE_SENT);
  uint8_t p[125] = {(uint8_t)(code >> 8), (uint8_t)code};
  if (!code) rlen = 0;
  if (rlen > 123) rlen = 123; /* a control payload is at most 125 bytes */
  if (rlen) memcpy(p + 2, reason, rlen);
  send_frame(w, WS_OP_CLOSE, p, code ? 2 + rlen : 0);
  /* Half-close and discard the peer's reply: it owes us a Close frame,
   * which we do not need, and unread input would turn our FIN into RST. */
  rx_linger(c);
  rx_close(c);
}

/* The input stream is over: a protocol error, or the peer's Close. Messages
 * parsed before that point are still the application's to answer (RFC 6455
 * fails the connection only from the bad frame on, and a peer's Close lets
 * us finish sending): so our Close goes out through the connection's
 * actor, after every earlier callback, behind the writes they made. `code`
 * 0 sends a Close without a code (the echo of one that had none). */
static void fail(ws_conn *w, unsigned code) {
  w->rpos = w->rlen = 0;
  if (w->state != WS_OPEN) return;
  ws_to(w, WS_FAILING);
  if (dsp_post(w->up.actor, DSP_FAIL, w->c->id, NULL, code)) ws_send_close(w->c, code, NULL, 0);
}

/* The peer's Close: like fail, but the application learns the code and
 * reason (client.close_code / close_reason) and its answer echoes them.
 * The reason travels as a ws_msg, counted as input like a message. */
static void peer_closed(ws_conn *w, unsigned code, const uint8_t *reason, size_t n) {
  w->rpos = w->rlen = 0;
  if (w->state != WS_OPEN) return;
  ws_to(w, WS_FAILING);
  ws_msg *m = malloc(sizeof *m + n + 1);
  if (m) {
    m->conn = w->c->id;
    m->len = n;
    m->text = 1;
    if (n) memcpy(m->data, reason, n);
    w->inflight += n + MSG_OVERHEAD;
    if (dsp_post(w->up.actor, DSP_FAIL, w->c->id, m, code) == 0) return;
    w->inflight -= n + MSG_OVERHEAD;
    free(m);
  }
  if (dsp_post(w->up.actor, DSP_FAIL, w->c->id, NULL, code))
    ws_send_close(w->c, code, (const char *)reason, n);
}

int ws_write(uint64_t conn, const void *data, size_t len, int text) {
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  int r = -1;
  if (u && u->ops == &ws_ops && !u->closing && !rx_closed(c) && up_room(c, u, len + 10) == 0)
    r = send_data((ws_conn *)u, text ? WS_OP_TEXT : WS_OP_BINARY, data, len);
  rx_unlock();
  return r;
}

int ws_close(uint64_t conn, unsigned code, const char *reason, size_t rlen) {
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  int r = -1;
  if (u && u->ops == &ws_ops && !rx_closed(c)) {
    ws_send_close(c, code, reason, rlen);
    r = 0;
  }
  rx_unlock();
  return r;
}

/* --- pub/sub fan-out (up_ops) ------------------------------------------------ */

/* Form variants in a delivery (pubsub.h's ps_form_slot): the plain frame
 * of each type, and the compressed one per type and window size. */
#define FORM_PLAIN(text) ((unsigned)(text))
#define FORM_DEFLATE(text, bits) (2u + (unsigned)(text)*8u + ((unsigned)(bits)-8u) % 8u)

static int delivery_utf8(ps_delivery *d) {
  if (d->utf8 < 0) {
    uint32_t st = 0;
    d->utf8 = ws_utf8_feed(&st, (const uint8_t *)d->msg, d->len) == 0 && ws_utf8_complete(st);
  }
  return d->utf8;
}

/* The plain frame, made by the first subscriber that needs it. */
static rx_buf *make_plain(const ps_delivery *d, int text) {
  uint8_t hd[10];
  size_t hl = ws_head_write(hd, text ? WS_OP_TEXT : WS_OP_BINARY, 1, d->len);
  rx_buf *b = rx_buf_new(NULL, hl + d->len);
  if (b) {
    memcpy(b->data, hd, hl);
    memcpy(b->data + hl, d->msg, d->len);
  }
  return b;
}

/* The per-recipient path: a lookup, then the shared frame. */
static inline rx_buf *plain_form(ps_delivery *d, int text) {
  rx_buf **slot = ps_form_slot(d, &ws_ops, FORM_PLAIN(text));
  if (!slot) return NULL;
  if (!*slot) *slot = make_plain(d, text);
  return *slot;
}

/* The frame this connection gets: with permessage-deflate agreed and a
 * message of at least ws_deflate_min bytes, the one compressed for its
 * window size (once per window per publish); a message that does not
 * shrink (or a compressor out of memory) shares the plain frame in that
 * window's slot, so it is not tried again for the next subscriber. */
static rx_buf *ops_frame(rx_conn *c, ps_delivery *d, int as) {
  ws_conn *w = c->udata;
  int text = as == PS_AS_BINARY ? 0 : as == PS_AS_TEXT ? delivery_utf8(d) : d->text;
  if (!w->pmd.on || d->len < w->up.set->ws_deflate_min) return plain_form(d, text);
  rx_buf **slot = ps_form_slot(d, &ws_ops, FORM_DEFLATE(text, w->pmd.server_bits));
  if (slot && !*slot) {
    const uint8_t *f;
    size_t fl;
    if (pmd_deflate_frame(w->pmd.server_bits, text ? WS_OP_TEXT : WS_OP_BINARY, d->msg, d->len, &f,
                          &fl) == 0)
      *slot = rx_buf_new(f, fl);
    if (!*slot && (*slot = plain_form(d, text))) rx_buf_retain(*slot);
  }
  return slot ? *slot : NULL;
}

static int ops_write(rx_conn *c, rx_buf *frame, const ps_delivery *d) {
  ws_conn *w = c->udata;
  (void)d;
  if (w->state >= WS_CLOSE_SENT || rx_closed(c) || up_room(c, &w->up, frame->len)) return -1;
  return rx_write_buf(c, frame);
}

static void ops_close(rx_conn *c, unsigned code) { ws_send_close(c, code, NULL, 0); }

static const up_ops ws_ops = {
    .name = "websocket",
    .frame = ops_frame,
    .write = ops_write,
    .joinable = 1, /* the bytes go out as they are */
    .close = ops_close,
};

/* --- input ----------------------------------------------------------------- */

static int msg_append(ws_conn *w, const uint8_t *p, size_t n) {
  size_t need = (w->msg ? w->msg->len : 0) + n;
  if (!w->msg || need > w->msg_cap) {
    size_t cap = w->msg_cap ? w->msg_cap : 256;
    while (cap < need) cap *= 2;
    ws_msg *m = realloc(w->msg, sizeof *m + cap);
    if (!m) return -1;
    if (!w->msg) m->len = 0;
    w->msg = m;
    w->msg_cap = cap;
  }
  memcpy(w->msg->data + w->msg->len, p, n);
  w->msg->len += n;
  return 0;
}

static void deliver(ws_conn *w) {
  ws_msg *m = w->msg;
  if (!m && msg_append(w, (const uint8_t *)"", 0)) return; /* empty message */
  m = w->msg;
  w->msg = NULL;
  w->msg_cap = 0;
  m->conn = w->c->id;
  m->text = w->msg_op == WS_OP_TEXT;
  w->inflight += m->len + MSG_OVERHEAD;
  if (dsp_post(w->up.actor, DSP_MESSAGE, m->conn, m, 0)) {
    w->inflight -= m->len + MSG_OVERHEAD;
    free(m);
  }
}

static void on_control(ws_conn *w) {
  size_t n = (size_t)w->head.len;
  switch (w->head.opcode) {
  case WS_OP_PING:
    /* A pong is output like any other: a peer that pings without reading
     * is dropped at the pending-output cap (up_room), not buffered for. */
    if (up_room(w->c, &w->up, n + 2) == 0) send_frame(w, WS_OP_PONG, w->ctl, n);
    break;
  case WS_OP_PONG: break; /* its arrival already counted as activity */
  case WS_OP_CLOSE: {     /* the peer's, first (the reply to ours is never read) */
    unsigned code = 0;
    if (n == 1) {
      fail(w, 1002);
      return;
    }
    if (n >= 2) {
      code = (unsigned)w->ctl[0] << 8 | w->ctl[1];
      if (!ws_close_code_valid(code)) {
        fail(w, 1002);
        return;
      }
      uint32_t st = 0;
      if (ws_utf8_feed(&st, w->ctl + 2, n - 2) || !ws_utf8_complete(st)) {
        fail(w, 1007);
        return;
      }
    }
    /* echo the peer's code (RFC 6455 5.5.1) and reason, in order */
    peer_closed(w, code, n > 2 ? w->ctl + 2 : NULL, n > 2 ? n - 2 : 0);
    break;
  }
  }
}

/* Inflated bytes of a compressed message: checked and appended like
 * plain payload. */
static int emit_inflated(void *ctx, const uint8_t *p, size_t n) {
  ws_conn *w = ctx;
  if (w->msg_op == WS_OP_TEXT && ws_utf8_feed(&w->utf8, p, n)) return -1007;
  return msg_append(w, p, n) ? -1011 : 0;
}

/* The message is over (delivered, or failed): give back its inflater. */
static void msg_inflate_done(ws_conn *w, int abandoned) {
  if (w->inf) pmd_inflate_end(w->inf, &w->inf_keep, abandoned);
  w->inf = NULL;
  w->msg_z = 0;
}

/* A protocol error: the close code (a void function returns nothing, so
 * the callers below say `{ fail(); return; }` through this). */
#define FAIL(w, code)                                                                              \
  do {                                                                                             \
    fail(w, code);                                                                                 \
    return;                                                                                        \
  } while (0)

/* Consume buffered bytes. Returns when more input is needed, or the
 * connection left OPEN (input is read in OPEN only: that is why a control
 * frame here never meets a Close of ours). */
static void process(ws_conn *w) {
  const http_settings *s = w->up.set;
  while (w->state == WS_OPEN && !rx_closed(w->c)) {
    if (!w->in_frame) {
      int r = ws_parse_head(w->rbuf + w->rpos, w->rlen - w->rpos, 1, &w->head);
      if (r == 0) return;
      if (r < 0) FAIL(w, (unsigned)-r);
      int op = w->head.opcode;
      /* RSV1 is permessage-deflate's, and only where RFC 7692 6.1 puts it:
       * on the first frame of a data message, once it was agreed. RSV2/3
       * belong to nothing we negotiate. */
      if (w->head.rsv && (w->head.rsv != 4 || !w->pmd.on || op == WS_OP_CONT || op >= WS_OP_CLOSE))
        FAIL(w, 1002);
      if (op < WS_OP_CLOSE) {
        if (op == WS_OP_CONT && !w->msg_op) FAIL(w, 1002);
        if (op != WS_OP_CONT && w->msg_op) FAIL(w, 1002);
        uint64_t have = op == WS_OP_CONT ? w->msg_wire : 0;
        if (w->head.len > s->ws_max_msg || have + w->head.len > s->ws_max_msg) FAIL(w, 1009);
        if (op != WS_OP_CONT) {
          w->msg_op = op;
          w->utf8 = 0;
          w->msg_wire = 0;
          if (w->head.rsv) {
            w->msg_z = 1;
            w->inf = pmd_inflate_begin(&w->pmd, &w->inf_keep);
            if (!w->inf) FAIL(w, 1011);
          }
        }
      }
      w->rpos += (size_t)r;
      w->in_frame = 1;
      w->frame_pos = 0;
    }
    size_t avail = w->rlen - w->rpos;
    uint64_t left = w->head.len - w->frame_pos;
    size_t take = left < avail ? (size_t)left : avail;
    uint8_t *p = w->rbuf + w->rpos;
    ws_unmask(p, take, w->head.mask, w->frame_pos);
    int frame_end = take == left;
    if (w->head.opcode >= WS_OP_CLOSE) {
      memcpy(w->ctl + w->frame_pos, p, take);
    } else if (w->msg_z) {
      int last = frame_end && w->head.fin;
      if (take || last) {
        uint64_t have = w->msg ? w->msg->len : 0;
        int e = pmd_inflate(w->inf, p, take, last, s->ws_max_msg - have, emit_inflated, w);
        if (e) FAIL(w, (unsigned)-e); /* 1009: a bomb stops at the limit */
      }
      w->msg_wire += take;
    } else {
      if (w->msg_op == WS_OP_TEXT && ws_utf8_feed(&w->utf8, p, take))
        FAIL(w, 1007); /* fail fast, mid-frame */
      if (msg_append(w, p, take)) FAIL(w, 1011);
      w->msg_wire += take;
    }
    w->rpos += take;
    w->frame_pos += take;
    if (w->frame_pos < w->head.len) return; /* the rest is on its way */
    w->in_frame = 0;
    if (w->head.opcode >= WS_OP_CLOSE) {
      on_control(w);
    } else if (w->head.fin) {
      if (w->msg_op == WS_OP_TEXT && !ws_utf8_complete(w->utf8)) FAIL(w, 1007);
      if (w->msg_z) msg_inflate_done(w, 0);
      deliver(w);
      w->msg_op = 0;
    }
  }
}

/* Between reads only an unfinished frame head (at most 13 bytes) or, just
 * after the handshake, the bytes that came behind it are pending: they
 * wait in a small buffer of the connection's own. */
static int keep_rest(ws_conn *w) {
  size_t rest = w->rlen - w->rpos;
  uint8_t *own = NULL;
  if (rest) {
    own = malloc(rest);
    if (!own) return -1;
    memcpy(own, w->rbuf + w->rpos, rest);
  }
  w->rbuf = own;
  w->rpos = 0;
  w->rlen = rest;
  return 0;
}

static void on_data(rx_conn *c) {
  ws_conn *w = c->udata;
  /* what was pending goes in front of the new input, in the shared buffer */
  size_t have = w->rlen - w->rpos;
  if (have) memcpy(shared, w->rbuf + w->rpos, have);
  free(w->rbuf);
  w->rbuf = shared;
  w->rpos = 0;
  w->rlen = have;
  for (;;) {
    process(w);
    if (rx_closed(c)) {
      /* Gone, or closing once our output has left (a Close behind a
       * backlog): input is over either way. `shared` must not stay in
       * rbuf: a closing connection still hears on_data, whose first step
       * frees rbuf. */
      w->rbuf = NULL;
      w->rpos = w->rlen = 0;
      return;
    }
    if (w->state != WS_OPEN) { /* input is over: drop the rest */
      w->rpos = w->rlen;
      break;
    }
    if (w->inflight > in_budget(w)) {
      w->read_paused = 1; /* the application is behind: stop reading */
      break;
    }
    size_t rest = w->rlen - w->rpos; /* an unfinished frame head */
    if (w->rpos) memmove(shared, shared + w->rpos, rest);
    w->rpos = 0;
    w->rlen = rest;
    long n = rx_read(c, shared + rest, RBUF_MAX - rest);
    if (n == 0) break; /* nothing more for now */
    if (n < 0) {       /* gone without a Close frame: 1006 for on_close */
      rx_close_now(c);
      return;
    }
    w->rlen += (size_t)n;
    w->ping_out = 0;
  }
  if (keep_rest(w)) rx_close_now(c);
}

int ws_state_of(uint64_t conn, ws_state *st) {
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  if (!u || u->ops != &ws_ops) return -1;
  *st = ((ws_conn *)u)->state;
  return 0;
}

int ws_test_move(uint64_t conn, ws_state to) {
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  if (!u || u->ops != &ws_ops) return -1;
  ws_to((ws_conn *)u, to);
  return 0;
}

void ws_msg_done(ws_msg *m) {
  if (!m) return;
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(m->conn, &c);
  if (u && u->ops == &ws_ops) {
    ws_conn *w = (ws_conn *)u;
    w->inflight -= m->len + MSG_OVERHEAD;
    if (w->read_paused && w->inflight <= in_budget(w) / 2) {
      w->read_paused = 0;
      rx_resume(c);
    }
  }
  rx_unlock();
  free(m);
}

static void on_timeout(rx_conn *c) {
  ws_conn *w = c->udata;
  if (w->state == WS_CLOSE_SENT) {
    rx_close_now(c);
  } else if (w->ping_out) {
    ws_send_close(c, 1001, NULL, 0); /* silent through a whole ping interval */
  } else {
    w->ping_out = 1;
    send_frame(w, WS_OP_PING, NULL, 0);
  }
}

static void on_shutdown(rx_conn *c) {
  ws_conn *w = c->udata;
  if (w->state == WS_CLOSE_SENT) return;
  /* The application's on_shutdown runs first (it may still write); its
   * handler then closes with 1001. */
  dsp_post(w->up.actor, DSP_SHUTDOWN, c->id, NULL, 0);
}

static void on_drained(rx_conn *c) {
  ws_conn *w = c->udata;
  if (w->up.want_drained && w->state != WS_CLOSE_SENT)
    dsp_post(w->up.actor, DSP_DRAINED, c->id, NULL, 0);
}

static void on_close(rx_conn *c) {
  ws_conn *w = c->udata;
  ws_to(w, WS_CLOSED);
  ps_drop_conn(&w->up); /* subscriptions end with the connection */
  dsp_post(w->up.actor, DSP_CLOSE, c->id, NULL, 0);
  dsp_actor_release(w->up.actor);
  msg_inflate_done(w, 1);
  pmd_inflater_free(w->inf_keep);
  free(w->msg);
  if (w->rbuf != shared) free(w->rbuf); /* closed inside on_data: shared */
  free(w);
}

static const rx_proto ws_proto = {
    .on_data = on_data,
    .on_drained = on_drained,
    .on_timeout = on_timeout,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

int ws_take_over(rx_conn *c, const http_settings *s, dsp_actor *actor, const char *left,
                 size_t left_len, const pmd_params *pmd) {
  /* bytes that came behind the handshake: the only time input lands in
   * the connection's own buffer before anything is parsed */
  ws_conn *w = left_len <= RBUF_MAX ? calloc(1, sizeof *w) : NULL;
  if (w && left_len) {
    w->rbuf = malloc(left_len);
    if (!w->rbuf) {
      free(w);
      w = NULL;
    } else {
      memcpy(w->rbuf, left, left_len);
      w->rlen = left_len;
    }
  }
  if (w) {
    w->c = c;
    if (pmd) w->pmd = *pmd;
  }
  /* silence is measured on input only: our pings must not count as life */
  return up_adopt(c, w ? &w->up : NULL, &ws_ops, s, actor, &ws_proto, RX_F_IDLE_READ);
}

/* --- the HTTP handshake (http_upgrade.h) ----------------------------------- */

/* What the check decides and the hand-off needs, kept in the HTTP
 * connection's http_upgrade_state (copied in and out: it is bytes there). */
typedef struct ws_hs {
  char accept[29]; /* Sec-WebSocket-Accept */
  pmd_params pmd;  /* permessage-deflate, as negotiated */
} ws_hs;
_Static_assert(sizeof(ws_hs) <= HTTP_UPGRADE_STATE_MAX, "ws_hs fits the upgrade state");

/* The client's permessage-deflate offers (Sec-WebSocket-Extensions, any
 * number of fields) against the listener's settings (pmd.h). */
static void negotiate_pmd(ws_hs *hs, const http1_request *q, const http_settings *s) {
  const char *vals[8];
  size_t lens[8], n = 0;
  memset(&hs->pmd, 0, sizeof hs->pmd);
  for (size_t i = 0; i < q->num_headers; i++)
    if (http1_name_is(&q->headers[i], "sec-websocket-extensions", 24)) {
      if (n == 8) return; /* more offers than anyone sends: decline all */
      vals[n] = q->headers[i].value;
      lens[n++] = q->headers[i].value_len;
    }
  pmd_config cfg = {s->ws_deflate, s->ws_deflate_bits, s->ws_deflate_mem};
  if (n) pmd_negotiate(vals, lens, n, &cfg, &hs->pmd);
}

/* A WebSocket handshake is checked before the application sees it (RFC
 * 6455 4.2.1): a missing or wrong version gets 426 naming the one we speak
 * (4.4), a repeated one (11.3.5: it must appear once) and anything else
 * malformed 400. */
static int hs_check(const http1_request *q, const http1_framing *fr, const http_settings *s,
                    http_upgrade_state *state, http_upgrade_answer *ans) {
  if (!fr->upgrade_websocket) return 0;
  int get = q->method_len == 3 && !memcmp(q->method, "GET", 3);
  size_t versions = 0;
  for (size_t i = 0; i < q->num_headers; i++)
    versions += http1_name_is(&q->headers[i], "sec-websocket-version", 21);
  const http1_header *v = http_upgrade_header(q, "sec-websocket-version", 21);
  const http1_header *k = http_upgrade_header(q, "sec-websocket-key", 17);
  ws_hs hs;
  if (!get || q->version_minor != 1 || !fr->has_host || versions > 1) {
    *ans = (http_upgrade_answer){400, "", 0};
    return -1;
  }
  if (!v || v->value_len != 2 || memcmp(v->value, "13", 2)) {
    *ans = (http_upgrade_answer){426, "Sec-WebSocket-Version: 13\r\n", 1};
    return -1;
  }
  if (!k || ws_accept_key(k->value, k->value_len, hs.accept)) {
    *ans = (http_upgrade_answer){400, "", 0};
    return -1;
  }
  negotiate_pmd(&hs, q, s);
  memcpy(state->bytes, &hs, sizeof hs);
  return 1;
}

/* The server owns Sec-WebSocket-Extensions (only it knows what the
 * connection will speak): an application's own may only name
 * permessage-deflate, and only when it was agreed; its parameters are
 * replaced by the agreed ones (the header is in `owned`, so the
 * application's copy is dropped). Returns 0, or -1 when it names anything
 * else. */
static int hs_app_headers(const http_upgrade_state *state, const char *hd, size_t hlen,
                          size_t count) {
  ws_hs hs;
  memcpy(&hs, state->bytes, sizeof hs);
  const char *p = hd, *end = hd + hlen;
  for (size_t k = 0; k < count && p < end; k++) {
    size_t nl = strnlen(p, (size_t)(end - p));
    const char *val = p + nl + 1;
    if (val > end) break;
    size_t vl = strnlen(val, (size_t)(end - val));
    if (nl == 24 && ascii_same_ci(p, "sec-websocket-extensions", 24)) {
      /* every comma-separated extension must be permessage-deflate */
      size_t i = 0;
      while (i < vl) {
        while (i < vl && (val[i] == ' ' || val[i] == '\t' || val[i] == ',')) i++;
        if (i == vl) break;
        size_t st = i;
        while (i < vl && val[i] != ';' && val[i] != ',' && val[i] != ' ' && val[i] != '\t') i++;
        if (!hs.pmd.on || i - st != 18 || !ascii_same_ci(val + st, "permessage-deflate", 18))
          return -1;
        while (i < vl && val[i] != ',') i++; /* its parameters: ours win */
      }
    }
    p = val + vl + 1;
  }
  return 0;
}

/* The 101 and the headers that make it a WebSocket handshake. */
static long hs_head(const http_upgrade_state *state, char *out) {
  static const char line[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
  static const char ext[] = "Sec-WebSocket-Extensions: ";
  ws_hs hs;
  memcpy(&hs, state->bytes, sizeof hs);
  size_t n = 0;
  memcpy(out + n, line, sizeof line - 1);
  n += sizeof line - 1;
  memcpy(out + n, hs.accept, 28);
  n += 28;
  memcpy(out + n, "\r\n", 2);
  n += 2;
  if (hs.pmd.on) {
    _Static_assert(sizeof line + 28 + sizeof ext + PMD_RESPONSE_MAX + 4 <= HTTP_UPGRADE_HEAD_MAX,
                   "the 101 fits");
    memcpy(out + n, ext, sizeof ext - 1);
    n += sizeof ext - 1;
    n += pmd_response(&hs.pmd, out + n);
    memcpy(out + n, "\r\n", 2);
    n += 2;
  }
  return (long)n;
}

static int hs_take_over(rx_conn *c, const http_settings *s, dsp_actor *actor, const char *left,
                        size_t left_len, const http_upgrade_state *state) {
  ws_hs hs;
  memcpy(&hs, state->bytes, sizeof hs);
  return ws_take_over(c, s, actor, left, left_len, &hs.pmd);
}

static const char *const hs_owned[] = {"sec-websocket-extensions", NULL};

const http_upgrader ws_upgrader = {
    .name = "websocket",
    .kind = UP_WEBSOCKET,
    .owned = hs_owned,
    .check = hs_check,
    .app_headers = hs_app_headers,
    .head = hs_head,
    .take_over = hs_take_over,
};
