/* http: see http.h for what this file owns.
 *
 * A connection moves through an explicit state machine:
 *
 *   H_HEAD --head parsed, body expected--> H_BODY --body complete--> H_APP
 *   H_HEAD --head parsed, no body-------------------------------->  H_APP
 *   H_APP  --response complete, keep-alive--> H_HEAD
 *   H_HEAD --GET/HEAD of a public file: answered here (static.c)--> H_HEAD
 *   any    --error answer, or close after response--> H_DONE (closing)
 *
 * In H_APP the application owns the request. Bytes that arrive meanwhile
 * (pipelined requests) are buffered, up to the head limit, and parsed only
 * after the response is complete: that is what keeps responses in order. */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ascii.h"
#include "accesslog.h"
#include "dispatch.h"
#include "http1_parser.h"
#include "proxy.h"
#include "reactor.h"
#include "sse.h"
#include "static.h"
#include "upgrade.h"
#include "websocket.h"
#include "ws_frame.h"

#define RBUF_START 4096
#define SERVER_LINE "Server: iodine-py\r\n"
/* Static answers queue files, not bytes: past this much queued output (or
 * this many queued writes, each holding an open file) the next pipelined
 * request waits until the peer has read what it asked for. */
#define STATIC_HIGH_WATER (256 * 1024)
#define STATIC_MAX_QUEUED 16

typedef enum { H_HEAD, H_BODY, H_APP, H_DONE } http_state;

typedef struct {
  char *p;
  size_t len, cap;
} sbuf;

typedef struct http_conn {
  rx_conn *c;
  const http_settings *set;
  dsp_actor *actor;
  http_state state;
  /* input */
  char *rbuf;
  size_t rpos, rlen, rcap, scanned;
  http1_framing fr;
  http1_chunked ck;
  uint64_t body_left;
  sbuf body;
  int body_fd;
  uint64_t body_size;
  sbuf env;
  int upgrade;        /* what the request may upgrade to (UP_*) */
  char ws_accept[29]; /* Sec-WebSocket-Accept, computed at parse time */
  /* the response in progress */
  uint64_t resp_left; /* bytes still owed against the app's Content-Length */
  uint64_t head_since; /* when the head now arriving began (0: none) */
  uint64_t body_since; /* when the body now arriving began */
  uint64_t body_got;   /* body bytes taken off the wire since then */
  unsigned read_paused : 1, keep_alive : 1, is_head : 1, http10 : 1;
  unsigned head_sent : 1, chunked_out : 1, has_cl : 1, no_body : 1;
  unsigned close_after : 1, drain_armed : 1, peer_gone : 1, served : 1;
  unsigned static_wait : 1; /* static answers queued: parse on when drained */
} http_conn;

static const rx_proto http_proto;

/* --- small helpers --------------------------------------------------------- */

