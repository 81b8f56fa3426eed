/* upgrade: see upgrade.h for what this file owns. */
#include "upgrade.h"

#include "dispatch.h"
#include "http.h"
#include "reactor.h"

int up_adopt(rx_conn *c, up_conn *u, const up_ops *ops, const http_settings *set, dsp_actor *actor,
             const rx_proto *proto, uint32_t flags) {
  if (!u) {
    dsp_actor_release(actor);
    rx_set_proto(c, NULL, NULL);
    rx_close_now(c);
    return -1;
  }
  u->ops = ops;
  u->actor = actor;
  u->set = set;
  rx_set_proto(c, proto, u);
  rx_mark_upgraded(c);
  if (flags & RX_F_IDLE_READ) rx_idle_on_read(c);
  c->timeout_ms = set->ping_ms;
  rx_touch(c);
  dsp_post(actor, DSP_OPEN, c->id, NULL, 0);
  rx_resume(c);
  return 0;
}

up_conn *up_find(uint64_t conn, rx_conn **out) {
  rx_conn *c = rx_find(conn);
  if (!c || !rx_upgraded(c)) return NULL;
  if (out) *out = c;
  return c->udata;
}

int up_room(rx_conn *c, const up_conn *u, size_t more) {
  uint64_t cap = u->set->max_pending;
  if (cap < 2 * u->set->ws_max_msg + 64) cap = 2 * u->set->ws_max_msg + 64;
  (void)more; /* one message may always be added to an acceptable queue */
  if (c->out_bytes <= cap) return 0;
  rx_close_now(c); /* a reader this far behind is not coming back */
  return -1;
}

long up_pending(uint64_t conn) {
  rx_lock();
  rx_release(NULL); /* held-back pub/sub output counts as pending */
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  long r = (u && !rx_closed(c) && !u->closing) ? (long)c->out_count : -1;
  rx_unlock();
  return r;
}

int up_is_open(uint64_t conn) {
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  int r = u && !rx_closed(c) && !u->closing;
  rx_unlock();
  return r;
}

long up_timeout(uint64_t conn, long set_ms) {
  rx_lock();
  rx_conn *c;
  long r = -1;
  if (up_find(conn, &c)) {
    if (set_ms >= 0) c->timeout_ms = (uint32_t)(set_ms > 0x7fffffff ? 0x7fffffff : set_ms);
    r = (long)c->timeout_ms;
  }
  rx_unlock();
  return r;
}

int up_close(uint64_t conn, unsigned code) {
  rx_lock();
  rx_conn *c;
  up_conn *u = up_find(conn, &c);
  int r = -1;
  if (u && !rx_closed(c)) {
    if (u->ops->close)
      u->ops->close(c, code);
    else
      rx_close(c);
    r = 0;
  }
  rx_unlock();
  return r;
}

void up_want_drained(uint64_t conn, int on) {
  rx_lock();
  up_conn *u = up_find(conn, NULL);
  if (u) u->want_drained = on != 0;
  rx_unlock();
}
