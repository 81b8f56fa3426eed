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
 * States (ws_state below), each move made by websocket.c's ws_to alone,
 * which checks it against the table ws_may reads (an assert: debug builds
 * abort on an illegal move):
 *
 *   OPEN --a protocol error, or the peer's Close--> FAILING
 *   OPEN --our Close (the application's, an idle peer's 1001)--> CLOSE_SENT
 *   FAILING --our Close, once earlier messages were handled--> CLOSE_SENT
 *   OPEN, FAILING, CLOSE_SENT --the socket is gone (on_close)--> CLOSED
 *
 * OPEN reads and delivers messages, answers pings. FAILING has stopped
 * reading (the rest of the input is dropped) but still writes: DSP_FAIL
 * waits in the connection's actor behind every earlier message, and the
 * application's answer to it (ws_close, up_close) sends the Close. In
 * CLOSE_SENT nothing more is written (up_conn.closing, derived from the
 * state, says so to the shared calls), the socket half-closes once the
 * Close has left and lingers briefly discarding input (the peer's Close
 * included: we do not need it). CLOSED is final: on_close posts DSP_CLOSE
 * and frees the state. A socket the reactor closes under us (the peer
 * vanished, an output cap, an idle limit) goes to CLOSED from any state.
 *
 * Every protocol error answers with its close code: 1002 framing (RSV bits
 * not agreed included), 1007 bad UTF-8 or bad deflate data, 1009 too big
 * (after inflating too).
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

#include <stdbool.h>
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
int ws_take_over(rx_conn *c, const http_settings *s, dsp_actor *actor, const char *left,
                 size_t left_len, const pmd_params *pmd);

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

/* --- the state machine (see the top of this file) ------------------------ */

typedef enum { WS_OPEN, WS_FAILING, WS_CLOSE_SENT, WS_CLOSED, WS_NSTATES } ws_state;

/* Whether a move is legal (the table ws_to checks). */
bool ws_may(ws_state from, ws_state to);
/* For tests (lock held): the state of WebSocket connection `conn` (0), or
 * -1 when it is no (longer a) WebSocket. */
int ws_state_of(uint64_t conn, ws_state *st);
/* For tests only (lock held): make a move through ws_to, legal or not, so
 * a test can prove the check is armed (an illegal move aborts a build
 * without NDEBUG). Returns -1 when conn is no WebSocket. */
int ws_test_move(uint64_t conn, ws_state to);

#endif
