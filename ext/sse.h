/* sse: an upgraded connection sending Server-Sent Events
 * (HTML Living Standard, "Server-sent events").
 *
 * Owns: which requests may become an event stream and the head that
 * starts one (sse_upgrader), formatting events (id, event, data split into one `data:` line per
 * line of input), keep-alive comments when idle, and the connection after
 * the 200 text/event-stream head. The stream is close-delimited: no
 * Content-Length, no chunking, so one formatted event is the same bytes on
 * every connection (pub/sub shares them: through its up_ops, a published
 * message becomes one event per publish, `id:` included, and a binary
 * message that is not UTF-8 goes base64-encoded as the event "base64").
 *
 * Must never: let an id or event name carry a line break (that would let
 * data forge fields), or read anything meaningful from the peer (input is
 * discarded; end of input means the client left). */
#ifndef IODINE_SSE_H
#define IODINE_SSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rx_conn rx_conn;
typedef struct dsp_actor dsp_actor;
typedef struct http_settings http_settings;
struct rx_buf;

/* An event's fields besides its data. `event`/`id` may be NULL; `retry`
 * (the client's reconnection delay, ms) is left out when negative. */
typedef struct sse_fields {
  const char *event;
  size_t elen;
  const char *id;
  size_t ilen;
  long retry;
} sse_fields;

/* Format an event into out[0..cap). Returns the size the event needs
 * (write nothing past cap; call with cap 0 to measure), or -1 when `event`
 * or `id` contains CR, LF or NUL. Pure. */
long sse_format(char *out, size_t cap, const char *data, size_t dlen, const sse_fields *f);

int sse_take_over(rx_conn *c, const http_settings *s, dsp_actor *actor);

/* The HTTP upgrade into an event stream (http_upgrade.h): a GET accepting
 * text/event-stream, answered by the 200 text/event-stream head, then
 * sse_take_over. server.c registers it. */
struct http_upgrader;
extern const struct http_upgrader sse_upgrader;

/* Send one event. 0, -1 when closed (or dropped over the output cap), -2
 * when event/id are malformed. Any thread. */
int sse_write(uint64_t conn, const char *data, size_t dlen, const char *event, size_t elen,
              const char *id, size_t ilen, long retry);

#endif
