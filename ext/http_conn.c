/* http_conn: connection input and the two state machines (see http.h for
 * what the HTTP core owns, http_conn.h for the states and how the core is
 * split into files).
 *
 * Owns: reading off the socket into the read buffer (capped by the head
 * limit), the parse loop, request bodies (memory, then an unlinked temp
 * file; or, with stream_body, handed to the application as they arrive
 * through a bounded window, http_body_read), `Expect: 100-continue`, request dispatch, static answers (through
 * static.c, without the application), error answers, the head and body
 * timeouts, graceful stop, freeing, and the transition functions that are
 * the only writers of the connection and response states.
 *
 * Must never: build a response head for the application (http_resp.c) or
 * let pipelined bytes be parsed while a response is in progress.
 *
 * Threads: the loop thread, big lock held (the reactor's callbacks);
 * http_conn_process also on the application thread that completed a
 * response (http_resp.c's complete, big lock held: the next pipelined
 * request is parsed and posted from there); http_body_read is called from
 * application threads: it takes the big lock and waits on it
 * (rx_wait_ms), never on the loop thread. */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "accesslog.h"
#include "ascii.h"
#include "http_conn.h"
#include "http_facts.h"
#include "static.h"

#define RBUF_START 4096
/* Static answers queue files, not bytes: past this much queued output (or
 * this many queued writes, each holding an open file) the next pipelined
 * request waits (WAIT) until the peer has read what it asked for. */
#define STATIC_HIGH_WATER (256 * 1024)
#define STATIC_MAX_QUEUED 16

static const rx_proto http_proto;

/* --- the state machines ------------------------------------------------------ */

/* Legal moves, one bit per target state (h11's shape: a move with no entry
 * is a bug, not a silent flag change). */
#define B(s) (1u << (s))
static const unsigned conn_moves[H_NSTATES] = {
    [H_HEAD] = B(H_BODY) | B(H_APP) | B(H_WAIT) | B(H_DONE),
    [H_BODY] = B(H_APP) | B(H_DONE),
    [H_APP] = B(H_HEAD) | B(H_DONE),
    [H_WAIT] = B(H_HEAD) | B(H_DONE),
    [H_DONE] = 0,
};
static const unsigned resp_moves[RESP_NSTATES] = {
    [RESP_NONE] = B(RESP_NONE) | B(RESP_HEAD_SENT), /* NONE->NONE: a first request */
    [RESP_HEAD_SENT] = B(RESP_DONE),
    [RESP_DONE] = B(RESP_NONE),
};
#undef B

bool http_conn_may(http_state from, http_state to) {
  return from < H_NSTATES && to < H_NSTATES && (conn_moves[from] >> to & 1u);
}

bool http_resp_may(http_resp_state from, http_resp_state to) {
  return from < RESP_NSTATES && to < RESP_NSTATES && (resp_moves[from] >> to & 1u);
}

void http_conn_to(http_conn *h, http_state to) {
  assert(http_conn_may(h->state, to));
  h->state = to;
}

void http_resp_to(http_conn *h, http_resp_state to) {
  assert(http_resp_may(h->resp.state, to));
  h->resp.state = to;
}

void http_resp_begin(http_conn *h) {
  http_resp_to(h, RESP_NONE);
  h->resp = (http_resp){.state = RESP_NONE, .framing = OUT_NONE};
}

http_conn *http_conn_find(uint64_t id) {
  rx_conn *c = rx_find(id);
  return c && c->proto == &http_proto ? c->udata : NULL;
}

http_conn *http_conn_app(uint64_t id) {
  http_conn *h = http_conn_find(id);
  return h && h->state == H_APP ? h : NULL;
}

int http_conn_states(uint64_t id, http_state *conn, http_resp_state *resp,
                     http_out_framing *framing) {
  http_conn *h = http_conn_find(id);
  if (!h) return -1;
  *conn = h->state;
  *resp = h->resp.state;
  *framing = h->resp.framing;
  return 0;
}

/* --- error answers ------------------------------------------------------------ */

/* Answer a request we will not serve, then close. The stream can no longer
 * be trusted after most of these, so we never read another request from
 * it; lingering lets the answer reach a peer that is still sending. */
void http_conn_fail(http_conn *h, int code, const char *extra) {
  http_conn_refuse(h, code, extra, NULL);
}

