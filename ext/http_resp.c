/* http_resp: responses out (see http.h for the API, http_conn.h for the
 * response state machine this file is the writer of).
 *
 * Owns: checking the application's status and headers, the head (status
 * line, framing, Connection, Server and Date defaults), body bytes framed
 * as the head promised (Content-Length cut-off, chunked, close-delimited),
 * sendfile bodies, X-Sendfile, completing a response (and with it taking
 * the next pipelined request), and drain interest.
 *
 * Must never: parse requests or build the environ; write a body before its
 * head or after its completion (the response state says which is which).
 *
 * Threads: every public function takes the big lock itself, so it may be
 * called from any thread; the head buffer below is shared under that lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ascii.h"
#include "http_conn.h"
#include "http_facts.h"
#include "static.h"

/* One buffer for every head (responses and upgrades), reused: every
 * caller holds the big lock. */
static sbuf head_buf;

sbuf *http_resp_scratch(void) { return &head_buf; }

void http_resp_scratch_trim(void) {
  if (head_buf.cap > 65536) sb_free(&head_buf);
}

static int same_name(const char *a, size_t al, const char *b, size_t bl) {
  return al == bl && ascii_same_ci(a, b, al);
}

static int bad_value(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)v[i];
    if (ch == '\r' || ch == '\n' || ch == 0) return 1;
  }
  return 0;
}

static int value_has_token(const char *v, size_t n, const char *tok) {
  size_t tl = strlen(tok);
  for (size_t i = 0; i + tl <= n; i++) {
    if ((i == 0 || v[i - 1] == ',' || v[i - 1] == ' ' || v[i - 1] == '\t') &&
        same_name(v + i, tl, tok, tl) &&
        (i + tl == n || v[i + tl] == ',' || v[i + tl] == ' ' || v[i + tl] == '\t'))
      return 1;
  }
  return 0;
}

/* Whether the application's headers hold X-Sendfile (then the file's size
 * is the Content-Length, not the application's). */
static int names_xsendfile(const char *hd, size_t hlen, size_t count) {
  const char *p = hd, *end = hd + hlen;
  for (size_t k = 0; k < count; k++) {
    size_t nl = strnlen(p, (size_t)(end - p));
    if (same_name(p, nl, "x-sendfile", 10)) return 1;
    if (k + 1 == count) break; /* never step past the end */
    p += nl + 1;
    p += strnlen(p, (size_t)(end - p)) + 1;
  }
  return 0;
}

/* What one application header means to us. */
enum { AH_COPY, AH_DROP, AH_LENGTH, AH_XSEND, AH_CONNECTION, AH_DATE, AH_SERVER };

/* Whether `up` (an upgrade, or NULL) owns this header name. */
static int owned_by(const http_upgrader *up, const char *name, size_t nl) {
  if (!up || !up->owned) return 0;
  for (const char *const *o = up->owned; *o; o++)
    if (same_name(name, nl, *o, strlen(*o))) return 1;
  return 0;
}

static int classify(const char *name, size_t nl, const http_upgrader *upgrade) {
  if (same_name(name, nl, "content-length", 14)) return AH_LENGTH;
  if (same_name(name, nl, "transfer-encoding", 17) || same_name(name, nl, "keep-alive", 10) ||
      (upgrade && (same_name(name, nl, "upgrade", 7) || same_name(name, nl, "content-type", 12))) ||
      owned_by(upgrade, name, nl))
    return AH_DROP;
  if (!upgrade && same_name(name, nl, "x-sendfile", 10)) return AH_XSEND;
  if (same_name(name, nl, "connection", 10)) return AH_CONNECTION;
  if (same_name(name, nl, "date", 4)) return AH_DATE;
  if (same_name(name, nl, "server", 6)) return AH_SERVER;
  return AH_COPY;
}

