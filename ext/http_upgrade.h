/* http_upgrade: how a protocol plugs into HTTP/1.1's upgrade hand-off, the
 * way h2o hands an upgraded connection to a callback registered for its
 * protocol.
 *
 * Owns: the registry of upgraders. A protocol module (websocket.c, sse.c)
 * defines one http_upgrader, which says whether a request asks for it
 * (checking its handshake, and answering a broken one), what the switching
 * head carries, which response headers are its own, and how it takes the
 * connection over; the program's composition root (server.c's srv_init)
 * registers each. http_upgrade.c walks the registry and names no protocol.
 *
 * Must never: hold per-connection state (an upgrader keeps what it
 * decided at check time in the connection's http_upgrade_state, which HTTP
 * carries without reading), or be registered to while serving.
 *
 * Threads: registration happens before the loop runs (one thread); every
 * callback runs with the big lock held. */
#ifndef IODINE_HTTP_UPGRADE_H
#define IODINE_HTTP_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

#include "http1_parser.h"

typedef struct rx_conn rx_conn;
typedef struct dsp_actor dsp_actor;
typedef struct http_settings http_settings;

/* What an upgrader decided about a request, kept by the HTTP connection
 * until the hand-off (the Sec-WebSocket-Accept value, the negotiated
 * compression...). Opaque to HTTP. */
#define HTTP_UPGRADE_STATE_MAX 64
typedef union http_upgrade_state {
  unsigned char bytes[HTTP_UPGRADE_STATE_MAX];
  uint64_t align_;
} http_upgrade_state;

/* How to refuse a request that asked for a protocol but asked wrongly. */
typedef struct http_upgrade_answer {
  int status;        /* 400, 426... */
  const char *extra; /* header lines to add (each ending CRLF), or "" */
  int unnamed;       /* 1: log it without the request line */
} http_upgrade_answer;

#define HTTP_UPGRADE_HEAD_MAX 512 /* a switching head's own lines */

typedef struct http_upgrader {
  const char *name; /* "websocket", "sse" */
  int kind;         /* UP_* (events.h): what http_req.upgrade tells the app */
  /* Response header names (lowercase, NULL-terminated list) only the
   * protocol sets: the application's are dropped. May be NULL. */
  const char *const *owned;
  /* Does request q (framing facts fr) ask for this protocol? 0: no; 1:
   * yes, with what the hand-off needs written to *state; -1: it asked, but
   * wrongly: answer with *ans (nobody else is asked). */
  int (*check)(const http1_request *q, const http1_framing *fr, const http_settings *s,
               http_upgrade_state *state, http_upgrade_answer *ans);
  /* May the application's headers ("name\0value\0..." holding `count`
   * pairs) go out with this upgrade? 0 yes, -1 no. NULL: any. */
  int (*app_headers)(const http_upgrade_state *state, const char *hd, size_t hlen, size_t count);
  /* The switching head's own lines (status line first, each ending CRLF,
   * no blank line) into out[0..HTTP_UPGRADE_HEAD_MAX). Returns the length,
   * or -1. */
  long (*head)(const http_upgrade_state *state, char *out);
  /* Take the connection over once the head is queued: the actor
   * reference passes to the protocol; `left` holds bytes the peer sent
   * after the request. Returns 0, or -1 (the connection is then closed). */
  int (*take_over)(rx_conn *c, const http_settings *s, dsp_actor *actor, const char *left,
                   size_t left_len, const http_upgrade_state *state);
} http_upgrader;

/* Add an upgrader; requests are offered to upgraders in the order they
 * were registered, and the first that says yes (or answers) decides.
 * Registering one again does nothing. Returns 0, or -1 when the registry
 * (HTTP_UPGRADERS_MAX) is full. */
#define HTTP_UPGRADERS_MAX 8
int http_upgrade_register(const http_upgrader *u);

/* A request's header by lowercase name: NULL when absent or repeated (a
 * field that must appear once, repeated, is as good as malformed). */
const http1_header *http_upgrade_header(const http1_request *q, const char *name, size_t len);

#endif
