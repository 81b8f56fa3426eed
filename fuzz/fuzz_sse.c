/* libFuzzer target for the Server-Sent Events writer (ext/sse.c,
 * sse_format).
 *
 * Build and run (corpus in fuzz/corpus/sse; `make fuzz` does both):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iext \
 *     ext/sse.c ext/ws_frame.c ext/psid.c fuzz/fuzz_sse.c -o build/fuzz_sse
 *   mkdir -p build/fuzz-sse-work && build/fuzz_sse -max_total_time=600 \
 *     -artifact_prefix=build/sse- build/fuzz-sse-work fuzz/corpus/sse
 * (sse.c's connection code links against the stubs at the end of this
 * file; sse_format itself is pure.)
 *
 * Input: byte 0 says whether an event name and an id are given (bits 0, 1)
 * and whether a retry (bit 2: bytes 1 and 2 as a number) is, and picks a
 * short output buffer (bits 2 and up); bytes 1 and 2 pick the event
 * and id lengths; then come the event, the id, and the data: arbitrary
 * bytes, CR, LF and NUL included.
 *
 * The property: whatever the application passes, the bytes on the wire are
 * exactly one event to an EventSource, carrying what was passed. So:
 *  - an event name or id with CR, LF or NUL is refused (-1), anything else
 *    formats; measuring (cap 0) and writing agree on the size, which is
 *    computed here independently;
 *  - nothing is written past cap, and a short buffer holds a prefix of the
 *    full output (every buffer is an exact-size allocation: ASan sees it);
 *  - the output, parsed back with the algorithm of the HTML standard
 *    ("Parsing an event stream" / "Interpreting an event stream", written
 *    out below, bytewise: CR and LF are ASCII and a UTF-8 decoder never
 *    swallows them into a replacement character), dispatches exactly one
 *    event whose type, last event ID and data are the ones given, data with
 *    its line breaks (CRLF, CR, LF) read as LF, which is all the format can
 *    carry. No comment or unknown field appears; `id`, `event` and `retry`
 *    fields appear once each when given, never otherwise: data cannot forge
 *    them;
 *  - two formatted events back to back parse as two events (each ends its
 *    own framing). */
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "pubsub.h"
#include "reactor.h"
#include "upgrade.h"

#include "fuzz.h"

static int has_break(const char *s, size_t n) {
  return memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, 0, n);
}

/* ---- a growable byte string ------------------------------------------ */

typedef struct {
  char *p;
  size_t len, cap;
} str;

static void put(str *s, const void *d, size_t n) {
  if (s->len + n > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->len + n) cap *= 2;
    s->p = realloc(s->p, cap);
    ASSERT(s->p);
    s->cap = cap;
  }
  if (n) memcpy(s->p + s->len, d, n);
  s->len += n;
}

static int same(const str *s, const char *d, size_t n) {
  return s->len == n && (n == 0 || memcmp(s->p, d, n) == 0);
}

/* ---- the event-stream parser (HTML standard, server-sent events) -------- */

typedef struct {
  str type, data, id;
} event;

typedef struct {
  event ev[4]; /* dispatched events (at most 4 kept) */
  size_t nev;
  str data, type, last_id;                          /* the buffers */
  size_t n_id, n_event, n_data, n_other, n_comment; /* field lines seen */
  size_t trailing; /* bytes after the last line break (an unfinished line) */
} stream;

static void free_str(str *s) {
  free(s->p);
  memset(s, 0, sizeof *s);
}

static void free_stream(stream *st) {
  for (size_t i = 0; i < st->nev && i < 4; i++) {
    free_str(&st->ev[i].type);
    free_str(&st->ev[i].data);
    free_str(&st->ev[i].id);
  }
  free_str(&st->data);
  free_str(&st->type);
  free_str(&st->last_id);
}

static void dispatch(stream *st) {
  /* "If the data buffer is an empty string, set the data buffer and the
   * event type buffer to the empty string and return." */
  if (st->data.len == 0) {
    st->type.len = 0;
    return;
  }
  /* "If the data buffer's last character is a U+000A LINE FEED (LF)
   * character, then remove the last character from the data buffer." */
  if (st->data.p[st->data.len - 1] == '\n') st->data.len--;
  if (st->nev < 4) {
    event *e = &st->ev[st->nev];
    memset(e, 0, sizeof *e);
    if (st->type.len)
      put(&e->type, st->type.p, st->type.len);
    else
      put(&e->type, "message", 7);
    put(&e->data, st->data.p, st->data.len);
    put(&e->id, st->last_id.p, st->last_id.len);
  }
  st->nev++;
  st->data.len = st->type.len = 0;
}