/* The same, naming the request in the access log once its line was read. */
void http_conn_refuse(http_conn *h, int code, const char *extra, const http1_request *q) {
  char buf[512];
  size_t dl;
  const char *date = hf_date_line(&dl);
  const char *why = hf_reason(code);
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\n" HTTP_SERVER_LINE "%.*s%s"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                   code, why, (int)dl, date, extra, strlen(why) + 1, why);
  http_conn_to(h, H_DONE);
  rx_linger(h->c);
  rx_write(h->c, buf, (size_t)n);
  rx_close(h->c);
  if (al_on())
    al_log(&(al_entry){.peer = h->c->peer,
                       .method = q ? q->method : NULL,
                       .mlen = q ? q->method_len : 0,
                       .target = q ? q->target : NULL,
                       .tlen = q ? q->target_len : 0,
                       .minor = q ? q->version_minor : 1,
                       .status = code,
                       .bytes = (uint64_t)n,
                       .started_us = al_now_us()});
}

static void fail(http_conn *h, int code) { http_conn_fail(h, code, ""); }
static void fail_req(http_conn *h, int code, const http1_request *q) {
  http_conn_refuse(h, code, "", q);
}

/* --- bodies -------------------------------------------------------------------- */

static int temp_file(void) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
#ifdef O_TMPFILE
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
#endif
  char path[4096];
  snprintf(path, sizeof path, "%s/iodine-body-XXXXXX", dir);
  fd = mkostemp(path, O_CLOEXEC);
  if (fd >= 0) unlink(path);
  return fd;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int body_put(http_conn *h, const char *p, size_t n) {
  if (!n) return 0;
  h->body_size += n;
  if (h->body_fd < 0 && h->body.len + n > h->set->spill) {
    h->body_fd = temp_file();
    if (h->body_fd < 0) return -1;
    if (write_all(h->body_fd, h->body.p, h->body.len)) return -1;
    sb_free(&h->body);
  }
  if (h->body_fd >= 0) return write_all(h->body_fd, p, n);
  return sb_put(&h->body, p, n);
}

static void body_reset(http_conn *h) {
  sb_free(&h->body);
  h->body_rd = 0;
  if (h->body_fd >= 0) close(h->body_fd);
  h->body_fd = -1;
  h->body_size = 0;
}

/* --- requests in ------------------------------------------------------------- */

static void dispatch(http_conn *h) {
  /* a streamed chunked body has no length yet: no CONTENT_LENGTH (the
   * application reads to the end; wsgi.input_terminated) */
  if (h->fr.body != HTTP1_BODY_NONE && !(h->streaming && h->fr.body == HTTP1_BODY_CHUNKED)) {
    char n[ASCII_U64_MAX];
    size_t l = ascii_u64(n, h->streaming ? h->fr.content_length : h->body_size);
    if (http_env_add(&h->env, "CONTENT_LENGTH", n, l)) goto oom;
  }
  http_req *r = calloc(1, sizeof *r);
  if (!r) goto oom;
  r->conn = h->c->id;
  r->tag = h->set->tag;
  r->is_head = h->req.is_head;
  r->upgrade = h->upgrade;
  r->env = h->env.p;
  r->env_len = h->env.len;
  h->env.p = NULL;
  h->env.len = h->env.cap = 0;
  r->body = h->body.p;
  r->body_len = h->body.len;
  r->body_fd = h->body_fd;
  r->body_size = h->body_size;
  r->body_stream = h->streaming;
  if (r->body_fd >= 0) lseek(r->body_fd, 0, SEEK_SET);
  h->body.p = NULL;
  h->body.len = h->body.cap = 0;
  h->body_fd = -1;
  h->body_size = 0;
  http_conn_to(h, H_APP);
  http_resp_begin(h);
  /* More pipelined requests behind this one: batch their answers. */
  if (h->rpos < h->rlen && rx_in_loop_thread()) rx_cork(h->c);
  h->served = true;
  if (dsp_post(h->actor, DSP_HTTP_REQUEST, r->conn, r, 0) == 0) return;
  h->env.p = r->env; /* give the memory back to be freed with the conn */
  free(r);
oom:
  fail(h, 503);
}

static http1_header *hdr_array(size_t n) {
  static http1_header *arr;
  static size_t cap;
  if (n > cap) {
    http1_header *a = realloc(arr, n * sizeof *a);
    if (!a) return NULL;
    arr = a;
    cap = n;
  }
  return arr;
}