/* Copy the application's "name\0value\0..." headers into `o` as header
 * lines, checking each (a name must be a token, a value free of CR, LF and
 * NUL). Framing and hop-by-hop headers are noted in `m`, not copied:
 * framing is ours (and PEP 3333 forbids hop-by-hop headers). An upgrade
 * also drops the ones its own head sets. Returns 0, -1 out of memory, -2
 * malformed. */
int http_resp_app_headers(sbuf *o, const char *hd, size_t hlen, size_t count, http_app_meta *m,
                          const http_upgrader *upgrade) {
  memset(m, 0, sizeof *m);
  /* the pair count must match the separators: see http_respond */
  size_t seps = 0;
  for (size_t i = 0; i < hlen; i++) seps += hd[i] == 0;
  if (hlen ? seps != 2 * count - 1 : count != 0) return -2;
  int xsend = !upgrade && names_xsendfile(hd, hlen, count);
  const char *p = hd, *end = hd + hlen;
  for (size_t k = 0; k < count; k++) {
    const char *name = p;
    size_t nl = strnlen(p, (size_t)(end - p));
    const char *val = name + nl + 1;
    size_t vl = strnlen(val, (size_t)(end - val));
    p = val + vl < end ? val + vl + 1 : end; /* never past one-past-the-end */
    if (!http1_is_token(name, nl) || bad_value(val, vl)) return -2;
    uint64_t cl;
    switch (classify(name, nl, upgrade)) {
    case AH_LENGTH:
      if (http1_parse_decimal(val, vl, &cl)) return -2;
      if (m->has_cl || upgrade || xsend) continue; /* one is enough */
      m->has_cl = 1;
      m->cl = cl;
      break; /* copied */
    case AH_DROP: continue;
    case AH_XSEND:
      m->xsend = val;
      m->xsend_len = vl;
      continue;
    case AH_CONNECTION:
      if (value_has_token(val, vl, "close")) m->close = 1;
      continue;
    case AH_DATE: m->has_date = 1; break;
    case AH_SERVER: m->has_server = 1; break;
    }
    if (sb_put(o, name, nl) || sb_put(o, ": ", 2) || sb_put(o, val, vl) || sb_put(o, "\r\n", 2))
      return -1;
  }
  return 0;
}

int http_resp_defaults(sbuf *o, const http_app_meta *m) {
  if (!m->has_server && sb_str(o, HTTP_SERVER_LINE)) return -1;
  if (!m->has_date) {
    size_t dl;
    const char *d = hf_date_line(&dl);
    if (sb_put(o, d, dl)) return -1;
  }
  return sb_put(o, "\r\n", 2);
}

/* X-Sendfile: the file the application named, opened to be sent (its size
 * in *size), or -1 after a line on stderr. */
static int xsend_open(const char *v, size_t n, uint64_t *size) {
  char path[4096];
  int fd = -ENAMETOOLONG;
  if (n < sizeof path) {
    memcpy(path, v, n);
    path[n] = 0;
    fd = st_open_file(path, size);
  }
  if (fd >= 0) return fd;
  char eb[128];
  fprintf(stderr, "iodine: X-Sendfile %.*s: %s, answering 404\n", (int)(n > 1024 ? 1024 : n), v,
          fd == -EINVAL ? "not an absolute path" : strerror_r(-fd, eb, sizeof eb));
  return -1;
}

/* What the application asked for, as build_head needs it. */
typedef struct {
  const char *status;
  size_t slen;
  const char *headers; /* "name\0value\0..." */
  size_t hlen, count;
  size_t blen;      /* the body given with the head */
  int finish;       /* ... and it is the whole body */
  int honour_xsend; /* act on X-Sendfile (not for the 404 that replaces it) */
} head_args;

/* The file an X-Sendfile head promised (fd -1: none). */
typedef struct {
  int fd;
  uint64_t len;
} head_file;

/* The status code of "NNN reason", or -1 when malformed. */
static int status_code(const char *status, size_t slen) {
  if (slen < 3 || slen > 512 || (slen > 3 && status[3] != ' ')) return -1;
  uint64_t code;
  if (http1_parse_decimal(status, 3, &code) || code < 100 || bad_value(status, slen)) return -1;
  return (int)code;
}

