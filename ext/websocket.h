/* websocket: an upgraded connection speaking RFC 6455.
 *
 * Owns: the opening handshake's server side (checked before the
 * application sees the request, see ws_upgrader), reading frames (through
 * ws_frame) into whole messages, with
 * fragmentation, interleaved control frames, UTF-8 checks on text, the
 * message size limit, ping/pong, the close handshake, idle pings; writing
 * messages; input backpressure (reading stops while too many received bytes
 * wait for the application).
 *
 * With permessage-deflate agreed (pmd.h), a message whose first frame has
 * RSV1 is inflated as it streams in, bounded by the message limit, and
 * outgoing data messages of at least `ws_deflate_min` bytes are compressed
 * (when that makes them smaller). RSV1 is legal only on the first frame of
 * a data message of a connection that negotiated compression; control
 * frames are never compressed.
 *
 * State: OPEN until a Close frame is sent or received, then CLOSING (input
 * is discarded, the socket lingers briefly), then closed. Every protocol
 * error answers with its close code: 1002 framing (RSV bits not agreed
 * included), 1007 bad UTF-8 or bad deflate data, 1009 too big (after
 * inflating too).
 *
 * A peer's Close frame reaches the application before on_close: DSP_FAIL
 * carries a ws_msg with the reason (text = 1) and the code in `arg`, and
 * the application's answer (ws_close) echoes both.
 *
 * Pub/sub reaches a WebSocket through its up_ops (upgrade.h): a published
 * message is framed once per frame type (PS_AS_*) and, with compression,
 * once per window size, and the frame is shared by every subscriber that
 * needs those bytes.
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
typedef struct pmd_params pmd_params;

/* A received message, handed to the application; ws_msg_done frees it. */
typedef struct ws_msg {
  uint64_t conn;
  size_t len;
  int text;
  char data[];
} ws_msg;

/* The HTTP upgrade into a WebSocket (http_upgrade.h): the handshake checks
 * (RFC 6455 4.2.1), Sec-WebSocket-Accept, permessage-deflate negotiation
 * (pmd.h), the 101, and ws_take_over. server.c registers it. */
struct http_upgrader;
extern const struct http_upgrader ws_upgrader;

/* Take over an HTTP connection after the 101 went out. `left` holds bytes
 * the peer already sent past the handshake. The actor reference passes to
 * the WebSocket. Posts DSP_OPEN. Returns 0 or -1 (the connection is then
 * closed). Caller holds the lock, on the loop thread or not. */
int ws_take_over(rx_conn *c, const http_settings *s, dsp_actor *actor,
                 const char *left, size_t left_len, const pmd_params *pmd);

/* Send a message: text (UTF-8, not checked: Python's str guarantees it) or
 * binary. Returns 0, or -1 when closed/closing (or dropped for exceeding
 * the output cap). Any thread. */
int ws_write(uint64_t conn, const void *data, size_t len, int text);

/* Start the close handshake with `code` and a reason (UTF-8, at most 123
 * bytes; longer is cut) (lock held). code 0: a Close without a body. */
void ws_send_close(rx_conn *c, unsigned code, const char *reason, size_t rlen);

/* The application's close: ws_send_close by connection id (any thread).
 * Returns 0, or -1 when already gone. */
int ws_close(uint64_t conn, unsigned code, const char *reason, size_t rlen);

void ws_msg_done(ws_msg *m); /* any thread */

#endif