/* The one header of this name; NULL when absent or repeated (a field that
 * must appear once, repeated, is as good as malformed). */
const http1_header *http_conn_header(const http1_request *q, const char *name, size_t len) {
  const http1_header *found = NULL;
  for (size_t i = 0; i < q->num_headers; i++)
    if (http1_name_is(&q->headers[i], name, len)) {
      if (found) return NULL;
      found = &q->headers[i];
    }
  return found;
}

static void value_of(const http1_request *q, const char *name, size_t len, const char **v,
                     size_t *vl) {
  const http1_header *x = http_conn_header(q, name, len);
  *v = x ? x->value : NULL;
  *vl = x ? x->value_len : 0;
}

/* GET or HEAD of a file under the public folder (static.h), answered here
 * without the application. The connection is in H_HEAD, so every earlier
 * response is complete and this one leaves in request order. A request
 * with a body or one that may upgrade is the application's. Returns 1 when
 * answered (the head is consumed), 0 when the application answers. */
static int serve_static(http_conn *h, const http1_request *q, size_t consumed) {
  int get = q->method_len == 3 && !memcmp(q->method, "GET", 3);
  int head = q->method_len == 4 && !memcmp(q->method, "HEAD", 4);
  if ((!get && !head) || h->upgrader || h->fr.body == HTTP1_BODY_CHUNKED ||
      (h->fr.body == HTTP1_BODY_LENGTH && h->fr.content_length))
    return 0;
  st_request rq = {.target = q->target, .target_len = q->target_len, .is_head = head};
  value_of(q, "if-none-match", 13, &rq.if_none_match, &rq.if_none_match_len);
  value_of(q, "if-modified-since", 17, &rq.if_modified_since, &rq.if_modified_since_len);
  value_of(q, "range", 5, &rq.range, &rq.range_len);
  value_of(q, "if-range", 8, &rq.if_range, &rq.if_range_len);
  value_of(q, "accept-encoding", 15, &rq.accept_encoding, &rq.accept_encoding_len);
  uint64_t started = al_on() ? al_now_us() : 0;
  st_answer a;
  if (!st_answer_request(h->set->public_root, &rq, &a)) return 0;
  rx_conn *c = h->c;
  h->rpos += consumed;
  h->served = true;
  h->req = (http_reqinfo){
      .is_head = head, .http10 = q->version_minor == 0, .keep_alive = h->fr.keep_alive};
  int keep = h->req.keep_alive && !h->resp.close_after && !rx_stopping();
  const char *conn = !keep           ? "Connection: close\r\n"
                     : h->req.http10 ? "Connection: keep-alive\r\n"
                                     : "";
  size_t dl;
  const char *date = hf_date_line(&dl);
  struct iovec iov[6] = {
      {a.head, a.head_len}, {(void *)HTTP_SERVER_LINE, sizeof HTTP_SERVER_LINE - 1},
      {(void *)date, dl},   {(void *)conn, strlen(conn)},
      {(void *)"\r\n", 2},  {(void *)a.body, a.body_len},
  };
  if (h->rpos < h->rlen && rx_in_loop_thread()) rx_cork(c); /* batch pipelined answers */
  int bad = rx_writev(c, iov, a.body_len ? 6 : 5);
  if (a.fd >= 0) {
    if (bad)
      close(a.fd);
    else
      bad = rx_write_file(c, a.fd, a.offset, a.length); /* owns the fd now */
  }
  if (bad) return 1; /* the connection is going */
  if (started) {
    int status = a.status;
    uint64_t bytes = a.body_len + (a.fd >= 0 ? a.length : 0);
    al_log(&(al_entry){.peer = c->peer,
                       .method = q->method,
                       .mlen = q->method_len,
                       .target = q->target,
                       .tlen = q->target_len,
                       .minor = q->version_minor,
                       .status = status,
                       .bytes = head ? 0 : bytes,
                       .started_us = started});
  }
  if (!keep) {
    http_conn_to(h, H_DONE);
    rx_linger(c);
    rx_close(c);
    return 1;
  }
  rx_touch(c);
  if (c->out_bytes > STATIC_HIGH_WATER || c->out_count > STATIC_MAX_QUEUED)
    http_conn_to(h, H_WAIT); /* on_drained resumes */
  return 1;
}

