/* raw: a byte-stream connection with the upgraded-connection API, for raw
 * TCP/Unix/TLS services (a listener with service="raw") and for outgoing
 * client connections (Iodine.connect to tcp://, unix:, tls://).
 *
 * Owns: reading bytes and handing them to the application as they come
 * (DSP_RAW_DATA, one event per read, no framing), writing bytes, the
 * outgoing connect (its deadline and its failure reason), input
 * backpressure in both directions (reading stops while the application has
 * more than the input budget unhandled, and while this connection's own
 * output is over half its cap: an echo to a peer that never reads stalls
 * that peer instead of growing our queue), half-close (the peer's FIN:
 * what it sent is handled, our answers are flushed, then we close), and
 * why a connection ended (a short text in DSP_RAW_CLOSE).
 *
 * State (raw_state below), each move made by raw.c's raw_to alone and
 * checked against the table raw_may reads (an assert: debug builds):
 *   CONNECTING (client only: the connect, then the TLS or WebSocket
 *     handshake) -> OPEN
 *   OPEN -> CLOSE_SENT (a WebSocket client sent its Close: nothing more is
 *     handed to the application or written; the server's Close, or a
 *     2 s wait, ends it)
 *   OPEN or CLOSE_SENT -> EOF (the peer's input ended; waiting for the
 *     application to finish what it had) -> closed.
 * A connection that fails while CONNECTING is closed from there. DSP_RAW_BIND is always first (it names the
 * callback object: arg is the listener's tag or the connect token),
 * DSP_OPEN follows once bytes can flow, DSP_RAW_CLOSE is always last.
 *
 * Pub/sub and up_close reach it through its up_ops (upgrade.h): a
 * published message goes as its bytes, shared (a WebSocket client frames
 * it per recipient: frames it sends are masked), and a close sends a Close
 * frame with the code on a WebSocket client.
 *
 * Must never: interpret the bytes, call into Python, or block (names are
 * resolved by the caller, off the loop thread; connect is non-blocking).
 *
 * Threads: functions named "any thread" take the big lock themselves;
 * raw_attach runs on the loop thread with the lock held (accept). */
#ifndef IODINE_RAW_H
#define IODINE_RAW_H

#include <stddef.h>
#include <stdint.h>

typedef struct rx_conn rx_conn;
typedef struct http_settings http_settings;
typedef struct tls_ctx tls_ctx;

#include "events.h" /* DSP_RAW_* */

#include <stdbool.h>

typedef enum { RAW_CONNECTING, RAW_OPEN, RAW_CLOSE_SENT, RAW_EOF, RAW_NSTATES } raw_state;
/* Whether raw.c may move a connection from one state to the other. */
bool raw_may(raw_state from, raw_state to);

/* Bytes that arrived, handed to the application; raw_msg_done frees them
 * (and lets reading resume). */
typedef struct raw_msg {
  uint64_t conn;
  size_t len;
  int text; /* a WebSocket client's text message (raw bytes: 0) */
  char data[];
} raw_msg;

/* A WebSocket client connection (ws://, wss://): raw.c connects as for
 * raw bytes, sends `request` (the whole handshake request, built by the
 * caller), checks the response with ws_client.h (`accept`: the expected
 * Sec-WebSocket-Accept; `protocols`: the subprotocols offered, comma-
 * separated, or ""), and from then on speaks frames: DSP_RAW_DATA carries
 * whole messages (raw_msg.text), raw_send frames, raw_close sends a Close
 * frame, pings are answered, and a silent server is pinged once per idle
 * period before it is given up on. All copied. */
typedef struct raw_ws_opts {
  const char *request;
  size_t request_len;
  const char *accept;
  const char *protocols;
} raw_ws_opts;

/* Take over an accepted socket on a raw listener (lock held, loop thread).
 * With s->tls, TLS goes in before the first read. Returns the connection
 * or NULL (the caller closes fd). */
rx_conn *raw_attach(int fd, const http_settings *s, const char *peer, uint16_t port);

/* Connect to a numeric IPv4/IPv6 address and port, or to a Unix socket
 * ("unix:/path", port ignored), without blocking. `s` is copied (limits for
 * this connection: max_pending, ping_ms as the idle limit). `tls` non-NULL
 * (a client context, tls_client_ctx_new) speaks TLS, verifying the peer as
 * `servername` (a host name or an IP literal; may be NULL with verification
 * off). `token` comes back as DSP_RAW_BIND's arg. The connect has
 * `timeout_ms` (0: none) to complete, handshake included. Returns the
 * connection id; 0 when it could not even start (then DSP_RAW_FAILED with
 * the reason was posted instead). Any thread. */
uint64_t raw_connect(const char *addr, int port, const http_settings *s, tls_ctx *tls,
                     const char *servername, uint32_t timeout_ms, uint64_t token,
                     const raw_ws_opts *ws);

/* Report a connect that failed before a socket existed (a name that did
 * not resolve): posts DSP_RAW_FAILED with `token` and a copy of `reason`.
 * Any thread. 0 or -1 (out of memory). */
int raw_fail(uint64_t token, const char *reason);

/* Queue bytes. 0, or -1 when closed/closing or dropped over the output
 * cap. Any thread. */
int raw_write(uint64_t conn, const void *data, size_t len);

/* Send one message: raw bytes as they are, or on a WebSocket client a
 * text (`text` 1) or binary frame, masked. 0 or -1 as raw_write. Any
 * thread. */
int raw_send(uint64_t conn, const void *data, size_t len, int text);

/* The subprotocol a WebSocket client's server chose ("" for none), copied
 * to out[0..cap). Returns its length, or -1 when conn is gone. Any thread. */
long raw_subprotocol(uint64_t conn, char *out, size_t cap);

void raw_msg_done(raw_msg *m); /* any thread */
void raw_str_free(char *s);    /* DSP_RAW_CLOSE / DSP_RAW_FAILED texts */

#endif
