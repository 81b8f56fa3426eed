/* http_upgrade: the HTTP side of switching protocols (see http.h's
 * http_upgrade, http_upgrade.h for how a protocol plugs in, http_conn.h
 * for where this file sits).
 *
 * Owns: the upgrader registry, offering each request to the registered
 * upgraders (their checks answer a broken handshake before the application
 * sees the request), and the hand-off: the switching head (the upgrader's
 * own lines, then the application's headers less those the upgrader owns,
 * then Server and Date) and the socket passed to the upgrader's take_over.
 *
 * Must never: name a protocol or frame its data (the protocol modules
 * register themselves through server.c), or keep anything of the
 * connection after the hand-off.
 *
 * Threads: http_upgrade takes the big lock; the check runs on the loop
 * thread with it held; registration runs before serving. */
#define _GNU_SOURCE
#include "http_upgrade.h"

#include <string.h>

#include "events.h" /* UP_NONE */
#include "http_conn.h"

static struct {
  const http_upgrader *list[HTTP_UPGRADERS_MAX];
  size_t n;
} reg;

int http_upgrade_register(const http_upgrader *u) {
  for (size_t i = 0; i < reg.n; i++)
    if (reg.list[i] == u) return 0;
  if (reg.n == HTTP_UPGRADERS_MAX) return -1;
  reg.list[reg.n++] = u;
  return 0;
}

const http1_header *http_upgrade_header(const http1_request *q, const char *name, size_t len) {
  return http_conn_header(q, name, len);
}

/* Decide what this request may upgrade to: the first registered upgrader
 * that recognises it decides, and one that finds its handshake broken
 * answers it here, before the application sees it. Returns nonzero when
 * the request was answered. */
int http_upgrade_check(http_conn *h, const http1_request *q) {
  h->upgrade = UP_NONE;
  h->upgrader = NULL;
  for (size_t i = 0; i < reg.n; i++) {
    const http_upgrader *u = reg.list[i];
    http_upgrade_answer ans = {400, "", 0};
    int r = u->check(q, &h->fr, h->set, &h->up_state, &ans);
    if (r < 0) {
      http_conn_refuse(h, ans.status, ans.extra, ans.unnamed ? NULL : q);
      return 1;
    }
    if (r > 0) {
      h->upgrade = u->kind;
      h->upgrader = u;
      return 0;
    }
  }
  return 0;
}

int http_upgrade(uint64_t conn, const char *headers, size_t hlen, size_t count) {
  rx_lock();
  sbuf *head = http_resp_scratch();
  http_conn *h = http_conn_app(conn);
  int r = -1;
  if (!h || h->resp.state != RESP_NONE || !h->upgrader) goto out;
  const http_upgrader *u = h->upgrader;
  head->len = 0;
  if (u->app_headers && u->app_headers(&h->up_state, headers, hlen, count)) {
    r = -2;
    goto out;
  }
  char own[HTTP_UPGRADE_HEAD_MAX];
  long ol = u->head(&h->up_state, own);
  if (ol < 0 || sb_put(head, own, (size_t)ol)) goto out;
  http_app_meta m;
  r = http_resp_app_headers(head, headers, hlen, count, &m, u);
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
  r = u->take_over(c, h->set, actor, h->rbuf + h->rpos, h->rlen - h->rpos, &h->up_state);
  http_conn_release(h);
out:
  http_resp_scratch_trim();
  rx_unlock();
  return r;
}