/* Returns 1 when a request head was taken (go on), 0 to wait or stop. */
static int parse_head(http_conn *h) {
  const http_settings *s = h->set;
  http1_request q = {0};
  http1_limits lim = {s->max_line, s->max_headers};
  q.headers = hdr_array(s->max_headers);
  if (!q.headers) {
    fail(h, 503);
    return 0;
  }
  size_t avail = h->rlen - h->rpos;
  int r = http1_parse_request(h->rbuf + h->rpos, avail, &h->scanned, &lim, &q);
  if (r == HTTP1_INCOMPLETE) {
    if (avail >= s->max_head) fail(h, 431);
    return 0;
  }
  h->scanned = 0;
  if (r < 0) {
    fail(h, -r);
    return 0;
  }
  if ((size_t)r > s->max_head) {
    fail(h, 431);
    return 0;
  }
  int e = http1_request_framing(&q, &h->fr);
  if (e < 0) {
    fail_req(h, -e, &q);
    return 0;
  }
  if (q.method_len == 7 && !memcmp(q.method, "CONNECT", 7)) {
    fail_req(h, 405, &q); /* we are not a tunnel */
    return 0;
  }
  if (h->fr.body == HTTP1_BODY_LENGTH && h->fr.content_length > s->max_body) {
    fail_req(h, 413, &q); /* answered before the body is read */
    return 0;
  }
  if (http_upgrade_check(h, &q)) return 0;
  if (s->public_root && serve_static(h, &q, (size_t)r)) return 1;
  e = http_env_build(h, &q);
  if (e) {
    fail_req(h, e == -2 ? 400 : 503, &q);
    return 0;
  }
  h->req = (http_reqinfo){.is_head = q.method_len == 4 && !memcmp(q.method, "HEAD", 4),
                          .http10 = q.version_minor == 0,
                          .keep_alive = h->fr.keep_alive};
  h->rpos += (size_t)r;
  body_reset(h);
  h->streaming = false;
  int has_body =
      h->fr.body == HTTP1_BODY_CHUNKED || (h->fr.body == HTTP1_BODY_LENGTH && h->fr.content_length);
  if (!has_body) {
    dispatch(h);
    return 1;
  }
  h->body_left = h->fr.content_length;
  memset(&h->ck, 0, sizeof h->ck);
  h->body_since = rx_now_ms();
  h->body_got = 0;
  if (s->stream_body && !h->upgrader) {
    /* The application is called now and reads the body as it arrives;
     * `100 Continue` waits for its first read (an app that answers without
     * reading never asked for the body). */
    h->streaming = true;
    h->stream_end = false;
    h->stream_err = 0;
    h->body_rd = 0;
    h->continue_owed = h->fr.expect_continue && !h->req.http10;
    dispatch(h);
    if (h->state == H_APP) http_stream_feed(h);
    return 1;
  }
  if (h->fr.expect_continue && !h->req.http10) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (rx_write(h->c, cont, sizeof cont - 1)) return 0;
  }
  http_conn_to(h, H_BODY);
  h->body_since = rx_now_ms();
  h->body_got = 0;
  return 1;
}

static int read_body_some(http_conn *h);

/* --- streamed bodies (stream_body) --------------------------------------------
 * In APP with `streaming`, body bytes move from the read buffer to the
 * window (h->body from body_rd) as the application takes them: at most
 * HTTP_STREAM_WINDOW wait there, and once the read buffer is full too the
 * connection stops reading (read_paused) until http_body_read makes room.
 * Memory per upload is the window plus the read buffer, whatever its size. */

static int body_too_slow(const http_conn *h);

/* The body will not come: readers learn it at once; the answer is ours
 * when the application has not begun one, else the connection is cut. */
static void stream_fail(http_conn *h, int code) {
  h->stream_err = code;
  h->stream_end = true;
  rx_broadcast();
  if (h->resp.state == RESP_NONE)
    fail(h, code);
  else
    rx_close_now(h->c);
}

