/* ws_client: the client side of RFC 6455, bytes only, for outgoing
 * WebSocket connections (raw.c runs them: connect, TLS, timeouts, close
 * reasons; Iodine.connect("ws://..." | "wss://...") builds the handshake
 * request in Python).
 *
 * Owns: checking the server's handshake response (101, Upgrade, Connection,
 * Sec-WebSocket-Accept, the subprotocol it chose among those offered),
 * masked client frame heads, and the incremental reader of server frames
 * (unmasked, fragments reassembled, control frames between fragments, UTF-8
 * of text checked, the message size limit), which hands out whole messages
 * and control frames one at a time.
 *
 * Must never: touch a socket, post events or call into Python (raw.c does
 * that with what these functions return). The reader allocates only the
 * message being assembled; everything else is the caller's memory.
 * Errors carry their answer: a close code, or a one-line reason. */
#ifndef IODINE_WS_CLIENT_H
#define IODINE_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ws_frame.h"

#define WSC_MAX_HEAD 8192 /* a handshake response head longer than this is refused */

/* Check a handshake response at buf[0..len). Returns the head's size (the
 * bytes after it are frames), 0 when the head has not ended yet (and len <
 * WSC_MAX_HEAD), or -1 with *err set to a static reason. `accept` is the
 * expected Sec-WebSocket-Accept; `offered` the subprotocols offered,
 * comma-separated ("" or NULL: none, and then the server must choose none).
 * The chosen one (or "") is copied to chosen[0..cap). Pure. */
long wsc_response(const char *buf, size_t len, const char *accept, const char *offered,
                  char *chosen, size_t cap, const char **err);

/* A masked frame head for `len` payload bytes (room for 14). Returns its
 * size. The payload must then be masked with `mask` (ws_unmask). */
size_t wsc_head_write(uint8_t *out, int opcode, uint64_t len, const uint8_t mask[4]);

enum { WSC_NONE = 0, WSC_MESSAGE, WSC_PING, WSC_PONG, WSC_CLOSE, WSC_ERROR };

typedef struct wsc_reader {
  ws_head head;
  uint8_t hbuf[WS_HEAD_MAX]; /* a frame head split across reads */
  size_t hlen;
  uint64_t frame_pos;
  int in_frame;
  int msg_op; /* WS_OP_TEXT / WS_OP_BINARY while a message is assembled */
  uint8_t *msg;
  size_t msg_len, msg_cap;
  uint32_t utf8;
  uint8_t ctl[125];
} wsc_reader;

typedef struct wsc_event {
  int kind;      /* WSC_* */
  int text;      /* WSC_MESSAGE: a text message */
  uint8_t *data; /* WSC_MESSAGE: malloc'ed, now the caller's; control: ctl */
  size_t len;
  unsigned code; /* WSC_CLOSE: the peer's code (0: none); WSC_ERROR: ours */
} wsc_event;

/* Decode from p[0..n): *used is set to the bytes consumed. Returns 1 with
 * an event (call again with the rest), or 0 when everything was consumed
 * without completing one. After WSC_ERROR or WSC_CLOSE the reader is done. */
int wsc_feed(wsc_reader *r, const uint8_t *p, size_t n, uint64_t max_msg, size_t *used,
             wsc_event *ev);
void wsc_reader_free(wsc_reader *r);

#endif
