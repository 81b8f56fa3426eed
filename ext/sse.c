/* sse: see sse.h for what this file owns. */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "http.h"
#include "http_upgrade.h"
#include "pubsub.h"
#include "reactor.h"
#include "upgrade.h"
#include "ws_frame.h" /* the UTF-8 check */

typedef struct sse_conn {
  up_conn up; /* first: upgrade.c casts udata to it */
  rx_conn *c;
} sse_conn;

static const rx_proto sse_proto;
static const up_ops sse_ops;

static int has_break(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) return 1;
  return 0;
}

/* Append n bytes at *at if they fit; count them either way. */
static void put(char *out, size_t cap, size_t *at, const char *s, size_t n) {
  if (*at < cap) memcpy(out + *at, s, *at + n <= cap ? n : cap - *at);
  *at += n;
}

long sse_format(char *out, size_t cap, const char *data, size_t dlen, const sse_fields *f) {
  const char *event = f->event, *id = f->id;
  size_t elen = f->elen, ilen = f->ilen;
  long retry = f->retry;
  if ((event && has_break(event, elen)) || (id && has_break(id, ilen))) return -1;
  size_t at = 0;
  if (id) {
    put(out, cap, &at, "id: ", 4);
    put(out, cap, &at, id, ilen);
    put(out, cap, &at, "\n", 1);
  }
  if (event) {
    put(out, cap, &at, "event: ", 7);
    put(out, cap, &at, event, elen);
    put(out, cap, &at, "\n", 1);
  }
  if (retry >= 0) {
    char num[24];
    size_t n = 0;
    unsigned long v = (unsigned long)retry;
    do num[sizeof num - 1 - n++] = (char)('0' + v % 10);
    while (v /= 10);
    put(out, cap, &at, "retry: ", 7);
    put(out, cap, &at, num + sizeof num - n, n);
    put(out, cap, &at, "\n", 1);
  }
  /* Every line of data is its own field; CRLF, CR and LF all end a line
   * in the event-stream grammar, so all three split here. */
  size_t start = 0;
  for (size_t i = 0; i <= dlen; i++) {
    if (i < dlen && data[i] != '\r' && data[i] != '\n') continue;
    put(out, cap, &at, "data: ", 6);
    put(out, cap, &at, data + start, i - start);
    put(out, cap, &at, "\n", 1);
    if (i < dlen && data[i] == '\r' && i + 1 < dlen && data[i + 1] == '\n') i++;
    start = i + 1;
  }
  put(out, cap, &at, "\n", 1);
  return (long)at;
}

int sse_write(uint64_t conn, const char *data, size_t dlen, const char *event, size_t elen,
              const char *id, size_t ilen, long retry) {
  sse_fields f = {event, elen, id, ilen, retry};
  long need = sse_format(NULL, 0, data, dlen, &f);
  if (need < 0) return -2;
  char stack[1024];
  char *buf = (size_t)need <= sizeof stack ? stack : malloc((size_t)need);
  if (!buf) return -1;
  sse_format(buf, (size_t)need, data, dlen, &f);
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  int r = -1;
  if (u && u->ops == &sse_ops && !u->closing && !rx_closed(c) && up_room(c, u, (size_t)need) == 0)
    r = rx_write(c, buf, (size_t)need);
  rx_unlock();
  if (buf != stack) free(buf);
  return r;
}

/* --- pub/sub fan-out (up_ops) ------------------------------------------------ */

/* Base64 (RFC 4648, with padding) of n bytes into out (4 * ceil(n / 3)). */
static size_t base64(char *out, const unsigned char *in, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
    out[o++] = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return o;
}

static int delivery_utf8(ps_delivery *d) {
  if (d->utf8 < 0) {
    uint32_t st = 0;
    d->utf8 = ws_utf8_feed(&st, (const uint8_t *)d->msg, d->len) == 0 && ws_utf8_complete(st);
  }
  return d->utf8;
}

/* The event, once per publish, with `id:` when the message has one. An
 * event stream is UTF-8: bytes that are not go base64-encoded as the event
 * "base64" (a page listens for it by name; onmessage never sees mangled
 * text). `as` means nothing to an event stream. */