void http_stream_feed(http_conn *h) {
  if (!h->streaming || h->stream_end || rx_closed(h->c)) return;
  size_t avail = h->rlen - h->rpos;
  size_t held = h->body.len - h->body_rd;
  if (held >= HTTP_STREAM_WINDOW) return; /* the application is behind */
  if (!avail) {                           /* (a client waiting for its 100 Continue is not slow) */
    if (!h->read_paused && !h->continue_owed && body_too_slow(h)) stream_fail(h, 408);
    return;
  }
  if (h->body_rd) { /* keep the window at the front */
    memmove(h->body.p, h->body.p + h->body_rd, held);
    h->body.len = held;
    h->body_rd = 0;
  }
  size_t room = HTTP_STREAM_WINDOW - held;
  char *p = h->rbuf + h->rpos;
  size_t used, got;
  if (h->fr.body == HTTP1_BODY_LENGTH) {
    used = avail < room ? avail : room;
    if (used > h->body_left) used = (size_t)h->body_left;
    got = used;
    h->body_left -= used;
    if (!h->body_left) h->stream_end = true;
  } else {
    size_t in = avail < room ? avail : room;
    size_t n = in;
    ssize_t r = http1_decode_chunked(&h->ck, p, &n);
    if (r < 0 && r != HTTP1_INCOMPLETE) {
      stream_fail(h, (int)-r);
      return;
    }
    if (h->ck.total > h->set->max_body || h->ck.chunk_left > h->set->max_body - h->ck.total) {
      stream_fail(h, 413);
      return;
    }
    got = n;
    used = r == HTTP1_INCOMPLETE ? in : in - (size_t)r;
    if (r != HTTP1_INCOMPLETE) h->stream_end = true;
  }
  if (sb_put(&h->body, p, got)) {
    stream_fail(h, 503);
    return;
  }
  h->rpos += used;
  h->body_got += used;
  rx_broadcast();
  if (!h->stream_end && body_too_slow(h)) stream_fail(h, 408);
}

long http_body_read(uint64_t conn, char *dst, size_t len) {
  long r;
  rx_lock();
  for (;;) {
    http_conn *h = http_conn_app(conn);
    if (!h || !h->streaming) {
      r = -1;
      break;
    }
    if (h->continue_owed) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      h->continue_owed = false;
      if (h->resp.state == RESP_NONE) rx_write(h->c, cont, sizeof cont - 1);
    }
    size_t held = h->body.len - h->body_rd;
    if (held && len) {
      size_t k = held < len ? held : len;
      memcpy(dst, h->body.p + h->body_rd, k);
      h->body_rd += k;
      if (h->body_rd == h->body.len) h->body_rd = h->body.len = 0;
      if (h->read_paused || h->rpos < h->rlen) {
        /* room again: take what the read buffer holds, then the socket */
        bool was_paused = h->read_paused;
        h->read_paused = false;
        if (was_paused) { /* the wait was ours, not the peer's */
          h->body_since = rx_now_ms();
          h->body_got = 0;
        }
        http_stream_feed(h);
        if (!rx_closed(h->c)) rx_resume(h->c);
      }
      r = (long)k;
      break;
    }
    if (h->stream_err) {
      r = -1;
      break;
    }
    if (h->stream_end || !len) {
      r = 0;
      break;
    }
    if (rx_in_loop_thread()) {
      r = -2;
      break;
    }
    rx_wait_ms(1000); /* a feed, a failure or the close broadcasts */
  }
  rx_unlock();
  return r;
}

/* Slow bodies: every byte resets the idle clock, so a body trickled byte by
 * byte would hold its connection for as long as its declared length lasts.
 * After a grace period (the header timeout), a body must have averaged at
 * least min_body_rate bytes a second since it began (408 otherwise). */
static int body_too_slow(const http_conn *h) {
  uint64_t rate = h->set->min_body_rate, grace = h->set->header_timeout_ms;
  if (!rate || !grace) return 0;
  uint64_t elapsed = rx_now_ms() - h->body_since;
  return elapsed > grace && h->body_got * 1000 < rate * (elapsed - grace);
}

static int read_body(http_conn *h) {
  size_t avail = h->rlen - h->rpos;
  if (!avail) return 0;
  size_t before = h->rpos;
  int r = read_body_some(h);
  h->body_got += h->rpos >= before ? h->rpos - before : 0;
  return r;
}

