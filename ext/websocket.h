/* websocket: an upgraded connection speaking RFC 6455.
 *
 * Owns: reading frames (through ws_frame) into whole messages, with
 * fragmentation, interleaved control frames, UTF-8 checks on text, the
 * message size limit, ping/pong, the close handshake, idle pings; writing
 * messages; input backpressure (reading stops while too many received bytes
 * wait for the application).
 *
 * State: OPEN until a Close frame is sent or received, then CLOSING (input
 * is discarded, the socket lingers briefly), then closed. Every protocol
 * error answers with its close code: 1002 framing, 1007 bad UTF-8, 1009 too
 * big.
 *
 * Must never: hand the application an incomplete or invalid message, or
 * call into Python (messages leave through dispatch). */
#ifndef IODINE_WEBSOCKET_H
#define IODINE_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

typedef struct rx_conn rx_conn;
typedef struct dsp_actor dsp_actor;
typedef struct http_settings http_settings;

/* A received message, handed to the application; ws_msg_done frees it. */
typedef struct ws_msg {
  uint64_t conn;
  size_t len;
  int text;
  char data[];
} ws_msg;

/* Take over an HTTP connection after the 101 went out. `left` holds bytes
 * the peer already sent past the handshake. The actor reference passes to
 * the WebSocket. Posts DSP_OPEN. Returns 0 or -1 (the connection is then
 * closed). Caller holds the lock, on the loop thread or not. */
int ws_take_over(rx_conn *c, const http_settings *s, dsp_actor *actor,
                 const char *left, size_t left_len);

/* Send a message: text (UTF-8, not checked: Python's str guarantees it) or
 * binary. Returns 0, or -1 when closed/closing (or dropped for exceeding
 * the output cap). Any thread. */
int ws_write(uint64_t conn, const void *data, size_t len, int text);

/* Queue a shared, already framed message (pub/sub fan-out). Caller holds
 * the lock. */
struct rx_buf;
int ws_write_framed(rx_conn *c, struct rx_buf *frame);

/* Start the close handshake with `code` (lock held). */
void ws_send_close(rx_conn *c, unsigned code);

void ws_msg_done(ws_msg *m); /* any thread */

#endif