/* "Content-Length: N\r\n" at dst (64 bytes of room); returns its length. */
static size_t content_length_line(char *dst, uint64_t n) {
  static const char name[] = "Content-Length: ";
  memcpy(dst, name, sizeof name - 1);
  size_t l = sizeof name - 1 + ascii_u64(dst + sizeof name - 1, n);
  dst[l++] = '\r';
  dst[l++] = '\n';
  return l;
}

/* X-Sendfile honoured: the file's size is the Content-Length and the
 * application's body is dropped. Returns 0, -1 out of memory, -3 no file. */
static int head_xsend(http_conn *h, sbuf *o, const http_app_meta *m, head_file *f) {
  uint64_t size = 0;
  int fd = xsend_open(m->xsend, m->xsend_len, &size);
  if (fd < 0) return -3;
  char num[64];
  size_t l = content_length_line(num, size);
  if (sb_put(o, num, l)) {
    close(fd);
    return -1;
  }
  h->resp.framing = OUT_LENGTH;
  h->resp.left = 0;
  h->resp.discard = true; /* what the application writes is dropped */
  if (h->req.is_head || !size) {
    close(fd);
  } else {
    f->fd = fd;
    f->len = size;
  }
  return 0;
}

/* No length from the application: ours, chunked, or the close. */
static int head_framing(http_conn *h, sbuf *o, const head_args *a) {
  char num[64];
  if (a->finish && (a->blen || !h->req.is_head)) {
    size_t l = content_length_line(num, a->blen);
    if (sb_put(o, num, l)) return -1;
    h->resp.framing = OUT_LENGTH;
    h->resp.left = a->blen;
  } else if (!a->finish && !h->req.is_head) {
    if (h->req.http10) { /* the end of the body is the close */
      h->resp.framing = OUT_EOF;
      h->resp.close_after = true;
    } else {
      if (sb_str(o, "Transfer-Encoding: chunked\r\n")) return -1;
      h->resp.framing = OUT_CHUNKED;
    }
  }
  return 0;
}

/* Build the status line and headers into `o`, deciding the response's
 * framing. Returns 0, -2 (malformed) or -3: the application's X-Sendfile
 * names no file we can send. f->fd (else -1) is the file to send after the
 * head, f->len bytes. */
static int build_head(http_conn *h, sbuf *o, const head_args *a, head_file *f) {
  f->fd = -1;
  int code = status_code(a->status, a->slen);
  if (code < 0) return -2;
  o->len = 0;
  if (sb_put(o, "HTTP/1.1 ", 9) || sb_put(o, a->status, a->slen) || sb_put(o, "\r\n", 2)) return -1;
  http_app_meta m;
  int r = http_resp_app_headers(o, a->headers, a->hlen, a->count, &m, NULL);
  if (r) return r;
  int bodyless = code < 200 || code == 204 || code == 304;
  h->resp.framing = m.has_cl ? OUT_LENGTH : OUT_NONE;
  h->resp.left = m.cl;
  if (m.close) h->resp.close_after = true;
  h->resp.discard = h->req.is_head || bodyless;
  if (m.xsend && a->honour_xsend && !bodyless)
    r = head_xsend(h, o, &m, f);
  else if (!m.has_cl && !bodyless)
    r = head_framing(h, o, a);
  if (r) return r;
  int keep = h->req.keep_alive && !h->resp.close_after && !h->peer_gone && !rx_stopping();
  if (!keep) {
    h->resp.close_after = true;
    if (sb_str(o, "Connection: close\r\n")) return -1;
  } else if (h->req.http10 && sb_str(o, "Connection: keep-alive\r\n")) {
    return -1;
  }
  return http_resp_defaults(o, &m);
}

/* Body bytes, framed as the head promised. `head` (may be empty) goes
 * first in the same system call. */