static int read_body_some(http_conn *h) {
  size_t avail = h->rlen - h->rpos;
  char *p = h->rbuf + h->rpos;
  if (h->fr.body == HTTP1_BODY_LENGTH) {
    size_t take = avail < h->body_left ? avail : (size_t)h->body_left;
    if (body_put(h, p, take)) {
      fail(h, 503);
      return 0;
    }
    h->rpos += take;
    h->body_left -= take;
    if (h->body_left) return 0;
    dispatch(h);
    return 1;
  }
  size_t n = avail;
  ssize_t r = http1_decode_chunked(&h->ck, p, &n);
  if (r < 0 && r != HTTP1_INCOMPLETE) {
    fail(h, (int)-r);
    return 0;
  }
  /* A chunk's declared size counts at once: no need to read a body we will
   * refuse. */
  if (h->ck.total > h->set->max_body || h->ck.chunk_left > h->set->max_body - h->ck.total) {
    fail(h, 413);
    return 0;
  }
  if (body_put(h, p, n)) {
    fail(h, 503);
    return 0;
  }
  if (r == HTTP1_INCOMPLETE) {
    h->rpos = h->rlen;
    return 0;
  }
  h->rpos = h->rlen - (size_t)r;
  dispatch(h);
  return 1;
}

/* Slowloris: a head that trickles in byte by byte resets the idle clock on
 * every byte, so the head as a whole gets a deadline. While one is partly
 * here, the idle limit is the header timeout too (a silent peer is cut as
 * soon); a trickling one is caught at its first byte past the deadline. */
static void head_begun(http_conn *h) {
  uint32_t t = h->set->header_timeout_ms;
  h->head_since = rx_now_ms();
  if (t && (!h->set->keepalive_ms || t < h->set->keepalive_ms)) h->c->timeout_ms = t;
}

static void head_done(http_conn *h) {
  h->head_since = 0;
  h->c->timeout_ms = h->set->keepalive_ms;
}

static int head_overdue(const http_conn *h) {
  uint32_t t = h->set->header_timeout_ms;
  return t && h->head_since && rx_now_ms() - h->head_since >= t;
}

void http_conn_process(http_conn *h) {
  while (!rx_closed(h->c)) {
    if (h->state == H_HEAD) {
      if (h->rpos == h->rlen) return;
      if (!h->head_since) head_begun(h);
      if (!parse_head(h)) {
        if (!rx_closed(h->c) && head_overdue(h)) fail(h, 408);
        return;
      }
      head_done(h);
    } else if (h->state == H_BODY) {
      if (!read_body(h)) {
        if (h->state == H_BODY && !rx_closed(h->c) && body_too_slow(h)) fail(h, 408);
        return;
      }
    } else if (h->state == H_APP && h->streaming) {
      http_stream_feed(h);
      return;
    } else {
      return;
    }
  }
}

/* Room to read into: compact, then grow up to the head limit. */
static int make_room(http_conn *h) {
  if (h->rpos == h->rlen) h->rpos = h->rlen = 0;
  if (h->rlen < h->rcap) return 1;
  if (h->rpos) {
    memmove(h->rbuf, h->rbuf + h->rpos, h->rlen - h->rpos);
    h->rlen -= h->rpos;
    h->rpos = 0;
    return 1;
  }
  size_t limit = h->set->max_head < RBUF_START ? RBUF_START : h->set->max_head;
  if (h->rcap >= limit) return 0;
  size_t cap = h->rcap * 2 > limit ? limit : h->rcap * 2;
  char *p = realloc(h->rbuf, cap);
  if (!p) return 0;
  h->rbuf = p;
  h->rcap = cap;
  return 1;
}

static void on_eof(http_conn *h) {
  switch (h->state) {
  case H_HEAD:
    if (h->rpos == h->rlen)
      rx_close(h->c); /* a quiet end between requests */
    else
      fail(h, 400); /* cut off inside a head */
    break;
  case H_BODY: fail(h, 400); break;
  case H_APP:
    h->peer_gone = true;                                     /* finish this response, then close */
    if (h->streaming && !h->stream_end) stream_fail(h, 400); /* cut off mid-body */
    break;
  case H_WAIT: break; /* seen again once drained */
  case H_DONE:
  case H_NSTATES: rx_close(h->c); break;
  }
}

static void on_data(rx_conn *c) {
  http_conn *h = c->udata;
  for (;;) {
    if (h->state == H_HEAD || h->state == H_BODY || (h->state == H_APP && h->streaming)) {
      http_conn_process(h);
      if (rx_closed(c)) return;
    }
    if (h->state == H_DONE) return;
    if (!make_room(h)) {
      h->read_paused = true; /* rx_resume() when the response completes */
      return;
    }
    long n = rx_read(c, h->rbuf + h->rlen, h->rcap - h->rlen);
    if (n == 0) return;
    if (n < 0) {
      if (h->state == H_HEAD || h->state == H_BODY || (h->state == H_APP && h->streaming))
        http_conn_process(h);
      if (!rx_closed(c)) on_eof(h);
      return;
    }
    h->rlen += (size_t)n;
  }
}

