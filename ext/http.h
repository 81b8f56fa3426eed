/* http: the HTTP/1.1 connection protocol on top of the reactor.
 *
 * Owns: reading requests off a connection (through http1_parser), limits,
 * bodies (in memory up to a threshold, then in an unlinked temp file; or
 * streamed to application threads as they arrive, through a window),
 * `Expect: 100-continue`, keep-alive, pipelining (one request at a time:
 * the next is parsed only when the current response is complete, so
 * responses leave in request order), the WSGI environ as a flat blob, and
 * writing responses: status line, Date/Server, framing (Content-Length,
 * chunked, or close-delimited for HTTP/1.0), HEAD, error answers.
 *
 * Must never: call into Python directly (requests leave through dispatch),
 * or let a peer make it buffer without bound: the read buffer is capped by
 * the head limit, bodies by the body limit (and spilled to disk), and
 * output by the caller pausing on http_write's return value.
 *
 * Response functions take a connection id and the big lock themselves, so
 * they may be called from any thread.
 *
 * This header is the public face of four files, one concern each (their
 * shared private header, with the connection and response state machines,
 * is http_conn.h): http_conn.c (connection input, dispatch), http_env.c
 * (the environ), http_resp.c (responses), http_upgrade.c (the switch to
 * another protocol, through the upgraders that protocols register:
 * http_upgrade.h). Protocol facts they share
 * with static.c and accesslog.c live in http_facts.h. */
#ifndef IODINE_HTTP_H
#define IODINE_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rx_conn rx_conn;

typedef struct http_settings {
  size_t max_head;       /* bytes of request line + headers (431 over) */
  size_t max_line;       /* one header line (431 over) */
  size_t max_headers;    /* header count (431 over) */
  uint64_t max_body;     /* bytes (413 over) */
  size_t spill;          /* bodies over this go to a temp file */
  uint32_t keepalive_ms; /* idle limit between requests and while stalled */
  int tag;               /* which application (one per listen call) */
  /* for connections that upgrade (upgrade.h) */
  uint64_t ws_max_msg; /* largest WebSocket message, bytes (1009 over) */
  uint32_t ping_ms;    /* WebSocket ping / SSE keep-alive interval */
  size_t max_pending;  /* output a peer may leave unread before it is cut */
  /* a request head must arrive whole within this (408 over; slowloris) */
  uint32_t header_timeout_ms;
  /* proxies whose X-Forwarded-For/-Proto are believed (proxy.h), or NULL */
  const struct px_trust *trust;
  /* TLS for this listener's connections (tls.h), or NULL: plain TCP */
  struct tls_ctx *tls;
  /* GET/HEAD served from files under this folder before the application
   * (static.h): a canonical absolute path (realpath), alive as long as the
   * process; NULL: off */
  const char *public_root;
  /* after header_timeout_ms of a body, it must average this (408 under) */
  uint32_t min_body_rate; /* bytes a second, 0: off */
  /* WebSocket permessage-deflate (pmd.h): offered by clients, agreed
   * when on; our window and the one clients may keep (9..15); messages
   * under ws_deflate_min bytes go uncompressed; inflate state a
   * connection may keep between messages, bytes */
  int ws_deflate;
  int ws_deflate_bits;
  size_t ws_deflate_min;
  size_t ws_deflate_mem;
  /* what accepted connections speak: 0 HTTP, 1 raw bytes (raw.h) */
  int service;
  /* hand request bodies to the application as they arrive (application
   * threads, -t > 1): the app is called once the head is read and reads
   * with http_body_read; 0: the whole body first (memory, then a file) */
  int stream_body;
} http_settings;

/* A request handed to the application. It owns its memory; free it with
 * http_req_free once done (the connection does not wait for that). */
typedef struct http_req {
  uint64_t conn;
  int tag;
  int is_head;
  int upgrade; /* UP_* (events.h): rack.upgrade? */
  char *env;   /* the environ blob: see http_env_fixed() */
  size_t env_len;
  char *body; /* in-memory body, or NULL */
  size_t body_len;
  int body_fd; /* spilled body (read from offset 0), or -1 */
  uint64_t body_size;
  int body_stream; /* the body arrives through http_body_read (then body,
                       body_fd and body_size say nothing) */
} http_req;

/* The environ blob of a request: "v1\0v2\0...\0v7" for the keys named
 * by http_env_fixed(), in that order (space-separated: REQUEST_METHOD,
 * REQUEST_URI, PATH_INFO, QUERY_STRING, SERVER_PROTOCOL, REMOTE_ADDR,
 * REMOTE_PORT), then "\0KEY\0value" pairs (HTTP_*, CONTENT_TYPE,
 * CONTENT_LENGTH, and a trusted proxy's REMOTE_ADDR or wsgi.url_scheme,
 * which replace the earlier ones). The fixed keys carry no names so the
 * environ costs Python seven fewer strings to make and hash. */