static int sb_grow(sbuf *b, size_t need) {
  if (b->len + need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + need) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int sb_put(sbuf *b, const void *d, size_t n) {
  if (sb_grow(b, n)) return -1;
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

static int sb_str(sbuf *b, const char *s) { return sb_put(b, s, strlen(s)); }

static void sb_free(sbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int same_name(const char *a, size_t al, const char *b, size_t bl) {
  return al == bl && ascii_same_ci(a, b, al);
}

static const char *reason(int code) {
  switch (code) {
  case 400: return "Bad Request";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 426: return "Upgrade Required";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Error";
  }
}

/* "Date: ...\r\n", rebuilt at most once a second. Callers hold the lock. */
static const char *date_line(size_t *len) {
  static char line[64];
  static size_t line_len;
  static time_t last;
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    line_len = strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    last = now;
  }
  *len = line_len;
  return line;
}

/* --- error answers ------------------------------------------------------------ */

/* Answer a request we will not serve, then close. The stream can no longer
 * be trusted after most of these, so we never read another request from
 * it; lingering lets the answer reach a peer that is still sending. */
static void refuse(http_conn *h, int code, const char *extra, const http1_request *q) {
  char buf[512];
  size_t dl;
  const char *date = date_line(&dl);
  const char *why = reason(code);
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\n" SERVER_LINE "%.*s%s"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                   code, why, (int)dl, date, extra, strlen(why) + 1, why);
  h->state = H_DONE;
  h->c->flags |= RX_F_LINGER;
  rx_write(h->c, buf, (size_t)n);
  rx_close(h->c);
  /* the access log names the request when its line was read (q) */
  if (al_on())
    al_log(h->c->peer, q ? q->method : NULL, q ? q->method_len : 0, q ? q->target : NULL,
           q ? q->target_len : 0, q ? q->version_minor : 1, code, (uint64_t)n, al_now_us());
}

static void fail_with(http_conn *h, int code, const char *extra) { refuse(h, code, extra, NULL); }
static void fail_req(http_conn *h, int code, const http1_request *q) { refuse(h, code, "", q); }

static void fail(http_conn *h, int code) { fail_with(h, code, ""); }

/* --- the environ blob ------------------------------------------------------- */

static int env_key(sbuf *e, const char *k, size_t kl) {
  if (e->len && sb_put(e, "", 1)) return -1; /* the NUL separator */
  if (sb_put(e, k, kl) || sb_put(e, "", 1)) return -1;
  return 0;
}

static int env_kv(sbuf *e, const char *k, const char *v, size_t vl) {
  if (env_key(e, k, strlen(k))) return -1;
  return sb_put(e, v, vl);
}

/* Percent-decode a path (PEP 3333: PATH_INFO is the decoded path, each byte
 * one latin-1 character). A decoded NUL is refused: it would end the key in
 * our blob and means nothing in a path. Bad escapes pass through as they
 * are, as most servers do. */
static int put_path(sbuf *e, const char *p, size_t n) {
  if (sb_grow(e, n)) return -1;
  char *o = e->p + e->len;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (p[i] == '%' && i + 2 < n && (hi = ascii_hexval((unsigned char)p[i + 1])) >= 0 &&
        (lo = ascii_hexval((unsigned char)p[i + 2])) >= 0) {
      char ch = (char)(hi * 16 + lo);
      if (!ch) return -1;
      *o++ = ch;
      i += 2;
    } else {
      *o++ = p[i];
    }
  }
  e->len = (size_t)(o - e->p);
  return 0;
}

static int header_skipped(const http1_header *hd, const http_conn *h) {
  /* A name with '_' would alias a dashed one once mangled (X_Forwarded_For
   * vs X-Forwarded-For): dropping them closes that spoofing hole. */
  if (memchr(hd->name, '_', hd->name_len)) return 1;
  if (http1_name_is(hd, "content-length", 14)) return 1; /* added at dispatch */
  if (h->fr.body == HTTP1_BODY_CHUNKED && http1_name_is(hd, "transfer-encoding", 17))
    return 1; /* the body reaches the app decoded */
  return 0;
}

/* A trusted proxy's word on the client (proxy.h): later keys in the blob
 * replace earlier ones when the environ is built, so REMOTE_ADDR and
 * wsgi.url_scheme are simply written again. Only the last Forwarded,
 * X-Forwarded-For and X-Forwarded-Proto lines count: the ones our nearest
 * proxy wrote. */
static int put_forwarded(sbuf *e, const http1_request *q, const px_trust *trust) {
  const http1_header *xff = NULL, *xfp = NULL, *fwd = NULL;
  for (size_t i = 0; i < q->num_headers; i++) {
    if (http1_name_is(&q->headers[i], "x-forwarded-for", 15)) xff = &q->headers[i];
    else if (http1_name_is(&q->headers[i], "x-forwarded-proto", 17)) xfp = &q->headers[i];
    else if (http1_name_is(&q->headers[i], "forwarded", 9)) fwd = &q->headers[i];
  }
  const char *addr, *fscheme = NULL;
  size_t alen;
  /* RFC 7239 Forwarded, when it names the client, wins over X-Forwarded-* */
  if (fwd && px_forwarded(trust, fwd->value, fwd->value_len, &addr, &alen, &fscheme)) {
    if (env_kv(e, "REMOTE_ADDR", addr, alen)) return -1;
    if (fscheme && env_kv(e, "wsgi.url_scheme", fscheme, strlen(fscheme))) return -1;
    return 0;
  }
  if (xff && px_client(trust, xff->value, xff->value_len, &addr, &alen) &&
      env_kv(e, "REMOTE_ADDR", addr, alen))
    return -1;
  const char *scheme = xfp ? px_scheme(xfp->value, xfp->value_len) : NULL;
  if (scheme && env_kv(e, "wsgi.url_scheme", scheme, strlen(scheme))) return -1;
  return 0;
}

/* Repeated header names, linked in one pass with a hash table of names
 * (10,000 headers under raised limits cost 10,000 steps, not 50 million
 * comparisons): links[i] & LINK_MASK is the index of the next header with
 * header i's name (LINK_END: none), and LINK_REPEAT is set when header i
 * is itself a repeat, merged into the first of its name. */
#define LINK_REPEAT 0x80000000u
#define LINK_MASK 0x7fffffffu
#define LINK_END LINK_MASK

static uint32_t name_hash(const char *p, size_t n) {
  uint32_t x = 2166136261u; /* FNV-1a over the lower-cased name */
  for (size_t i = 0; i < n; i++) x = (x ^ (uint32_t)ascii_lower((unsigned char)p[i])) * 16777619u;
  return x;
}

static int link_repeats(const http1_request *q, uint32_t *links) {
  size_t n = q->num_headers;
  for (size_t i = 0; i < n; i++) links[i] = LINK_END;
  if (n < 2) return 0;
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  /* two words per slot: first header of the name + 1 (0: free), last one */
  uint32_t stack_tab[2 * 128];
  uint32_t *tab = cap <= 128 ? stack_tab : calloc(2 * cap, sizeof *tab);
  if (!tab) return -1;
  if (tab == stack_tab) memset(tab, 0, 2 * cap * sizeof *tab);
  for (size_t i = 0; i < n; i++) {
    const http1_header *hd = &q->headers[i];
    size_t slot = name_hash(hd->name, hd->name_len) & (cap - 1);
    for (;;) {
      uint32_t first = tab[2 * slot];
      if (!first) { /* a name not seen before */
        tab[2 * slot] = (uint32_t)i + 1;
        tab[2 * slot + 1] = (uint32_t)i;
        break;
      }
      const http1_header *f = &q->headers[first - 1];
      if (same_name(hd->name, hd->name_len, f->name, f->name_len)) {
        uint32_t last = tab[2 * slot + 1];
        links[last] = (links[last] & LINK_REPEAT) | (uint32_t)i;
        links[i] = LINK_REPEAT | LINK_END;
        tab[2 * slot + 1] = (uint32_t)i;
        break;
      }
      slot = (slot + 1) & (cap - 1); /* linear probing: the table is half empty */
    }
  }
  if (tab != stack_tab) free(tab);
  return 0;
}

/* HTTP_* (and CONTENT_TYPE) keys, each name once, repeats joined. */
static int put_headers(const http_conn *h, sbuf *e, const http1_request *q,
                       const uint32_t *links) {
  for (size_t i = 0; i < q->num_headers; i++) {
    const http1_header *hd = &q->headers[i];
    if (links[i] & LINK_REPEAT) continue; /* merged into the first below */
    if (header_skipped(hd, h)) continue;
    if (http1_name_is(hd, "content-type", 12)) {
      if (env_key(e, "CONTENT_TYPE", 12)) return -1;
    } else {
      if (e->len && sb_put(e, "", 1)) return -1;
      if (sb_grow(e, hd->name_len + 6)) return -1;
      memcpy(e->p + e->len, "HTTP_", 5);
      e->len += 5;
      for (size_t k = 0; k < hd->name_len; k++) {
        int ch = (unsigned char)hd->name[k];
        e->p[e->len++] = ch == '-' ? '_' : (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
      }
      e->p[e->len++] = 0;
    }
    if (sb_put(e, hd->value, hd->value_len)) return -1;
    /* RFC 9110 5.3: repeated fields join with commas; cookies with "; "
     * (RFC 6265 5.4), which is what cookie parsers expect. */
    const char *sep = http1_name_is(hd, "cookie", 6) ? "; " : ", ";
    for (uint32_t j = links[i] & LINK_MASK; j != LINK_END; j = links[j] & LINK_MASK) {
      const http1_header *o = &q->headers[j];
      if (sb_put(e, sep, 2) || sb_put(e, o->value, o->value_len)) return -1;
    }
  }
  return 0;
}

const char *http_env_fixed(void) {
  return "REQUEST_METHOD REQUEST_URI PATH_INFO QUERY_STRING SERVER_PROTOCOL REMOTE_ADDR "
         "REMOTE_PORT";
}

/* A value after the first of the blob's fixed part (each one, even an
 * empty one, is preceded by its NUL separator). */
static int env_val(sbuf *e, const char *v, size_t vl) {
  if (sb_put(e, "", 1)) return -1;
  return sb_put(e, v, vl);
}

static int build_env(http_conn *h, const http1_request *q) {
  sbuf *e = &h->env;
  e->len = 0;
  const char *t = q->target, *end = t + q->target_len;
  /* absolute-form: keep only the path and query */
  if (t < end && *t != '/' && *t != '*') {
    const char *s = memchr(t, ':', (size_t)(end - t));
    if (s && end - s > 2 && s[1] == '/' && s[2] == '/') {
      const char *slash = memchr(s + 3, '/', (size_t)(end - s - 3));
      const char *qm = memchr(s + 3, '?', (size_t)(end - s - 3));
      if (qm && (!slash || qm < slash)) slash = NULL;
      t = slash ? slash : (qm ? qm : end);
    }
  }
  const char *qm = memchr(t, '?', (size_t)(end - t));
  const char *pend = qm ? qm : end;
  char port[8];
  int pl = snprintf(port, sizeof port, "%u", (unsigned)h->c->peer_port);
  /* the fixed part, in http_env_fixed() order */
  if (sb_put(e, q->method, q->method_len)) return -1;
  if (env_val(e, q->target, q->target_len)) return -1;
  if (sb_put(e, "", 1)) return -1;
  if (t == pend && (!qm || t != q->target)) {
    if (sb_put(e, "/", 1)) return -1;
  } else if (put_path(e, t, (size_t)(pend - t))) {
    return -2;
  }
  if (env_val(e, qm ? qm + 1 : "", qm ? (size_t)(end - qm - 1) : 0)) return -1;
  if (env_val(e, q->version_minor ? "HTTP/1.1" : "HTTP/1.0", 8)) return -1;
  if (env_val(e, h->c->peer, strlen(h->c->peer))) return -1;
  if (env_val(e, port, (size_t)pl)) return -1;
  uint32_t stack_links[64], *links = stack_links;
  size_t n = q->num_headers;
  if (n > 64 && !(links = malloc(n * sizeof *links))) return -1;
  int rc = link_repeats(q, links) ? -1 : put_headers(h, e, q, links);
  if (links != stack_links) free(links);
  if (rc) return rc;
  if (h->set->trust && px_trusted(h->set->trust, h->c->peer, strlen(h->c->peer)))
    return put_forwarded(e, q, h->set->trust);
  return 0;
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
  if (h->body_fd >= 0) close(h->body_fd);
  h->body_fd = -1;
  h->body_size = 0;
}

/* --- requests in ------------------------------------------------------------- */

static void dispatch(http_conn *h) {
  if (h->fr.body != HTTP1_BODY_NONE) {
    char n[24];
    int l = snprintf(n, sizeof n, "%llu", (unsigned long long)h->body_size);
    if (env_kv(&h->env, "CONTENT_LENGTH", n, (size_t)l)) goto oom;
  }
  http_req *r = calloc(1, sizeof *r);
  if (!r) goto oom;
  r->conn = h->c->id;
  r->tag = h->set->tag;
  r->is_head = h->is_head;
  r->upgrade = h->upgrade;
  r->env = h->env.p;
  r->env_len = h->env.len;
  h->env.p = NULL;
  h->env.len = h->env.cap = 0;
  r->body = h->body.p;
  r->body_len = h->body.len;
  r->body_fd = h->body_fd;
  r->body_size = h->body_size;
  if (r->body_fd >= 0) lseek(r->body_fd, 0, SEEK_SET);
  h->body.p = NULL;
  h->body.len = h->body.cap = 0;
  h->body_fd = -1;
  h->body_size = 0;
  h->state = H_APP;
  /* More pipelined requests behind this one: batch their answers. */
  if (h->rpos < h->rlen && rx_in_loop_thread()) rx_cork(h->c);
  h->head_sent = h->chunked_out = h->has_cl = h->no_body = 0;
  h->close_after = h->drain_armed = 0;
  h->served = 1;
  if (dsp_post(h->actor, DSP_HTTP_REQUEST, r->conn, r, 0) == 0) return;
  h->env.p = r->env; /* give the memory back to be freed with the conn */
  free(r);
oom:
  h->state = H_HEAD;
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
static const http1_header *find_header(const http1_request *q, const char *name,
                                       size_t len) {
  const http1_header *found = NULL;
  for (size_t i = 0; i < q->num_headers; i++)
    if (http1_name_is(&q->headers[i], name, len)) {
      if (found) return NULL;
      found = &q->headers[i];
    }
  return found;
}

/* Decide what this request may upgrade to. A WebSocket handshake is
 * checked here, before the application sees it (RFC 6455 4.2.1): a wrong
 * version gets 426 naming the one we speak, anything else malformed 400.
 * Returns nonzero when the request was answered. */
static int check_upgrade(http_conn *h, const http1_request *q) {
  int get = q->method_len == 3 && !memcmp(q->method, "GET", 3);
  h->upgrade = UP_NONE;
  /* No Sec-WebSocket-Version at all: not an RFC 6455 handshake (a
   * pre-standard one, say), so a plain request the application may answer. */
  int versioned = 0;
  for (size_t i = 0; i < q->num_headers; i++)
    versioned |= http1_name_is(&q->headers[i], "sec-websocket-version", 21);
  if (h->fr.upgrade_websocket && versioned) {
    const http1_header *v = find_header(q, "sec-websocket-version", 21);
    const http1_header *k = find_header(q, "sec-websocket-key", 17);
    if (!get || q->version_minor != 1 || !h->fr.has_host) {
      fail_req(h, 400, q);
      return 1;
    }
    if (!v || v->value_len != 2 || memcmp(v->value, "13", 2)) {
      fail_with(h, 426, "Sec-WebSocket-Version: 13\r\n");
      return 1;
    }
    if (!k || ws_accept_key(k->value, k->value_len, h->ws_accept)) {
      fail_req(h, 400, q);
      return 1;
    }
    h->upgrade = UP_WEBSOCKET;
  } else if (h->fr.accept_event_stream && get) {
    h->upgrade = UP_SSE;
  }
  return 0;
}

static void value_of(const http1_request *q, const char *name, size_t len,
                     const char **v, size_t *vl) {
  const http1_header *x = find_header(q, name, len);
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
  if ((!get && !head) || h->upgrade != UP_NONE || h->fr.body == HTTP1_BODY_CHUNKED ||
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
  h->served = 1;
  h->is_head = head;
  h->http10 = q->version_minor == 0;
  h->keep_alive = h->fr.keep_alive;
  int keep = h->keep_alive && !h->close_after && !rx_stopping();
  const char *conn = !keep ? "Connection: close\r\n"
                     : h->http10 ? "Connection: keep-alive\r\n" : "";
  size_t dl;
  const char *date = date_line(&dl);
  struct iovec iov[6] = {
      {a.head, a.head_len},
      {(void *)SERVER_LINE, sizeof SERVER_LINE - 1},
      {(void *)date, dl},
      {(void *)conn, strlen(conn)},
      {(void *)"\r\n", 2},
      {(void *)a.body, a.body_len},
  };
  if (h->rpos < h->rlen && rx_in_loop_thread()) rx_cork(c); /* batch pipelined answers */
  int bad = rx_writev(c, iov, a.body_len ? 6 : 5);
  if (a.fd >= 0) {
    if (bad) close(a.fd);
    else bad = rx_write_file(c, a.fd, a.offset, a.length); /* owns the fd now */
  }
  if (bad) return 1; /* the connection is going */
  if (started) {
    int status = a.head_len > 12 ? atoi(a.head + 9) : 0;
    uint64_t bytes = a.body_len + (a.fd >= 0 ? a.length : 0);
    al_log(c->peer, q->method, q->method_len, q->target, q->target_len, q->version_minor,
           status, head ? 0 : bytes, started);
  }
  if (!keep) {
    h->state = H_DONE;
    c->flags |= RX_F_LINGER;
    rx_close(c);
    return 1;
  }
  rx_touch(c);
  if (c->out_bytes > STATIC_HIGH_WATER || c->out_count > STATIC_MAX_QUEUED)
    h->static_wait = 1; /* on_drained resumes */
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
  if (check_upgrade(h, &q)) return 0;
  if (s->public_root && serve_static(h, &q, (size_t)r)) return 1;
  e = build_env(h, &q);
  if (e) {
    fail_req(h, e == -2 ? 400 : 503, &q);
    return 0;
  }
  h->is_head = q.method_len == 4 && !memcmp(q.method, "HEAD", 4);
  h->http10 = q.version_minor == 0;
  h->keep_alive = h->fr.keep_alive;
  h->rpos += (size_t)r;
  body_reset(h);
  int has_body = h->fr.body == HTTP1_BODY_CHUNKED ||
                 (h->fr.body == HTTP1_BODY_LENGTH && h->fr.content_length);
  if (!has_body) {
    dispatch(h);
    return 1;
  }
  h->body_left = h->fr.content_length;
  memset(&h->ck, 0, sizeof h->ck);
  if (h->fr.expect_continue && !h->http10) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (rx_write(h->c, cont, sizeof cont - 1)) return 0;
  }
  h->state = H_BODY;
  h->body_since = rx_now_ms();
  h->body_got = 0;
  return 1;
}

static int read_body_some(http_conn *h);

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

static void process(http_conn *h) {
  while (!rx_closed(h->c)) {
    if (h->state == H_HEAD) {
      if (h->rpos == h->rlen || h->static_wait) return;
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
    if (h->static_wait) break;              /* seen again once drained */
    if (h->rpos == h->rlen) rx_close(h->c); /* a quiet end between requests */
    else fail(h, 400);                      /* cut off inside a head */
    break;
  case H_BODY:
    fail(h, 400);
    break;
  case H_APP:
    h->peer_gone = 1; /* finish this response, then close */
    break;
  case H_DONE:
    rx_close(h->c);
    break;
  }
}

static void on_data(rx_conn *c) {
  http_conn *h = c->udata;
  for (;;) {
    if (h->state == H_HEAD || h->state == H_BODY) {
      process(h);
      if (rx_closed(c)) return;
    }
    if (h->state == H_DONE) return;
    if (!make_room(h)) {
      h->read_paused = 1; /* rx_resume() when the response completes */
      return;
    }
    long n = rx_read(c, h->rbuf + h->rlen, h->rcap - h->rlen);
    if (n == 0) return;
    if (n < 0) {
      if (h->state == H_HEAD || h->state == H_BODY) process(h);
      if (!rx_closed(c)) on_eof(h);
      return;
    }
    h->rlen += (size_t)n;
  }
}

static void on_timeout(rx_conn *c) {
  http_conn *h = c->udata;
  if (h->state == H_APP && !c->out_bytes) return; /* the application works */
  if (h->state == H_HEAD && (h->rpos == h->rlen || h->static_wait)) rx_close_now(c);
  else if (h->state == H_HEAD || h->state == H_BODY) fail(h, 408);
  else rx_close_now(c); /* a peer that stopped reading our response */
}

/* How long a connection accepted just before a graceful stop gets for its
 * first request to arrive (a client connects, then writes: closing it in
 * between would fail a request the server had already taken on). */
#define FRESH_GRACE_MS 1000

static void on_shutdown(rx_conn *c) {
  http_conn *h = c->udata;
  if (h->state == H_HEAD && h->rpos == h->rlen) {
    if (h->served) { /* idle keep-alive: closing it is what clients expect */
      rx_close(c);
      return;
    }
    c->timeout_ms = FRESH_GRACE_MS;
    rx_touch(c);
    rx_resume(c); /* its request may be waiting unread already */
    return;
  }
  h->close_after = 1;
}

static void on_drained(rx_conn *c) {
  http_conn *h = c->udata;
  if (h->static_wait) { /* the peer read the files: the next request */
    h->static_wait = 0;
    rx_resume(c);
    return;
  }
  if (h->state == H_APP && h->drain_armed) {
    h->drain_armed = 0;
    dsp_post(h->actor, DSP_HTTP_DRAIN, c->id, NULL, 0);
  }
}

static void on_close(rx_conn *c) {
  http_conn *h = c->udata;
  if (h->state == H_APP && h->drain_armed) /* wake the suspended response */
    dsp_post(h->actor, DSP_HTTP_DRAIN, c->id, NULL, 0);
  dsp_actor_release(h->actor);
  body_reset(h);
  sb_free(&h->env);
  free(h->rbuf);
  free(h);
}

static const rx_proto http_proto = {
    .on_data = on_data,
    .on_drained = on_drained,
    .on_timeout = on_timeout,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

rx_conn *http_attach(int fd, const http_settings *s, const char *peer,
                     uint16_t peer_port) {
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

/* --- responses out ---------------------------------------------------------- */

static http_conn *app_conn(uint64_t id) {
  rx_conn *c = rx_find(id);
  if (!c || c->proto != &http_proto) return NULL;
  http_conn *h = c->udata;
  return h->state == H_APP ? h : NULL;
}

static int is_tchar(int ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
    return 1;
  return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
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

/* What the application's headers said about framing and defaults. */
typedef struct {
  int has_date, has_server, has_cl, close;
  uint64_t cl;
  const char *xsend; /* X-Sendfile: a file to send instead of the body */
  size_t xsend_len;
} app_meta;

/* Copy the application's "name\0value\0..." headers into `o` as header
 * lines, checking each. Framing and hop-by-hop headers are noted in `m`,
 * not copied: framing is ours (and PEP 3333 forbids hop-by-hop headers). An
 * upgrade also drops the ones its own head sets. Returns 0, -1 out of
 * memory, -2 malformed. */
static int put_app_headers(sbuf *o, const char *hd, size_t hlen, size_t count,
                           app_meta *m, int upgrade) {
  memset(m, 0, sizeof *m);
  /* the pair count must match the separators: see http_respond */
  size_t seps = 0;
  for (size_t i = 0; i < hlen; i++) seps += hd[i] == 0;
  if (hlen ? seps != 2 * count - 1 : count != 0) return -2;
  const char *p = hd, *end = hd + hlen;
  /* With X-Sendfile the file's size is the Content-Length, not the app's. */
  int xsend = 0;
  for (size_t k = 0; k < count && !upgrade; k++) {
    size_t nl = strnlen(p, (size_t)(end - p));
    xsend |= same_name(p, nl, "x-sendfile", 10);
    if (k + 1 == count) break; /* never step past the end */
    p += nl + 1;
    p += strnlen(p, (size_t)(end - p)) + 1;
  }
  p = hd;
  for (size_t k = 0; k < count; k++) {
    const char *name = p;
    size_t nl = strnlen(p, (size_t)(end - p));
    const char *val = name + nl + 1;
    size_t vl = strnlen(val, (size_t)(end - val));
    p = val + vl < end ? val + vl + 1 : end; /* never past one-past-the-end */
    if (!nl) return -2;
    for (size_t i = 0; i < nl; i++)
      if (!is_tchar((unsigned char)name[i])) return -2;
    if (bad_value(val, vl)) return -2;
    if (same_name(name, nl, "content-length", 14)) {
      uint64_t v = 0;
      if (!vl || vl > 19) return -2;
      for (size_t i = 0; i < vl; i++) {
        if (val[i] < '0' || val[i] > '9') return -2;
        v = v * 10 + (uint64_t)(val[i] - '0');
      }
      if (m->has_cl || upgrade || xsend) continue; /* one is enough */
      m->has_cl = 1;
      m->cl = v;
    } else if (same_name(name, nl, "transfer-encoding", 17) ||
               same_name(name, nl, "keep-alive", 10) ||
               (upgrade && (same_name(name, nl, "upgrade", 7) ||
                            same_name(name, nl, "content-type", 12)))) {
      continue;
    } else if (!upgrade && same_name(name, nl, "x-sendfile", 10)) {
      m->xsend = val;
      m->xsend_len = vl;
      continue;
    } else if (same_name(name, nl, "connection", 10)) {
      if (value_has_token(val, vl, "close")) m->close = 1;
      continue;
    } else if (same_name(name, nl, "date", 4)) {
      m->has_date = 1;
    } else if (same_name(name, nl, "server", 6)) {
      m->has_server = 1;
    }
    if (sb_put(o, name, nl) || sb_put(o, ": ", 2) || sb_put(o, val, vl) ||
        sb_put(o, "\r\n", 2))
      return -1;
  }
  return 0;
}

static int put_defaults(sbuf *o, const app_meta *m) {
  if (!m->has_server && sb_str(o, SERVER_LINE)) return -1;
  if (!m->has_date) {
    size_t dl;
    const char *d = date_line(&dl);
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

/* Build the status line and headers into `o`. Returns 0, -2 (malformed) or
 * -3: the application's X-Sendfile names no file we can send. With `xfd`
 * an X-Sendfile header is honoured: the file's size is the Content-Length,
 * the application's body is dropped, and *xfd (else -1) is the file to send
 * after the head, *xlen bytes. */
static int build_head(http_conn *h, sbuf *o, const char *status, size_t slen,
                      const char *hd, size_t hlen, size_t count, size_t blen,
                      int finish, int *xfd, uint64_t *xlen) {
  if (xfd) *xfd = -1;
  if (slen < 3 || slen > 512 || (slen > 3 && status[3] != ' ')) return -2;
  for (int i = 0; i < 3; i++)
    if (status[i] < '0' || status[i] > '9') return -2;
  if (bad_value(status, slen)) return -2;
  int code = (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
  if (code < 100) return -2;
  o->len = 0;
  if (sb_put(o, "HTTP/1.1 ", 9) || sb_put(o, status, slen) || sb_put(o, "\r\n", 2))
    return -1;
  app_meta m;
  int r = put_app_headers(o, hd, hlen, count, &m, 0);
  if (r) return r;
  h->has_cl = m.has_cl != 0;
  h->resp_left = m.cl;
  if (m.close) h->close_after = 1;
  h->no_body = h->is_head || code < 200 || code == 204 || code == 304;
  h->chunked_out = 0;
  char num[64];
  if (m.xsend && xfd && code >= 200 && code != 204 && code != 304) {
    uint64_t size = 0;
    int fd = xsend_open(m.xsend, m.xsend_len, &size);
    if (fd < 0) return -3;
    int l = snprintf(num, sizeof num, "Content-Length: %llu\r\n", (unsigned long long)size);
    if (sb_put(o, num, (size_t)l)) {
      close(fd);
      return -1;
    }
    h->has_cl = 1;
    h->resp_left = 0;
    h->no_body = 1; /* what the application writes is dropped */
    if (h->is_head || !size) {
      close(fd);
    } else {
      *xfd = fd;
      *xlen = size;
    }
  } else if (!h->has_cl && code >= 200 && code != 204 && code != 304) {
    if (finish && (blen || !h->is_head)) {
      int l = snprintf(num, sizeof num, "Content-Length: %zu\r\n", blen);
      if (sb_put(o, num, (size_t)l)) return -1;
      h->has_cl = 1;
      h->resp_left = blen;
    } else if (!finish && !h->is_head) {
      if (h->http10) h->close_after = 1; /* the end of the body is the close */
      else if (sb_str(o, "Transfer-Encoding: chunked\r\n")) return -1;
      else h->chunked_out = 1;
    }
  }
  int keep = h->keep_alive && !h->close_after && !h->peer_gone && !rx_stopping();
  if (!keep) {
    h->close_after = 1;
    if (sb_str(o, "Connection: close\r\n")) return -1;
  } else if (h->http10 && sb_str(o, "Connection: keep-alive\r\n")) {
    return -1;
  }
  return put_defaults(o, &m);
}

/* Body bytes, framed as the head promised. `head` (may be empty) goes
 * first in the same system call. */
static int emit(http_conn *h, const char *head, size_t hl, const char *d, size_t n) {
  if (h->no_body) n = 0;
  if (h->has_cl && !h->no_body && n > h->resp_left) {
    n = (size_t)h->resp_left; /* more than the app promised: cut and close */
    h->close_after = 1;
  }
  if (h->has_cl) h->resp_left -= n;
  struct iovec iov[4];
  int cnt = 0;
  char size[24];
  if (hl) iov[cnt++] = (struct iovec){(void *)head, hl};
  if (n && h->chunked_out) {
    int l = snprintf(size, sizeof size, "%zx\r\n", n);
    iov[cnt++] = (struct iovec){size, (size_t)l};
    iov[cnt++] = (struct iovec){(void *)d, n};
    iov[cnt++] = (struct iovec){"\r\n", 2};
  } else if (n) {
    iov[cnt++] = (struct iovec){(void *)d, n};
  }
  return cnt ? rx_writev(h->c, iov, cnt) : 0;
}

static int complete(http_conn *h) {
  rx_conn *c = h->c;
  if (h->chunked_out && rx_write(c, "0\r\n\r\n", 5)) return -1;
  if (h->has_cl && h->resp_left && !h->no_body) h->close_after = 1;
  int keep = h->keep_alive && !h->close_after && !h->peer_gone &&
             !rx_stopping() && !(c->flags & RX_F_HUP);
  h->head_sent = h->chunked_out = h->has_cl = h->no_body = 0;
  h->drain_armed = 0;
  if (!keep) {
    h->state = H_DONE;
    if (h->rpos < h->rlen || !h->peer_gone) c->flags |= RX_F_LINGER;
    rx_close(c);
    return 0;
  }
  h->state = H_HEAD;
  h->close_after = 0;
  rx_touch(c);
  if (h->rpos < h->rlen && rx_in_loop_thread()) {
    /* Application code on the loop thread (inline mode): take the next
     * pipelined request now, so it joins the same batch of events. */
    process(h);
    if (rx_closed(c)) return 0;
  }
  if (h->read_paused || (h->state == H_HEAD && h->rpos < h->rlen)) {
    h->read_paused = 0;
    rx_resume(c);
  }
  return 0;
}

int http_respond(uint64_t conn, const char *status, size_t slen,
                 const char *headers, size_t hlen, size_t count,
                 const char *body, size_t blen, int finish) {
  static sbuf head; /* reused: every caller holds the big lock */
  rx_lock();
  http_conn *h = app_conn(conn);
  int r = -1;
  if (h && !h->head_sent) {
    int xfd = -1, missing = 0;
    uint64_t xlen = 0;
    r = build_head(h, &head, status, slen, headers, hlen, count, blen, finish, &xfd, &xlen);
    if (r == -3) { /* X-Sendfile named nothing we can send: 404 instead */
      static const char nf_hd[] = "Content-Type\0text/plain; charset=utf-8";
      static const char nf[] = "Not Found\n";
      missing = 1;
      body = nf;
      blen = sizeof nf - 1;
      r = build_head(h, &head, "404 Not Found", 13, nf_hd, sizeof nf_hd - 1, 1, blen, 1,
                     NULL, NULL);
    }
    if (r == 0) {
      h->head_sent = 1;
      /* More pipelined requests wait behind this one: hold the answer for
       * the end of the loop turn so theirs join it in one write. (The cork
       * taken when this request was dispatched is gone if a turn ended
       * in between: the application budget per turn ran out first.) */
      if (h->rpos < h->rlen && rx_in_loop_thread()) rx_cork(h->c);
      r = emit(h, head.p, head.len, body, blen);
      if (missing) h->no_body = 1; /* the application's body is dropped */
      if (xfd >= 0 && r == 0) r = rx_write_file(h->c, xfd, 0, xlen); /* owns xfd */
      else if (xfd >= 0) close(xfd);
      if (r == 0 && finish) r = complete(h);
      if (r == 0 && missing) r = 1;
    } else {
      if (xfd >= 0) close(xfd);
      if (r == -1) rx_close_now(h->c);
    }
    if (head.cap > 65536) sb_free(&head);
  }
  rx_unlock();
  return r;
}

long http_write(uint64_t conn, const char *data, size_t len) {
  rx_lock();
  http_conn *h = app_conn(conn);
  long r = -1;
  if (h && h->head_sent && emit(h, NULL, 0, data, len) == 0) r = (long)h->c->out_bytes;
  rx_unlock();
  return r;
}

long http_sendfile(uint64_t conn, int fd, uint64_t offset, uint64_t len) {
  rx_lock();
  http_conn *h = app_conn(conn);
  long r = -1;
  if (h && h->head_sent) {
    if (h->has_cl && len > h->resp_left) {
      len = h->resp_left;
      h->close_after = 1;
    }
    if (h->no_body || !len) {
      close(fd);
      r = (long)h->c->out_bytes;
    } else {
      char size[24];
      int ok = 0;
      if (h->chunked_out) {
        int l = snprintf(size, sizeof size, "%llx\r\n", (unsigned long long)len);
        ok = rx_write(h->c, size, (size_t)l) == 0;
      } else {
        ok = 1;
      }
      if (h->has_cl) h->resp_left -= len;
      if (ok && rx_write_file(h->c, fd, offset, len) == 0 &&
          (!h->chunked_out || rx_write(h->c, "\r\n", 2) == 0))
        r = (long)h->c->out_bytes;
      else if (!ok)
        close(fd);
    }
  } else {
    close(fd);
  }
  rx_unlock();
  return r;
}

int http_finish(uint64_t conn) {
  rx_lock();
  http_conn *h = app_conn(conn);
  int r = (h && h->head_sent) ? complete(h) : -1;
  rx_unlock();
  return r;
}

int http_abort(uint64_t conn) {
  rx_lock();
  rx_conn *c = rx_find(conn);
  if (c && c->proto == &http_proto) rx_close_now(c);
  rx_unlock();
  return 0;
}

int http_await_drain(uint64_t conn) {
  rx_lock();
  http_conn *h = app_conn(conn);
  int r = -1;
  if (h) {
    if (!h->c->out_bytes) {
      r = 1;
    } else {
      h->drain_armed = 1;
      r = 0;
    }
  }
  rx_unlock();
  return r;
}

int http_upgrade(uint64_t conn, const char *headers, size_t hlen, size_t count) {
  static sbuf head; /* reused: every caller holds the big lock */
  rx_lock();
  http_conn *h = app_conn(conn);
  int r = -1;
  if (!h || h->head_sent || h->upgrade == UP_NONE) goto out;
  head.len = 0;
  if (h->upgrade == UP_WEBSOCKET) {
    if (sb_str(&head, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: ") ||
        sb_put(&head, h->ws_accept, 28) || sb_put(&head, "\r\n", 2))
      goto out;
  } else if (sb_str(&head, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                           "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n")) {
    goto out;
  }
  app_meta m;
  r = put_app_headers(&head, headers, hlen, count, &m, 1);
  if (r == 0) r = put_defaults(&head, &m);
  if (r) goto out;
  rx_conn *c = h->c;
  if (rx_write(c, head.p, head.len)) {
    r = -1;
    goto out;
  }
  /* Hand over: the actor and any bytes the peer sent after the handshake
   * go to the new protocol; the HTTP state ends here, without on_close. */
  dsp_actor *actor = h->actor;
  h->actor = NULL;
  if (h->upgrade == UP_WEBSOCKET)
    r = ws_take_over(c, h->set, actor, h->rbuf + h->rpos, h->rlen - h->rpos);
  else
    r = sse_take_over(c, h->set, actor);
  body_reset(h);
  sb_free(&h->env);
  free(h->rbuf);
  free(h);
out:
  if (head.cap > 65536) sb_free(&head);
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