static rx_buf *ops_frame(rx_conn *c, ps_delivery *d, int as) {
  (void)c;
  (void)as;
  rx_buf **slot = ps_form_slot(d, &sse_ops, 0);
  if (!slot || *slot) return slot ? *slot : NULL;
  char id[PS_ID_TEXT_MAX];
  size_t ilen = ps_id_none(d->id) ? 0 : ps_id_format(id, d->id);
  const char *data = d->msg, *ev = NULL;
  size_t dlen = d->len, elen = 0;
  char *enc = NULL;
  if (!delivery_utf8(d)) {
    enc = malloc((d->len + 2) / 3 * 4 + 1);
    if (!enc) return NULL;
    dlen = base64(enc, (const unsigned char *)d->msg, d->len);
    data = enc;
    ev = "base64";
    elen = 6;
  }
  sse_fields f = {ev, elen, ilen ? id : NULL, ilen, -1};
  long n = sse_format(NULL, 0, data, dlen, &f);
  *slot = rx_buf_new(NULL, (size_t)n);
  if (*slot) sse_format((*slot)->data, (size_t)n, data, dlen, &f);
  free(enc);
  return *slot;
}

static int ops_write(rx_conn *c, rx_buf *event, const ps_delivery *d) {
  sse_conn *s = c->udata;
  (void)d;
  if (s->up.closing || rx_closed(c) || up_room(c, &s->up, event->len)) return -1;
  return rx_write_buf(c, event);
}

static const up_ops sse_ops = {
    .name = "sse",
    .frame = ops_frame,
    .write = ops_write,
    .joinable = 1, /* the bytes go out as they are */
    .close = NULL, /* no close codes: the socket closes once output is out */
};

/* --- the connection ----------------------------------------------------------- */

static void on_data(rx_conn *c) {
  char sink[4096];
  for (;;) {
    long n = rx_read(c, sink, sizeof sink);
    if (n == 0) return;
    if (n < 0) { /* the client went away */
      rx_close_now(c);
      return;
    }
  }
}

static void on_timeout(rx_conn *c) {
  static const char ping[] = ": keep-alive\n\n";
  rx_write(c, ping, sizeof ping - 1);
}

static void on_shutdown(rx_conn *c) {
  sse_conn *s = c->udata;
  dsp_post(s->up.actor, DSP_SHUTDOWN, c->id, NULL, 0);
}

static void on_drained(rx_conn *c) {
  sse_conn *s = c->udata;
  if (s->up.want_drained) dsp_post(s->up.actor, DSP_DRAINED, c->id, NULL, 0);
}

static void on_close(rx_conn *c) {
  sse_conn *s = c->udata;
  ps_drop_conn(&s->up); /* subscriptions end with the connection */
  dsp_post(s->up.actor, DSP_CLOSE, c->id, NULL, 0);
  dsp_actor_release(s->up.actor);
  free(s);
}

static const rx_proto sse_proto = {
    .on_data = on_data,
    .on_drained = on_drained,
    .on_timeout = on_timeout,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

int sse_take_over(rx_conn *c, const http_settings *set, dsp_actor *actor) {
  sse_conn *s = calloc(1, sizeof *s);
  if (s) s->c = c;
  return up_adopt(c, s ? &s->up : NULL, &sse_ops, set, actor, &sse_proto, 0);
}

/* --- the HTTP upgrade (http_upgrade.h) --------------------------------------- */

/* A GET that accepts text/event-stream may become an event stream. */
static int up_check(const http1_request *q, const http1_framing *fr, const http_settings *s,
                    http_upgrade_state *state, http_upgrade_answer *ans) {
  (void)s;
  (void)state;
  (void)ans;
  return fr->accept_event_stream && q->method_len == 3 && !memcmp(q->method, "GET", 3);
}

static long up_head(const http_upgrade_state *state, char *out) {
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
  (void)state;
  _Static_assert(sizeof head <= HTTP_UPGRADE_HEAD_MAX, "the head fits");
  memcpy(out, head, sizeof head - 1);
  return (long)(sizeof head - 1);
}

/* Input after the request means nothing to an event stream. */
static int up_take_over(rx_conn *c, const http_settings *s, dsp_actor *actor, const char *left,
                        size_t left_len, const http_upgrade_state *state) {
  (void)left;
  (void)left_len;
  (void)state;
  return sse_take_over(c, s, actor);
}

const http_upgrader sse_upgrader = {
    .name = "sse",
    .kind = UP_SSE,
    .owned = NULL,
    .check = up_check,
    .app_headers = NULL,
    .head = up_head,
    .take_over = up_take_over,
};
