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

#include "ascii.h"
#include "http_conn.h"
#include "pmd.h"
#include "sse.h"
#include "upgrade.h"
#include "websocket.h"
#include "ws_frame.h"

/* --- the WebSocket handshake (request side) -------------------------------- */

/* The client's permessage-deflate offers (Sec-WebSocket-Extensions, any
 * number of fields) against the listener's settings (pmd.h). */
static void negotiate_pmd(http_conn *h, const http1_request *q) {
  const char *vals[8];
  size_t lens[8], n = 0;
  memset(&h->pmd, 0, sizeof h->pmd);
  for (size_t i = 0; i < q->num_headers; i++)
    if (http1_name_is(&q->headers[i], "sec-websocket-extensions", 24)) {
      if (n == 8) return; /* more offers than anyone sends: decline all */
      vals[n] = q->headers[i].value;
      lens[n++] = q->headers[i].value_len;
    }
  pmd_config cfg = {h->set->ws_deflate, h->set->ws_deflate_bits, h->set->ws_deflate_mem};
  if (n) pmd_negotiate(vals, lens, n, &cfg, &h->pmd);
}

/* Decide what this request may upgrade to. A WebSocket handshake is
 * checked here, before the application sees it (RFC 6455 4.2.1): a
 * missing or wrong version gets 426 naming the one we speak (4.4), a
 * repeated one (11.3.5: it must appear once) and anything else malformed
 * 400. Returns nonzero when the request was answered. */
int http_upgrade_check(http_conn *h, const http1_request *q) {
  int get = q->method_len == 3 && !memcmp(q->method, "GET", 3);
  h->upgrade = UP_NONE;
  if (h->fr.upgrade_websocket) {
    size_t versions = 0;
    for (size_t i = 0; i < q->num_headers; i++)
      versions += http1_name_is(&q->headers[i], "sec-websocket-version", 21);
    const http1_header *v = http_conn_header(q, "sec-websocket-version", 21);
    const http1_header *k = http_conn_header(q, "sec-websocket-key", 17);
    if (!get || q->version_minor != 1 || !h->fr.has_host || versions > 1) {
      http_conn_refuse(h, 400, "", q);
      return 1;
    }
    if (!v || v->value_len != 2 || memcmp(v->value, "13", 2)) {
      http_conn_fail(h, 426, "Sec-WebSocket-Version: 13\r\n");
      return 1;
    }
    if (!k || ws_accept_key(k->value, k->value_len, h->ws_accept)) {
      http_conn_refuse(h, 400, "", q);
      return 1;
    }
    negotiate_pmd(h, q);
    h->upgrade = UP_WEBSOCKET;
  } else if (h->fr.accept_event_stream && get) {
    h->upgrade = UP_SSE;
  }
  return 0;
}

/* --- the switching head and the hand-off ------------------------------------ */

/* The server owns Sec-WebSocket-Extensions (only it knows what the
 * connection will speak): an application's own may only name
 * permessage-deflate, and only when it was agreed; its parameters are
 * replaced by the agreed ones. Returns 0, or -1 when it names anything
 * else. */
static int app_extensions(const char *hd, size_t hlen, size_t count,
                          const pmd_params *pmd) {
  const char *p = hd, *end = hd + hlen;
  for (size_t k = 0; k < count && p < end; k++) {
    size_t nl = strnlen(p, (size_t)(end - p));
    const char *val = p + nl + 1;
    if (val > end) break;
    size_t vl = strnlen(val, (size_t)(end - val));
    if (nl == 24 && ascii_same_ci(p, "sec-websocket-extensions", 24)) {
      /* every comma-separated extension must be permessage-deflate */
      size_t i = 0;
      while (i < vl) {
        while (i < vl && (val[i] == ' ' || val[i] == '\t' || val[i] == ',')) i++;
        if (i == vl) break;
        size_t s = i;
        while (i < vl && val[i] != ';' && val[i] != ',' && val[i] != ' ' && val[i] != '\t') i++;
        if (!pmd->on || i - s != 18 || !ascii_same_ci(val + s, "permessage-deflate", 18))
          return -1;
        while (i < vl && val[i] != ',') i++; /* its parameters: ours win */
      }
    }
    p = val + vl + 1;
  }
  return 0;
}

/* The head that switches protocols, before the application's headers. */
static int switching_head(const http_conn *h, sbuf *head) {
  if (h->upgrade == UP_WEBSOCKET) {
    if (sb_str(head, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: ") ||
        sb_put(head, h->ws_accept, 28) || sb_put(head, "\r\n", 2))
      return -1;
    if (h->pmd.on) {
      char ext[PMD_RESPONSE_MAX];
      size_t el = pmd_response(&h->pmd, ext);
      if (sb_str(head, "Sec-WebSocket-Extensions: ") || sb_put(head, ext, el) ||
          sb_put(head, "\r\n", 2))
        return -1;
    }
    return 0;
  }
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
  if (h->upgrade == UP_WEBSOCKET && app_extensions(headers, hlen, count, &h->pmd)) {
    r = -2;
    goto out;
  }
  if (switching_head(h, head)) goto out;
  http_app_meta m;
  r = http_resp_app_headers(head, headers, hlen, count, &m, h->upgrade);
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
  http_resp_sent_all(h); /* earlier answers' markers end with HTTP here */
  dsp_actor *actor = h->actor;
  h->actor = NULL;
  if (h->upgrade == UP_WEBSOCKET)
    r = ws_take_over(c, h->set, actor, h->rbuf + h->rpos, h->rlen - h->rpos,
                     &h->pmd);
  else
    r = sse_take_over(c, h->set, actor);
  http_conn_release(h);
out:
  http_resp_scratch_trim();
  rx_unlock();
  return r;
}
