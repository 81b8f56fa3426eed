/* http_conn: the private side of the HTTP/1.1 core, shared by its four
 * files and by nothing else (http.h is the public face):
 *
 *   http_conn.c    connection input: reading, the parse loop, bodies,
 *                  request dispatch, static answers, timeouts, freeing, and
 *                  the two state machines' transition functions;
 *   http_env.c     the WSGI environ blob of a parsed request;
 *   http_resp.c    responses out: heads, framing, streaming, X-Sendfile;
 *   http_upgrade.c the upgrade hand-off: offering a request to the
 *                  registered upgraders (http_upgrade.h), the switching
 *                  head, the socket passed on. No protocol is named here.
 *
 * Two explicit state machines, each written only through its transition
 * function (which asserts the move is legal in debug builds):
 *
 * The connection (http_conn_to, http_conn.c):
 *
 *   HEAD --head parsed, body expected--> BODY --body complete--> APP
 *   HEAD --head parsed, no body----------------------------->  APP
 *   HEAD --static answer queued, past its high-water--> WAIT --drained--> HEAD
 *   APP  --response complete, keep-alive--> HEAD
 *   any  --error answer, or close after a response--> DONE (closing)
 *
 * In APP the application owns the request. Bytes that arrive meanwhile
 * (pipelined requests) are buffered, up to the head limit, and parsed only
 * after the response is complete: that is what keeps responses in order.
 * With stream_body (application threads) a request with a body goes from
 * HEAD straight to APP with `streaming` set: its body moves from the read
 * buffer to a bounded window as the application reads it (http_stream_feed,
 * http_body_read); only the bytes after the body are pipelined ones. A
 * response completed before the whole body arrived closes the connection.
 *
 * The response (http_resp_to, http_resp.c is its writer):
 *
 *   NONE --head sent--> HEAD_SENT --complete--> DONE --next request--> NONE
 *
 * with its framing decided once, when the head is built: LENGTH (a
 * Content-Length, `left` bytes still owed), CHUNKED, EOF (HTTP/1.0 without
 * a length: the close ends the body) or NONE (no framing header at all: a
 * 1xx, 204 or 304, or a HEAD answered without a length). `discard` says the
 * body is dropped whatever the framing (HEAD, 1xx/204/304, X-Sendfile).
 * http_resp_begin resets the whole response, in one place.
 *
 * Threads: everything here runs with the reactor's big lock held. */
#ifndef IODINE_HTTP_CONN_H
#define IODINE_HTTP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "http.h"
#include "http1_parser.h"
#include "http_upgrade.h"
#include "reactor.h"

#define HTTP_SERVER_LINE "Server: iodine-py\r\n"

typedef enum { H_HEAD, H_BODY, H_APP, H_WAIT, H_DONE, H_NSTATES } http_state;
typedef enum { RESP_NONE, RESP_HEAD_SENT, RESP_DONE, RESP_NSTATES } http_resp_state;
typedef enum { OUT_NONE, OUT_LENGTH, OUT_CHUNKED, OUT_EOF } http_out_framing;

typedef struct {
  char *p;
  size_t len, cap;
} sbuf;

/* The request now being answered, as its head said (written when a head
 * is parsed, by http_conn.c only). */
typedef struct {
  bool is_head;    /* HEAD: a body is described, never sent */
  bool http10;     /* HTTP/1.0: no chunked, keep-alive only when asked */
  bool keep_alive; /* the request allows another after it */
} http_reqinfo;

/* The response in progress (written by http_resp.c, reset only by
 * http_resp_begin). */
typedef struct {
  http_resp_state state;
  http_out_framing framing;
  uint64_t left;    /* OUT_LENGTH: bytes still owed against the length */
  bool discard;     /* body bytes are dropped (HEAD, 1xx/204/304, X-Sendfile) */
  bool close_after; /* the connection ends with this response */
  bool drain_armed; /* a DSP_HTTP_DRAIN is owed when the queue empties */
  bool want_sent;   /* a DSP_HTTP_SENT is owed once this response has left */
} http_resp;

typedef struct http_conn {
  rx_conn *c;
  const http_settings *set;
  dsp_actor *actor;
  http_state state; /* written only by http_conn_to */
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
  int upgrade;                   /* what the request may upgrade to (UP_*) */
  const http_upgrader *upgrader; /* the one that recognised it, or NULL */
  http_upgrade_state up_state;   /* what it decided at parse time */
  uint64_t head_since;           /* when the head now arriving began (0: none) */
  uint64_t body_since;           /* when the body now arriving began */
  uint64_t body_got;             /* body bytes taken off the wire since then */
  http_reqinfo req;
  http_resp resp;
  /* finished responses whose DSP_HTTP_SENT is owed: the value sent_total
   * (reactor.h) reaches when each has left, oldest first (http_resp.c) */
  uint64_t *marks;
  uint32_t nmarks, mcap;
  /* a body handed over as it arrives (stream_body): `body` holds what has
   * arrived and the application has not taken, from body_rd on */
  bool streaming;     /* this request's body is streamed (until complete) */
  bool stream_end;    /* all of it has arrived */
  bool continue_owed; /* `100 Continue` goes out at the first read */
  int stream_err;     /* why it will not come (a status), or 0 */
  size_t body_rd;
  /* the connection's own facts (http_conn.c writes them) */
  bool read_paused; /* the read buffer is full: rx_resume when answered */
  bool peer_gone;   /* end of input seen while the application works */
  bool served;      /* at least one request answered (graceful stop) */
} http_conn;

