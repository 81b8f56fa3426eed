/* http_upgrade: the HTTP side of switching protocols (see http.h's
 * http_upgrade, http_conn.h for where this file sits).
 *
 * Owns: the WebSocket handshake checks on a request (RFC 6455 4.2.1: the
 * Sec-WebSocket-* fields, answered 400 / 426 here before the application
 * sees the request), the Sec-WebSocket-Accept value, what an SSE request
 * looks like, the head that switches (the 101, or the 200
 * text/event-stream head) and the hand-off of the socket to the new
 * protocol.
 *
 * Must never: frame WebSocket or SSE data (websocket.c, sse.c), or keep
 * anything of the connection after the hand-off.
 *
 * Threads: http_upgrade takes the big lock; the check runs on the loop
 * thread with it held. */
#define _GNU_SOURCE
#include <string.h>

#include "http_conn.h"
#include "sse.h"
#include "upgrade.h"
#include "websocket.h"
#include "ws_frame.h"

/* --- the WebSocket handshake (request side) -------------------------------- */

/* Decide what this request may upgrade to. A WebSocket handshake is
 * checked here, before the application sees it (RFC 6455 4.2.1): a wrong
 * version gets 426 naming the one we speak, anything else malformed 400.
 * Returns nonzero when the request was answered. */
int http_upgrade_check(http_conn *h, const http1_request *q) {
  int get = q->method_len == 3 && !memcmp(q->method, "GET", 3);
  h->upgrade = UP_NONE;
  /* No Sec-WebSocket-Version at all: not an RFC 6455 handshake (a
   * pre-standard one, say), so a plain request the application may answer. */
  int versioned = 0;
  for (size_t i = 0; i < q->num_headers; i++)
    versioned |= http1_name_is(&q->headers[i], "sec-websocket-version", 21);
  if (h->fr.upgrade_websocket && versioned) {
    const http1_header *v = http_conn_header(q, "sec-websocket-version", 21);
    const http1_header *k = http_conn_header(q, "sec-websocket-key", 17);
    if (!get || q->version_minor != 1 || !h->fr.has_host) {
      http_conn_fail(h, 400, "");
      return 1;
    }
    if (!v || v->value_len != 2 || memcmp(v->value, "13", 2)) {
      http_conn_fail(h, 426, "Sec-WebSocket-Version: 13\r\n");
      return 1;
    }
    if (!k || ws_accept_key(k->value, k->value_len, h->ws_accept)) {
      http_conn_fail(h, 400, "");
      return 1;
    }
    h->upgrade = UP_WEBSOCKET;
  } else if (h->fr.accept_event_stream && get) {
    h->upgrade = UP_SSE;
  }
  return 0;
}

/* --- the switching head and the hand-off ------------------------------------ */

/* The head that switches protocols, before the application's headers. */
static int switching_head(const http_conn *h, sbuf *head) {
  if (h->upgrade == UP_WEBSOCKET)
    return sb_str(head, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: ") ||
                   sb_put(head, h->ws_accept, 28) || sb_put(head, "\r\n", 2)
               ? -1
               : 0;
  return sb_str(head, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
}

int http_upgrade(uint64_t conn, const char *headers, size_t hlen, size_t count) {
  rx_lock();
  sbuf *head = http_resp_scratch();
  http_conn *h = http_conn_app(conn);
  int r = -1;
  if (!h || h->resp.state != RESP_NONE || h->upgrade == UP_NONE) goto out;
  head->len = 0;
  if (switching_head(h, head)) goto out;
  http_app_meta m;
  r = http_resp_app_headers(head, headers, hlen, count, &m, 1);
  if (r == 0) r = http_resp_defaults(head, &m);
  if (r) goto out;
  rx_conn *c = h->c;
  if (rx_write(c, head->p, head->len)) {
    r = -1;
    goto out;
  }
  http_resp_to(h, RESP_HEAD_SENT);
  http_resp_to(h, RESP_DONE); /* the head is the whole HTTP response */
  /* Hand over: the actor and any bytes the peer sent after the handshake
   * go to the new protocol; the HTTP state ends here, without on_close. */
  dsp_actor *actor = h->actor;
  h->actor = NULL;
  if (h->upgrade == UP_WEBSOCKET)
    r = ws_take_over(c, h->set, actor, h->rbuf + h->rpos, h->rlen - h->rpos);
  else
    r = sse_take_over(c, h->set, actor);
  http_conn_release(h);
out:
  http_resp_scratch_trim();
  rx_unlock();
  return r;
}