static void field(stream *st, const char *name, size_t nl, const char *v, size_t vl) {
  if (nl == 5 && !memcmp(name, "event", 5)) {
    st->n_event++;
    st->type.len = 0;
    put(&st->type, v, vl);
  } else if (nl == 4 && !memcmp(name, "data", 4)) {
    st->n_data++;
    put(&st->data, v, vl);
    put(&st->data, "\n", 1);
  } else if (nl == 2 && !memcmp(name, "id", 2)) {
    st->n_id++;
    if (!memchr(v, 0, vl)) { /* an id with NUL is ignored */
      st->last_id.len = 0;
      put(&st->last_id, v, vl);
    }
  } else {
    st->n_other++; /* retry, or any other field: ignored by the standard */
  }
}

static void line(stream *st, const char *l, size_t n) {
  const char *colon;
  if (n == 0) {
    dispatch(st);
    return;
  }
  if (l[0] == ':') {
    st->n_comment++;
    return;
  }
  colon = memchr(l, ':', n);
  if (colon) {
    size_t nl = (size_t)(colon - l), vs = nl + 1;
    if (vs < n && l[vs] == ' ') vs++; /* one leading space is part of the syntax */
    field(st, l, nl, l + vs, n - vs);
  } else {
    field(st, l, n, "", 0); /* the whole line is the field name */
  }
}

/* Lines end at CRLF, LF or CR. A stream may begin with one U+FEFF. */
static void parse(stream *st, const char *s, size_t n) {
  size_t i = 0, start;
  memset(st, 0, sizeof *st);
  if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) i = 3;
  start = i;
  for (; i < n; i++) {
    if (s[i] != '\r' && s[i] != '\n') continue;
    line(st, s + start, i - start);
    if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') i++;
    start = i + 1;
  }
  st->trailing = n - start; /* never dispatched: the line never ended */
}

/* ---- expectations ----------------------------------------------------- */

/* Data as the format can carry it: CRLF, CR and LF each one LF. Also
 * counts the lines (one more than the breaks). */
static void normalize(const char *d, size_t n, str *out, size_t *lines) {
  *lines = 1;
  for (size_t i = 0; i < n; i++) {
    if (d[i] == '\r' || d[i] == '\n') {
      if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n') i++;
      put(out, "\n", 1);
      (*lines)++;
    } else {
      put(out, d + i, 1);
    }
  }
}

