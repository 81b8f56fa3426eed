/* cluster: see cluster.h for what this file owns. */
#include "cluster.h"

#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "pubsub.h"
#include "reactor.h"

typedef struct relay {
  rx_conn *c;
  int slot; /* master side: the worker's slot; worker side: -1 */
  char *buf;
  size_t len, cap;
} relay;

static struct {
  int is_master, is_worker;
  uint64_t master;                  /* worker side: the connection to the master */
  uint64_t workers[CL_MAX_WORKERS]; /* master side, by slot */
} cl;

static const rx_proto relay_proto;

static uint32_t get32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static void put32(char *p, uint32_t v) {
  p[0] = (char)v;
  p[1] = (char)(v >> 8);
  p[2] = (char)(v >> 16);
  p[3] = (char)(v >> 24);
}

static uint64_t get64(const char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static void put64(char *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

enum { K_PUBLISH = 1, K_SEQUENCED = 2 };
#define SEQ_HEAD 26 /* u32 length, kind, text, u64 ms, u64 seq, u32 clen */

int cl_active(void) { return cl.is_master || cl.is_worker; }

/* Master: one frame, shared, to every worker. */
static void forward(const char *frame, size_t len) {
  rx_buf *b = rx_buf_new(frame, len);
  if (!b) return;
  for (int i = 0; i < CL_MAX_WORKERS; i++) {
    if (!cl.workers[i]) continue;
    rx_conn *c = rx_find(cl.workers[i]);
    if (!c) continue;
    if (c->out_bytes > CL_MAX_QUEUED) {
      rx_close_now(c); /* a worker this far behind has stopped working */
      continue;
    }
    rx_write_buf(c, b);
  }
  rx_buf_release(b);
}

/* Master (lock held): stamp the next id and send the sequenced frame to
 * every worker. -2 when out of memory. */
static int sequence(const char *channel, size_t clen, const char *msg, size_t mlen, int text) {
  size_t len = SEQ_HEAD + clen + mlen;
  char *frame = malloc(len);
  if (!frame) return -2;
  ps_id id = ps_stamp_locked();
  put32(frame, (uint32_t)(len - 4));
  frame[4] = K_SEQUENCED;
  frame[5] = text ? 1 : 0;
  put64(frame + 6, id.ms);
  put64(frame + 14, id.seq);
  put32(frame + 22, (uint32_t)clen);
  memcpy(frame + SEQ_HEAD, channel, clen);
  if (mlen) memcpy(frame + SEQ_HEAD + clen, msg, mlen);
  forward(frame, len);
  free(frame);
  return 0;
}

static void on_frame(relay *r, const char *f, size_t len) {
  /* f: everything after the length prefix */
  (void)r;
  if (len < 2) return;
  int text = f[1] != 0;
  if (f[0] == K_PUBLISH && cl.is_master && len >= 6) {
    uint32_t clen = get32(f + 2);
    if (clen > len - 6) return;
    sequence(f + 6, clen, f + 6 + clen, len - 6 - clen, text);
  } else if (f[0] == K_SEQUENCED && cl.is_worker && len >= SEQ_HEAD - 4) {
    ps_id id = {get64(f + 2), get64(f + 10)};
    uint32_t clen = get32(f + 18);
    if (clen > len - (SEQ_HEAD - 4)) return;
    const char *ch = f + SEQ_HEAD - 4;
    ps_publish_id_locked(ch, clen, ch + clen, len - (SEQ_HEAD - 4) - clen, text, id);
  }
}

static void on_data(rx_conn *c) {
  relay *r = c->udata;
  for (;;) {
    if (r->cap - r->len < 65536) {
      size_t cap = r->cap ? r->cap * 2 : 131072;
      char *p = realloc(r->buf, cap);
      if (!p) {
        rx_close_now(c);
        return;
      }
      r->buf = p;
      r->cap = cap;
    }
    long n = rx_read(c, r->buf + r->len, r->cap - r->len);
    if (n == 0) break;
    if (n < 0) {
      rx_close_now(c);
      return;
    }
    r->len += (size_t)n;
    size_t at = 0;
    while (r->len - at >= 4) {
      uint32_t flen = get32(r->buf + at);
      if (flen > CL_MAX_FRAME) { /* not our peer's framing: give up */
        rx_close_now(c);
        return;
      }
      if (r->len - at - 4 < flen) break;
      on_frame(r, r->buf + at + 4, flen);
      at += 4 + (size_t)flen;
    }
    memmove(r->buf, r->buf + at, r->len - at);
    r->len -= at;
    /* keep a large frame's buffer only while it is needed */
    if (!r->len && r->cap > (4u << 20)) {
      free(r->buf);
      r->buf = NULL;
      r->cap = 0;
    }
  }
}

static void on_close(rx_conn *c) {
  relay *r = c->udata;
  if (cl.is_master && r->slot >= 0 && cl.workers[r->slot] == c->id) cl.workers[r->slot] = 0;
  if (cl.is_worker && cl.master == c->id) {
    cl.master = 0;
    rx_stop(); /* the master is gone: a worker without it winds down */
  }
  free(r->buf);
  free(r);
}

/* No on_shutdown: a relay is plumbing (rx_mark_plumbing), so a stop leaves
 * it open while the worker's clients finish (a draining WebSocket still
 * publishes and receives through it) and closes it last. */
static const rx_proto relay_proto = {.on_data = on_data, .on_close = on_close};

static rx_conn *adopt(int fd, int slot) {
  relay *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->slot = slot;
  rx_conn *c = rx_attach(fd, &relay_proto, r);
  if (!c) {
    free(r);
    return NULL;
  }
  r->c = c;
  rx_mark_plumbing(c); /* not a client: not counted, not waited for */
  rx_resume(c);
  return c;
}

int cl_master_adopt(int fd, int slot) {
  if (slot < 0 || slot >= CL_MAX_WORKERS) return -1;
  rx_lock();
  cl.is_master = 1;
  rx_conn *c = adopt(fd, slot);
  if (c) cl.workers[slot] = c->id;
  rx_unlock();
  return c ? 0 : -1;
}

int cl_worker_adopt(int fd) {
  rx_lock();
  cl.is_master = 0;
  memset(cl.workers, 0, sizeof cl.workers);
  cl.is_worker = 1;
  rx_conn *c = adopt(fd, -1);
  if (c) cl.master = c->id;
  rx_unlock();
  return c ? 0 : -1;
}

int cl_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text) {
  if (!cl_active()) return -1;
  if (SEQ_HEAD + clen + mlen > CL_MAX_FRAME) return -2;
  char head[10];
  put32(head, (uint32_t)(6 + clen + mlen));
  head[4] = K_PUBLISH;
  head[5] = text ? 1 : 0;
  put32(head + 6, (uint32_t)clen);
  rx_lock();
  int r = -2;
  if (cl.is_worker) {
    rx_conn *c = rx_find(cl.master);
    if (c && c->out_bytes <= CL_MAX_QUEUED) {
      struct iovec iov[3] = {{head, 10}, {(void *)channel, clen}, {(void *)msg, mlen}};
      r = rx_writev(c, iov, 3);
    }
  } else if (cl.is_master) {
    r = sequence(channel, clen, msg, mlen, text);
  }
  rx_unlock();
  return r;
}