static int emit(http_conn *h, const char *head, size_t hl, const char *d, size_t n) {
  http_resp *rs = &h->resp;
  if (rs->discard) n = 0;
  if (rs->framing == OUT_LENGTH) {
    if (n > rs->left) {
      n = (size_t)rs->left; /* more than the app promised: cut and close */
      rs->close_after = true;
    }
    rs->left -= n;
  }
  struct iovec iov[4];
  int cnt = 0;
  char size[24];
  if (hl) iov[cnt++] = (struct iovec){(void *)head, hl};
  if (n && rs->framing == OUT_CHUNKED) {
    int l = snprintf(size, sizeof size, "%zx\r\n", n);
    iov[cnt++] = (struct iovec){size, (size_t)l};
    iov[cnt++] = (struct iovec){(void *)d, n};
    iov[cnt++] = (struct iovec){"\r\n", 2};
  } else if (n) {
    iov[cnt++] = (struct iovec){(void *)d, n};
  }
  return cnt ? rx_writev(h->c, iov, cnt) : 0;
}

/* --- "sent" markers ------------------------------------------------------------
 * A finished response whose caller asked (http_want_sent) gets a mark: the
 * reactor's sent_total once every byte queued so far, its own last byte
 * included, has left. The oldest mark is the reactor's sent_watch; reaching
 * it posts DSP_HTTP_SENT. Marks are few (one per pipelined response whose
 * application asked), so a small array suffices. */

static void post_sent(http_conn *h, uint64_t n) {
  if (n) dsp_post(h->actor, DSP_HTTP_SENT, h->c->id, NULL, n);
}

static void mark_sent(http_conn *h) {
  rx_conn *c = h->c;
  h->resp.want_sent = false;
  if (!c->out_bytes && !h->nmarks) { /* already out: no marker needed */
    post_sent(h, 1);
    return;
  }
  if (h->nmarks == h->mcap) {
    uint32_t cap = h->mcap ? h->mcap * 2 : 4;
    uint64_t *m = realloc(h->marks, cap * sizeof *m);
    if (!m) { /* cannot wait for it: say so now rather than never */
      post_sent(h, 1);
      return;
    }
    h->marks = m;
    h->mcap = cap;
  }
  h->marks[h->nmarks++] = c->sent_total + c->out_bytes;
  c->sent_watch = h->marks[0];
}

void http_resp_on_sent(http_conn *h) {
  rx_conn *c = h->c;
  uint32_t k = 0;
  while (k < h->nmarks && h->marks[k] <= c->sent_total) k++;
  memmove(h->marks, h->marks + k, (h->nmarks - k) * sizeof *h->marks);
  h->nmarks -= k;
  c->sent_watch = h->nmarks ? h->marks[0] : 0;
  post_sent(h, k);
}

void http_resp_sent_all(http_conn *h) {
  uint64_t n = h->nmarks + (h->resp.want_sent ? 1u : 0u);
  h->nmarks = 0;
  h->resp.want_sent = false;
  h->c->sent_watch = 0;
  free(h->marks);
  h->marks = NULL;
  h->mcap = 0;
  post_sent(h, n);
}

int http_want_sent(uint64_t conn) {
  rx_lock();
  http_conn *h = http_conn_app(conn);
  int r = -1;
  if (h && h->resp.state != RESP_DONE) {
    h->resp.want_sent = true;
    r = 0;
  }
  rx_unlock();
  return r;
}

/* The response is whole: end its framing, then either close or go back to
 * reading requests, taking a pipelined one at once. */