const char *http_env_fixed(void);

/* Take over an accepted socket. `peer` is the text address. */
rx_conn *http_attach(int fd, const http_settings *s, const char *peer, uint16_t peer_port);

void http_req_free(http_req *r);

/* Response API. Each returns >= 0 on success or -1 when the connection is
 * gone (the application should stop producing the response).
 *
 * http_respond sends the status line and headers, then `body` (may be
 * empty), and completes the response (absent a Content-Length from the
 * application, one is added); http_respond_begin (below) leaves it open. `headers` is
 * "Name\0value\0Name\0value" holding `count` pairs (hlen 0 for none): the
 * count is checked against the separators, so a NUL smuggled inside a value
 * cannot shift the pairing and inject a header. Returns -2, sending
 * nothing, when the status or a header is malformed (a name that is not a
 * token, a value with CR, LF or NUL).
 *
 * An `X-Sendfile: /absolute/path` header (not sent on) makes the core send
 * that file after the head with sendfile, its size as the Content-Length,
 * and drop whatever body the application gives (here or later through
 * http_write/http_sendfile); the status and other headers are the
 * application's. A file that cannot be opened, or is not a regular file,
 * is answered 404 instead, with a line on stderr, and 1 is returned (so
 * the access log shows the 404 that was sent). Ignored on statuses
 * without a body (1xx, 204, 304). */
int http_respond(uint64_t conn, const char *status, size_t slen, const char *headers, size_t hlen,
                 size_t count, const char *body, size_t blen);
/* The same head and first body bytes, the response left open: more body
 * follows through http_write / http_sendfile, then http_finish. */
int http_respond_begin(uint64_t conn, const char *status, size_t slen, const char *headers,
                       size_t hlen, size_t count, const char *body, size_t blen);
/* Body bytes after http_respond. Returns bytes now queued, not yet taken
 * by the peer: a caller above its high-water mark should stop and wait for
 * DSP_HTTP_DRAIN through http_await_drain. */
long http_write(uint64_t conn, const char *data, size_t len);
/* Send len bytes of fd from offset (sendfile). Takes ownership of fd. */
long http_sendfile(uint64_t conn, int fd, uint64_t offset, uint64_t len);
int http_finish(uint64_t conn);
/* Drop the connection (an application error after the head was sent). */
int http_abort(uint64_t conn);
/* 1: the output queue is empty, go on; 0: armed, a DSP_HTTP_DRAIN event
 * will follow (also if the connection dies); -1: gone. */
int http_await_drain(uint64_t conn);

/* Answer an upgradeable request by switching protocols (http_upgrade.c,
 * through the request's upgrader: http_upgrade.h): a 101 with
 * Sec-WebSocket-Accept (and Sec-WebSocket-Extensions when compression was
 * agreed: the server owns that header; an application's own is accepted
 * only when it names exactly what was agreed, else -2), or a 200 text/event-stream head, carrying the
 * application's extra headers (same form as http_respond). The connection
 * then belongs to websocket.c or sse.c, which posts DSP_OPEN. Returns 0, -1
 * when gone or not upgradeable, -2 for malformed headers. */
int http_upgrade(uint64_t conn, const char *headers, size_t hlen, size_t count);

/* Ask for a DSP_HTTP_SENT event (arg 1) once the response now in progress
 * has been completed and its last byte written to the socket, or the
 * connection died first (the moment PEP 3333's close() and a request's
 * finish hook mean). Call it before the call that completes the response.
 * Several finished responses of one connection may share one event (arg:
 * how many), always in order. Returns 0, or -1 when the connection is
 * gone (nothing will be posted). */
int http_want_sent(uint64_t conn);

/* A streamed request body (http_req.body_stream): copy up to `len` bytes
 * that have arrived into dst, waiting for some when none have (off the
 * loop thread only: there it returns -2 instead of waiting). Returns the
 * bytes copied (> 0), 0 at the end of the body, -1 when the body will not
 * come (the connection died, or it broke a limit: 413, 408, 400, answered
 * by the server when the application had not begun its response). The
 * first call sends `100 Continue` when the client asked for it. Taking
 * bytes lets the server read more off the socket: it holds at most a window
 * (HTTP_STREAM_WINDOW) plus its read buffer for a reader that lags. */
long http_body_read(uint64_t conn, char *dst, size_t len);

/* Bytes queued on a connection, or -1 when it is gone. */
long http_queued(uint64_t conn);

#endif