static void check_event(const event *e, const str *want_data, const char *ev, size_t elen,
                        const char *id, size_t ilen) {
  ASSERT(same(&e->data, want_data->p, want_data->len));
  if (ev && elen)
    ASSERT(same(&e->type, ev, elen));
  else
    ASSERT(same(&e->type, "message", 7));
  if (id)
    ASSERT(same(&e->id, id, ilen));
  else
    ASSERT(e->id.len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  const char *ev = NULL, *id = NULL, *data;
  size_t elen = 0, ilen = 0, dlen, rest, lines, cap;
  char *e_buf = NULL, *i_buf = NULL, *d_buf, *out, *shrt;
  long need, r, retry;
  char rbuf[24];
  size_t rlen;
  str want = {0};
  stream st;

  if (size < 3) return 0;
  rest = size - 3;
  data = (const char *)in + 3;
  if (in[0] & 1) {
    elen = in[1] % (rest + 1);
    ev = data;
    data += elen;
    rest -= elen;
  }
  if (in[0] & 2) {
    ilen = in[2] % (rest + 1);
    id = data;
    data += ilen;
    rest -= ilen;
  }
  dlen = rest;
  retry = (in[0] & 4) ? (long)in[1] * 256 + in[2] : -1;
  rlen = retry >= 0 ? (size_t)snprintf(rbuf, sizeof rbuf, "%ld", retry) : 0;
  /* exact-size copies: the arguments are not NUL-terminated */
  if (ev) ev = e_buf = dup_exact(ev, elen);
  if (id) id = i_buf = dup_exact(id, ilen);
  data = d_buf = dup_exact(data, dlen);

  sse_fields f = {ev, elen, id, ilen, retry};
  need = sse_format(NULL, 0, data, dlen, &f);
  if ((ev && has_break(ev, elen)) || (id && has_break(id, ilen))) {
    ASSERT(need == -1);
    /* refused whatever the buffer */
    out = malloc(64);
    ASSERT(out);
    ASSERT(sse_format(out, 64, data, dlen, &f) == -1);
    free(out);
    goto done;
  }
  normalize(data, dlen, &want, &lines);
  out = malloc((size_t)need);
  ASSERT(out);
  r = sse_format(out, (size_t)need, data, dlen, &f);
  ASSERT(r == need);
  /* the size from first principles: the field lines plus the blank line */
  ASSERT((size_t)need == (id ? 4 + ilen + 1 : 0) + (ev ? 7 + elen + 1 : 0) +
                             (retry >= 0 ? 7 + rlen + 1 : 0) + lines * 7 +
                             (want.len - (lines - 1)) + 1);
  ASSERT(!memchr(out, '\r', (size_t)need)); /* LF only, always */

  /* a short buffer: a prefix, nothing past cap */
  cap = (size_t)in[0] >> 2;
  if (cap > (size_t)need) cap = (size_t)need;
  shrt = malloc(cap ? cap : 1);
  ASSERT(shrt);
  r = sse_format(cap ? shrt : NULL, cap, data, dlen, &f);
  ASSERT(r == need);
  ASSERT(cap == 0 || !memcmp(shrt, out, cap));
  free(shrt);

  /* what an EventSource makes of it */
  parse(&st, out, (size_t)need);
  ASSERT(st.trailing == 0);
  ASSERT(st.nev == 1);
  ASSERT(st.n_comment == 0 && st.n_other == (retry >= 0 ? 1u : 0u));
  ASSERT(st.n_id == (id ? 1u : 0u));
  ASSERT(st.n_event == (ev ? 1u : 0u));
  ASSERT(st.n_data == lines);
  check_event(&st.ev[0], &want, ev, elen, id, ilen);
  free_stream(&st);

  /* twice on one stream: two events */
  {
    char *two = malloc(2 * (size_t)need);
    ASSERT(two);
    memcpy(two, out, (size_t)need);
    memcpy(two + need, out, (size_t)need);
    parse(&st, two, 2 * (size_t)need);
    ASSERT(st.nev == 2 && st.trailing == 0);
    check_event(&st.ev[0], &want, ev, elen, id, ilen);
    check_event(&st.ev[1], &want, ev, elen, id, ilen);
    free_stream(&st);
    free(two);
  }
  free(out);

done:
  free(want.p);
  free(e_buf);
  free(i_buf);
  free(d_buf);
  return 0;
}

/* ---- stubs: sse.c's connection side, never reached from sse_format ------ */

static void unreachable(const char *what) {
  fprintf(stderr, "fuzz_sse: %s called\n", what);
  abort();
}

void rx_lock(void) { unreachable("rx_lock"); }
void rx_unlock(void) { unreachable("rx_unlock"); }
long rx_read(rx_conn *c, void *dst, size_t len) {
  (void)c, (void)dst, (void)len;
  unreachable("rx_read");
  return -1;
}
int rx_write(rx_conn *c, const void *data, size_t len) {
  (void)c, (void)data, (void)len;
  unreachable("rx_write");
  return -1;
}
int rx_write_buf(rx_conn *c, rx_buf *b) {
  (void)c, (void)b;
  unreachable("rx_write_buf");
  return -1;
}
void rx_close_now(rx_conn *c) {
  (void)c;
  unreachable("rx_close_now");
}
int dsp_post(dsp_actor *a, int kind, uint64_t conn, void *ptr, uint64_t arg) {
  (void)a, (void)kind, (void)conn, (void)ptr, (void)arg;
  unreachable("dsp_post");
  return -1;
}
void dsp_actor_release(dsp_actor *a) {
  (void)a;
  unreachable("dsp_actor_release");
}
void ps_drop_conn(up_conn *u) {
  (void)u;
  unreachable("ps_drop_conn");
}
up_conn *up_find(uint64_t conn, rx_conn **out) {
  (void)conn, (void)out;
  unreachable("up_find");
  return NULL;
}
int up_room(rx_conn *c, const up_conn *u, size_t more) {
  (void)c, (void)u, (void)more;
  unreachable("up_room");
  return -1;
}
int up_adopt(rx_conn *c, up_conn *u, const up_ops *ops, const http_settings *set, dsp_actor *actor,
             const rx_proto *proto, uint32_t flags) {
  (void)c, (void)u, (void)ops, (void)set, (void)actor, (void)proto, (void)flags;
  unreachable("up_adopt");
  return -1;
}
rx_buf *rx_buf_new(const void *data, size_t len) {
  (void)data, (void)len;
  unreachable("rx_buf_new");
  return NULL;
}
rx_buf **ps_form_add(ps_delivery *d, const void *owner, unsigned variant) {
  (void)d, (void)owner, (void)variant;
  unreachable("ps_form_add");
  return NULL;
}