static int complete(http_conn *h) {
  rx_conn *c = h->c;
  http_resp *rs = &h->resp;
  if (rs->framing == OUT_CHUNKED && rx_write(c, "0\r\n\r\n", 5)) return -1;
  if (rs->want_sent) mark_sent(h);
  if (rs->framing == OUT_LENGTH && rs->left && !rs->discard) rs->close_after = true;
  if (h->streaming) {
    /* the rest of a body the application did not read is not worth
     * reading: close, unless it has all arrived already */
    if (!h->stream_end || h->stream_err) rs->close_after = true;
    h->streaming = false;
    sb_free(&h->body);
    h->body_rd = 0;
    rx_broadcast(); /* a reader on another thread: the body is over */
  }
  int keep =
      h->req.keep_alive && !rs->close_after && !h->peer_gone && !rx_stopping() && !rx_peer_gone(c);
  http_resp_to(h, RESP_DONE);
  rs->drain_armed = false;
  if (!keep) {
    http_conn_to(h, H_DONE);
    if (h->rpos < h->rlen || !h->peer_gone) rx_linger(c);
    rx_close(c);
    return 0;
  }
  http_conn_to(h, H_HEAD);
  rx_touch(c);
  if (h->rpos < h->rlen) {
    /* Take the next pipelined request now, on whichever thread answered
     * this one. On the loop thread (inline mode) it joins the same batch
     * of events. On an application thread it is posted to the connection's
     * actor while this event still runs, so the same thread takes it next
     * (dispatch.c's same-connection path), and its answer joins the ones
     * held since send_head: no wake-up of the loop, no hand-off, one write
     * for the run. */
    http_conn_process(h);
    if (rx_closed(c)) return 0;
  }
  /* The run of answers ends here unless the application now holds a
   * request whose answer can join it (a streamed body may wait on the
   * peer: what is held goes now). */
  if (h->state != H_APP || h->streaming) rx_batch_end(c);
  if (h->read_paused || (h->state == H_HEAD && h->rpos < h->rlen)) {
    h->read_paused = false;
    rx_resume(c);
  }
  return 0;
}

/* The head (and first body bytes) of a response whose head was built:
 * sent, with the X-Sendfile file after it. `drop_rest`: the body that
 * follows is dropped (the 404 that replaced a missing X-Sendfile file). */
static int send_head(http_conn *h, const char *body, size_t blen, const head_file *f, int finish,
                     int drop_rest) {
  http_resp_to(h, RESP_HEAD_SENT);
  /* More pipelined requests wait behind this one: hold the answer so
   * theirs join it in one write. On the loop thread, until the end of the
   * turn (the cork taken when this request was dispatched is gone if a
   * turn ended in between: the application budget per turn ran out
   * first). On an application thread, which takes them one after another
   * (complete), in a batch that complete ends with the run; only a whole
   * answer starts one (a file or a large body ends it: rx_batch_begin). */
  if (h->rpos < h->rlen) {
    if (rx_in_loop_thread())
      rx_cork(h->c);
    else if (finish)
      rx_batch_begin(h->c);
  }
  int r = emit(h, head_buf.p, head_buf.len, body, blen);
  if (drop_rest) h->resp.discard = true;
  if (f->fd >= 0 && r == 0)
    r = rx_write_file(h->c, f->fd, 0, f->len); /* owns fd */
  else if (f->fd >= 0)
    close(f->fd);
  if (r == 0 && finish) r = complete(h);
  /* a streamed answer is not held: its head goes now, after the answers
   * held before it */
  if (r == 0 && !finish) rx_batch_end(h->c);
  return r;
}

/* http_respond and http_respond_begin: the head `a` describes, then `body`
 * (a->blen bytes), the response complete when a->finish. */