/* --- growable byte buffers ----------------------------------------------- */

static inline int sb_grow(sbuf *b, size_t need) {
  if (b->len + need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + need) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static inline int sb_put(sbuf *b, const void *d, size_t n) {
  if (sb_grow(b, n)) return -1;
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

static inline int sb_str(sbuf *b, const char *s) { return sb_put(b, s, strlen(s)); }

static inline void sb_free(sbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* --- the state machines (http_conn.c) ---------------------------------------- */

/* Whether a move is legal (the tables the transition functions check). */
bool http_conn_may(http_state from, http_state to);
bool http_resp_may(http_resp_state from, http_resp_state to);
/* The only writers of h->state and h->resp.state. */
void http_conn_to(http_conn *h, http_state to);
void http_resp_to(http_conn *h, http_resp_state to);
/* A new request: the response back to NONE with every field cleared. */
void http_resp_begin(http_conn *h);

/* The connection behind an id while its application holds a request (APP),
 * else NULL. */
http_conn *http_conn_app(uint64_t id);
/* The connection behind an id if it still speaks HTTP, else NULL. */
http_conn *http_conn_find(uint64_t id);
/* For tests: the states of a connection still speaking HTTP (0), or -1. */
int http_conn_states(uint64_t id, http_state *conn, http_resp_state *resp,
                     http_out_framing *framing);

/* The one header of this name in q; NULL when absent or repeated (a
 * field that must appear once, repeated, is as good as malformed). */
const http1_header *http_conn_header(const http1_request *q, const char *name, size_t len);
/* Answer a request we will not serve with `code` (extra header lines in
 * `extra`, may be ""), then close. */
void http_conn_fail(http_conn *h, int code, const char *extra);
void http_conn_refuse(http_conn *h, int code, const char *extra, const http1_request *q);
/* Parse and dispatch whatever is buffered, as far as the state allows. */
void http_conn_process(http_conn *h);
/* Free the HTTP state without closing the socket (an upgrade took it). */
void http_conn_release(http_conn *h);

/* At most this much of a streamed body waits for the application before
 * the connection stops reading from its socket. */
#define HTTP_STREAM_WINDOW (256 * 1024)
/* Move streamed body bytes from the read buffer to the window. */
void http_stream_feed(http_conn *h);

/* --- the environ (http_env.c) ---------------------------------------------------- */

/* Build h->env for request q. Returns 0, -1 out of memory, -2 malformed. */
int http_env_build(http_conn *h, const http1_request *q);
/* Append a "\0KEY\0value" pair. */
int http_env_add(sbuf *e, const char *k, const char *v, size_t vl);

/* --- responses (http_resp.c) ------------------------------------------------------ */

/* Copy the application's "name\0value\0..." headers into `o` as header
 * lines (see http_resp.c). Returns 0, -1 out of memory, -2 malformed. */
typedef struct {
  int has_date, has_server, has_cl, close;
  uint64_t cl;
  const char *xsend; /* X-Sendfile: a file to send instead of the body */
  size_t xsend_len;
} http_app_meta;
int http_resp_app_headers(sbuf *o, const char *hd, size_t hlen, size_t count, http_app_meta *m,
                          const http_upgrader *up);
/* The one buffer heads are built in (big lock held), and its release
 * when a huge head left it large. */
sbuf *http_resp_scratch(void);
void http_resp_scratch_trim(void);
/* Server and Date unless the application gave them, then the blank line. */
int http_resp_defaults(sbuf *o, const http_app_meta *m);

/* The reactor's on_sent: post DSP_HTTP_SENT for the marks reached. */
void http_resp_on_sent(http_conn *h);
/* The connection is closing or changing protocol: every DSP_HTTP_SENT still
 * owed (marks, and a response asked for but never completed) is posted. */
void http_resp_sent_all(http_conn *h);

/* --- upgrades (http_upgrade.c) ------------------------------------------------------ */

/* Decide what request q may upgrade to (h->upgrade, h->upgrader), the
 * registered upgraders answering a broken handshake. Returns nonzero when
 * the request was answered. */
int http_upgrade_check(http_conn *h, const http1_request *q);

#endif