static void on_timeout(rx_conn *c) {
  http_conn *h = c->udata;
  if (h->state == H_APP && h->streaming && !h->stream_end && !h->read_paused && !h->continue_owed &&
      h->body.len == h->body_rd) {
    stream_fail(h, 408); /* the application waits for a body that stalled */
    return;
  }
  if (h->state == H_APP && !c->out_bytes) return; /* the application works */
  if (h->state == H_WAIT || (h->state == H_HEAD && h->rpos == h->rlen))
    rx_close_now(c);
  else if (h->state == H_HEAD || h->state == H_BODY)
    fail(h, 408);
  else
    rx_close_now(c); /* a peer that stopped reading our response */
}

/* How long a connection accepted just before a graceful stop gets for its
 * first request to arrive (a client connects, then writes: closing it in
 * between would fail a request the server had already taken on). */
#define FRESH_GRACE_MS 1000

static void on_shutdown(rx_conn *c) {
  http_conn *h = c->udata;
  if ((h->state == H_HEAD || h->state == H_WAIT) && h->rpos == h->rlen) {
    if (h->served) { /* idle keep-alive: closing it is what clients expect */
      rx_close(c);
      return;
    }
    c->timeout_ms = FRESH_GRACE_MS;
    rx_touch(c);
    rx_resume(c); /* its request may be waiting unread already */
    return;
  }
  h->resp.close_after = true;
}

static void on_drained(rx_conn *c) {
  http_conn *h = c->udata;
  if (h->state == H_WAIT) { /* the peer read the files: the next request */
    http_conn_to(h, H_HEAD);
    rx_resume(c);
    return;
  }
  if (h->state == H_APP && h->resp.drain_armed) {
    h->resp.drain_armed = false;
    dsp_post(h->actor, DSP_HTTP_DRAIN, c->id, NULL, 0);
  }
}

static void on_sent(rx_conn *c) { http_resp_on_sent(c->udata); }

static void on_close(rx_conn *c) {
  http_conn *h = c->udata;
  if (h->state == H_APP && h->resp.drain_armed) /* wake the suspended response */
    dsp_post(h->actor, DSP_HTTP_DRAIN, c->id, NULL, 0);
  http_resp_sent_all(h);            /* what never left never will: finished all the same */
  if (h->streaming) rx_broadcast(); /* a reader waiting for its body: gone */
  dsp_actor_release(h->actor);
  http_conn_release(h);
}

/* The one place an http_conn's memory is freed (on_close, or an upgrade
 * that took the socket and the actor). */
void http_conn_release(http_conn *h) {
  body_reset(h);
  sb_free(&h->env);
  free(h->rbuf);
  free(h->marks);
  free(h);
}

static const rx_proto http_proto = {
    .on_data = on_data,
    .on_drained = on_drained,
    .on_timeout = on_timeout,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
    .on_sent = on_sent,
};

rx_conn *http_attach(int fd, const http_settings *s, const char *peer, uint16_t peer_port) {
  http_conn *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->set = s;
  h->body_fd = -1;
  h->rbuf = malloc(RBUF_START);
  h->rcap = RBUF_START;
  h->actor = dsp_actor_new();
  if (!h->rbuf || !h->actor) goto fail;
  h->c = rx_attach(fd, &http_proto, h);
  if (!h->c) goto fail;
  snprintf(h->c->peer, sizeof h->c->peer, "%s", peer);
  h->c->peer_port = peer_port;
  h->c->timeout_ms = s->keepalive_ms;
  /* The peer may have written before we registered: edge-triggered epoll
   * would not report that data, so look for it now. */
  rx_resume(h->c);
  return h->c;
fail:
  dsp_actor_release(h->actor);
  free(h->rbuf);
  free(h);
  return NULL;
}

void http_req_free(http_req *r) {
  if (!r) return;
  free(r->env);
  free(r->body);
  if (r->body_fd >= 0) close(r->body_fd);
  free(r);
}