static int respond(uint64_t conn, const head_args *a, const char *body) {
  int finish = a->finish;
  size_t blen = a->blen;
  rx_lock();
  http_conn *h = http_conn_app(conn);
  int r = -1;
  if (h && h->resp.state == RESP_NONE) {
    head_file f;
    int missing = 0;
    r = build_head(h, &head_buf, a, &f);
    if (r == -3) { /* X-Sendfile named nothing we can send: 404 instead */
      static const char nf_hd[] = "Content-Type\0text/plain; charset=utf-8";
      static const char nf[] = "Not Found\n";
      head_args nfa = {"404 Not Found", 13, nf_hd, sizeof nf_hd - 1, 1, sizeof nf - 1, 1, 0};
      missing = 1;
      body = nf;
      blen = sizeof nf - 1;
      r = build_head(h, &head_buf, &nfa, &f);
    }
    if (r == 0) {
      r = send_head(h, body, blen, &f, finish, missing);
      if (r == 0 && missing) r = 1; /* the access log shows the 404 */
    } else {
      if (f.fd >= 0) close(f.fd);
      if (r == -1) rx_close_now(h->c);
    }
    http_resp_scratch_trim();
  }
  rx_unlock();
  return r;
}

int http_respond(uint64_t conn, const char *status, size_t slen, const char *headers, size_t hlen,
                 size_t count, const char *body, size_t blen) {
  head_args a = {status, slen, headers, hlen, count, blen, 1, 1};
  return respond(conn, &a, body);
}

int http_respond_begin(uint64_t conn, const char *status, size_t slen, const char *headers,
                       size_t hlen, size_t count, const char *body, size_t blen) {
  head_args a = {status, slen, headers, hlen, count, blen, 0, 1};
  return respond(conn, &a, body);
}

long http_write(uint64_t conn, const char *data, size_t len) {
  rx_lock();
  http_conn *h = http_conn_app(conn);
  long r = -1;
  if (h && h->resp.state == RESP_HEAD_SENT && emit(h, NULL, 0, data, len) == 0)
    r = (long)h->c->out_bytes;
  rx_unlock();
  return r;
}

/* len bytes of fd, framed; takes the fd. Returns 0 or -1. */
static int send_file_body(http_conn *h, int fd, uint64_t offset, uint64_t len) {
  http_resp *rs = &h->resp;
  if (rs->framing == OUT_LENGTH && len > rs->left) {
    len = rs->left;
    rs->close_after = true;
  }
  if (rs->discard || !len) {
    close(fd);
    return 0;
  }
  if (rs->framing == OUT_CHUNKED) {
    char size[24];
    int l = snprintf(size, sizeof size, "%llx\r\n", (unsigned long long)len);
    if (rx_write(h->c, size, (size_t)l)) {
      close(fd);
      return -1;
    }
  }
  if (rs->framing == OUT_LENGTH) rs->left -= len;
  if (rx_write_file(h->c, fd, offset, len)) return -1;
  return rs->framing == OUT_CHUNKED ? rx_write(h->c, "\r\n", 2) : 0;
}

long http_sendfile(uint64_t conn, int fd, uint64_t offset, uint64_t len) {
  rx_lock();
  http_conn *h = http_conn_app(conn);
  long r = -1;
  if (h && h->resp.state == RESP_HEAD_SENT) {
    if (send_file_body(h, fd, offset, len) == 0) r = (long)h->c->out_bytes;
  } else {
    close(fd);
  }
  rx_unlock();
  return r;
}

int http_finish(uint64_t conn) {
  rx_lock();
  http_conn *h = http_conn_app(conn);
  int r = (h && h->resp.state == RESP_HEAD_SENT) ? complete(h) : -1;
  rx_unlock();
  return r;
}

int http_abort(uint64_t conn) {
  rx_lock();
  http_conn *h = http_conn_find(conn);
  if (h) rx_close_now(h->c);
  rx_unlock();
  return 0;
}

int http_await_drain(uint64_t conn) {
  rx_lock();
  http_conn *h = http_conn_app(conn);
  int r = -1;
  if (h) {
    if (!h->c->out_bytes) {
      r = 1;
    } else {
      h->resp.drain_armed = true;
      r = 0;
    }
  }
  rx_unlock();
  return r;
}

long http_queued(uint64_t conn) {
  rx_lock();
  rx_conn *c = rx_find(conn);
  long r = c ? (long)c->out_bytes : -1;
  rx_unlock();
  return r;
}
