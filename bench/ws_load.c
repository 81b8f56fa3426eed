/*
 * bench/ws_load.c - a WebSocket (RFC 6455) load generator: epoll, non-blocking, libc only.
 *
 * Build:  cc -O2 -std=c11 -Wall -Wextra -o build/ws_load bench/ws_load.c -lz
 *
 * -z offers permessage-deflate (RFC 7692: "permessage-deflate; client_max_window_bits", what
 * browsers offer). When the server agrees, every data message this client sends is compressed
 * on its own (a fresh context each time: always allowed, whatever the server asked) with RSV1
 * on its first frame, and RSV1 messages from the server are inflated (one inflater per
 * connection, keeping its window: correct with or without server context takeover). The
 * checks (echo byte for byte, fanout sequence numbers) run on the inflated data. wire_in /
 * wire_out count bytes on the socket over the whole run, handshakes included.
 * In fanout mode, when the server resets its context every message (server_no_context_takeover),
 * subscribers inflate only the first 32 bytes of each message (the timestamp and sequence
 * number the checks need): a full inflate of every delivery would make this one thread, not the
 * server, the bottleneck (and the last message's bytes and prefix are kept: a shared frame
 * reaches the subscribers in a row). Echo mode always inflates and compares everything.
 * -j fills messages with JSON-like text (a list of small objects) instead of random letters,
 * so compression sees what an application would send.
 *
 * Modes (-m):
 *   echo   (default) closed loop: every connection sends one masked message of -s bytes,
 *          waits for the echo, checks it byte for byte, records the round-trip time and
 *          sends the next. Reports round trips/s and latency percentiles.
 *   sub    subscribers: connections only receive and count messages (deliveries/s). With -t,
 *          each message is expected to start with a send timestamp (CLOCK_MONOTONIC ns:
 *          8 bytes little-endian in a binary message, or 16 hex digits in a text message)
 *          and publish-to-receive latency percentiles are reported.
 *   pub    publishers: the connections together send -r messages/s (paced, round robin),
 *          each starting with a timestamp when -t is given; anything received is counted.
 *   probe  one connection, one echo, exit status 0 if the echo came back intact within -C s.
 *          Used as a readiness check by bench/ws.sh.
 *   fanout one publisher and -c subscribers in one process (bench/pubsub.sh). The subscribers
 *          connect to the URL's path, then one more connection, the publisher, to --pub-path.
 *          The publisher sends -s byte messages carrying a send timestamp (CLOCK_MONOTONIC ns)
 *          and a sequence number: text "TTTTTTTTTTTTTTTTSSSSSSSSSSSSSSSS..." (16 hex digits
 *          each) or, with -B, 8 + 8 bytes little-endian. The server is expected to deliver
 *          every message to every subscriber. First a sync phase: a message every 100 ms (once
 *          the previous one reached a subscriber) until one has reached every subscriber (so
 *          all are subscribed). Then the publisher sends as fast as the server takes, keeping
 *          at most --window messages in flight (published, not yet received by every
 *          subscriber), and at most -r messages/s if -r is given. Reports deliveries/s counted at the subscribers, publish-to-receive
 *          latency percentiles over every delivery, publish-to-last-subscriber ("complete")
 *          latency per message, and checks that each subscriber sees the sequence numbers
 *          in order without gaps.
 *
 * Timeline: connect (at most -b handshakes in flight, so the server's accept backlog is not
 * overrun; -C s deadline) -> warm-up (-w s, not counted) -> measured window (-d s) -> close
 * (close frame, wait for the server's close, then close the socket).
 *
 * Latencies go into a histogram of 1 us buckets up to 16.7 s (slower ones are counted in an
 * overflow bucket and reported as the maximum).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_THREADS 64
#define MAX_SERVER_PIDS 64
#define HIST_US (1u << 24)  /* 1 us buckets: 0 .. 16,777,215 us */
#define MAX_MSG (64u << 20) /* largest message accepted from the server */
#define RBUF_INIT 4096
#define HS_MAX 16384 /* largest handshake response */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { M_ECHO, M_SUB, M_PUB, M_PROBE, M_FANOUT };
static const char *mode_name[] = {"echo", "sub", "pub", "probe", "fanout"};

enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING, C_DEAD };

/* ------------------------------------------------------------------ configuration */
static struct {
  int mode;
  int conns;
  size_t size;
  double duration, warmup;
  int threads, depth;
  size_t frag; /* split client data messages into frames of this size (0: don't) */
  bool json, binary, ts, quiet;
  bool deflate; /* -z: offer permessage-deflate */
  bool jsonish; /* -j: JSON-like payload */
  double rate;  /* pub: messages/s over all connections */
  int batch;    /* handshakes in flight (all threads) */
  double connect_timeout, close_timeout, stall_s;
  const char *url;
  char host[300], port[16], path[2048];
  struct sockaddr_storage addr;
  socklen_t addrlen;
  const char *hello; /* text message sent once after the handshake */
  size_t hello_len;
  pid_t spids[MAX_SERVER_PIDS];
  int nspids;
  char pub_path[2048]; /* fanout: the publisher's path */
  int window;          /* fanout: messages in flight at most */
  double fan_stall;    /* fanout: no message completed for this long: give up those in flight */
} cfg = {
    .mode = M_ECHO,
    .conns = 100,
    .size = 32,
    .duration = 10,
    .warmup = 1,
    .threads = 1,
    .depth = 1,
    .batch = 256,
    .connect_timeout = 30,
    .close_timeout = 2,
    .stall_s = 1,
    .pub_path = "/pub",
    .window = 16,
    .fan_stall = 10,
};

/* ------------------------------------------------------------------ shared run state */
static _Atomic uint64_t g_win_start = UINT64_MAX; /* measured window, CLOCK_MONOTONIC ns */
static _Atomic uint64_t g_win_end = UINT64_MAX;
static atomic_int g_stop;              /* 1: stop sending, close everything */
static atomic_int g_workers_connected; /* workers whose connect phase is over */
static atomic_int g_probe_ok;
static atomic_int g_fan_synced; /* fanout: every subscriber got a message */
static volatile sig_atomic_t g_signal;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t) {
  for (;;) {
    if (g_signal) {
      atomic_store(&g_stop, 1);
      return;
    }
    uint64_t n = now_ns();
    if (n >= t) return;
    uint64_t d = t - n;
    if (d > 20000000u) d = 20000000u; /* wake every 20 ms to notice signals */
    struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

/* ------------------------------------------------------------------ PRNG (xorshift64*) */
static uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* ------------------------------------------------------------------ SHA-1 (FIPS 180-4) */
static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = rol32(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol32(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t i = 0;
  for (; i + 64 <= len; i += 64) sha1_block(h, msg + i);
  uint8_t tail[128] = {0};
  size_t rest = len - i;
  memcpy(tail, msg + i, rest);
  tail[rest] = 0x80;
  size_t tl = rest + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  for (int j = 0; j < 8; j++) tail[tl - 1 - j] = (uint8_t)(bits >> (8 * j));
  sha1_block(h, tail);
  if (tl == 128) sha1_block(h, tail + 64);
  for (int j = 0; j < 5; j++) {
    out[4 * j] = (uint8_t)(h[j] >> 24);
    out[4 * j + 1] = (uint8_t)(h[j] >> 16);
    out[4 * j + 2] = (uint8_t)(h[j] >> 8);
    out[4 * j + 3] = (uint8_t)h[j];
  }
}

static size_t base64(const uint8_t *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tbl[v >> 18];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = tbl[(v >> 6) & 63];
    out[o++] = tbl[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = tbl[v >> 18];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = tbl[v >> 18];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = tbl[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = 0;
  return o;
}

/* ------------------------------------------------------------------ histogram */
struct hist {
  uint32_t *b;
  uint64_t n, over, sum_us, max_us, min_us;
};

static void hist_init(struct hist *h) {
  memset(h, 0, sizeof *h);
  h->min_us = UINT64_MAX;
  h->b = calloc(HIST_US, sizeof *h->b); /* lazily mapped: only touched pages cost */
  if (!h->b) {
    perror("calloc");
    exit(1);
  }
}

static inline void hist_add(struct hist *h, uint64_t ns) {
  uint64_t us = ns / 1000;
  h->n++;
  h->sum_us += us;
  if (us > h->max_us) h->max_us = us;
  if (us < h->min_us) h->min_us = us;
  if (us < HIST_US)
    h->b[us]++;
  else
    h->over++;
}

static void hist_merge(struct hist *into, const struct hist *from) {
  if (!from->n) return;
  for (uint32_t i = 0; i < HIST_US; i++)
    if (from->b[i]) into->b[i] += from->b[i];
  into->n += from->n;
  into->over += from->over;
  into->sum_us += from->sum_us;
  if (from->max_us > into->max_us) into->max_us = from->max_us;
  if (from->min_us < into->min_us) into->min_us = from->min_us;
}

/* value (us) at quantiles q[0..k-1] (ascending) */
static void hist_quantiles(const struct hist *h, const double *q, int k, uint64_t *out) {
  uint64_t cum = 0;
  int j = 0;
  for (int i = 0; i < k; i++) out[i] = 0;
  if (!h->n) return;
  for (uint32_t i = 0; i < HIST_US && j < k; i++) {
    cum += h->b[i];
    while (j < k) {
      uint64_t target = (uint64_t)(q[j] * (double)h->n + 0.999999);
      if (target < 1) target = 1;
      if (cum >= target)
        out[j++] = i;
      else
        break;
    }
  }
  for (; j < k; j++) out[j] = h->max_us; /* fell into the overflow bucket */
}

/* ------------------------------------------------------------------ connections */
struct conn {
  int fd, state;
  uint8_t *rbuf;
  size_t rlen, rcap;
  uint8_t *wbuf;
  size_t wlen, woff, wcap;
  uint8_t *frag;
  size_t flen, fcap;
  int fop; /* fragmented message being reassembled */
  bool want_out;
  char key[32], accept[32];
  uint8_t *payload;              /* message sent (echo: expected back) */
  uint64_t *t_sent;              /* echo: send time of each message in flight (ring of -p) */
  uint64_t seq, acked, win_msgs; /* echo: last sequence number sent / echoed back */
  bool is_pub;                   /* fanout: the publisher */
  bool z;                        /* permessage-deflate agreed */
  int zbits;                     /* client_max_window_bits the server gave */
  bool frag_z;                   /* the message being reassembled is compressed */
  bool z_reset;                  /* server_no_context_takeover agreed */
  z_stream *inf;                 /* inflater (lazy), keeps its window */
  uint64_t last_seq;             /* fanout: last sequence number received */
};

/* fanout: per message in flight, how many subscribers have it and when it was sent */
#define FAN_RING (1u << 16)
#define FAN_MASK (FAN_RING - 1)
#define FAN_SYNC_NS 100000000u /* sync phase: at most one message per 100 ms */

struct fanout {
  struct conn *pub;
  uint32_t *count;   /* [seq & FAN_MASK] receipts */
  uint64_t *t_sent;  /* [seq & FAN_MASK] send time */
  uint64_t seq;      /* last sequence number sent */
  uint64_t done;     /* every seq <= done has reached every subscriber (or was given up) */
  uint64_t sync_seq; /* the first message that reached every subscriber (0: syncing) */
  uint64_t pub_start, pub_total, last_sync_send;
  uint64_t progress; /* when `done` last moved */
  int subs_open;
  struct hist complete; /* send -> received by the last subscriber, per message */
  /* counted in the measured window (by send time) */
  uint64_t published;
  /* whole run */
  uint64_t lost, order, stalled, throttled, max_inflight, completed;
};

struct worker {
  int id;
  pthread_t th;
  int epfd;
  struct conn *c;
  int n, next_connect, inflight, open_now, batch;
  atomic_int connected_total;
  bool connect_done, closing;
  uint64_t rng;
  struct hist h;
  /* counted in the measured window */
  uint64_t msgs, bytes, sent;
  /* whole run */
  uint64_t e_connect, e_handshake, e_closed, e_mismatch, e_proto, e_ts, stalled, pub_total, pub_rr;
  uint64_t min_conn_msgs, max_conn_msgs;
  struct fanout f;
  /* permessage-deflate: one compressor per window size, reset per message */
  z_stream *def[16];
  uint8_t *zbuf;
  size_t zcap; /* compressed output */
  uint8_t *ibuf;
  size_t icap; /* inflated input */
  /* whole run */
  uint64_t wire_in, wire_out, rx_msgs;
  uint64_t rx_now; /* when the last read returned: every message in it arrived then */
};

static void conn_fail(struct worker *w, struct conn *c, uint64_t *counter);

static void ep_set(struct worker *w, struct conn *c, uint32_t ev, int op) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(w->epfd, op, c->fd, &e) < 0 && op != EPOLL_CTL_DEL) {
    perror("epoll_ctl");
    exit(1);
  }
}

static void conn_release(struct worker *w, struct conn *c) {
  if (cfg.mode == M_PROBE) atomic_store(&g_stop, 1); /* a probe has one connection: done */
  if (c->fd >= 0) close(c->fd);                      /* close() also drops it from the epoll set */
  c->fd = -1;
  if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) w->inflight--;
  if (c->state == C_OPEN || c->state == C_CLOSING) {
    w->open_now--;
    if (cfg.mode == M_FANOUT && !c->is_pub) w->f.subs_open--;
  }
  c->state = C_DEAD;
  free(c->rbuf);
  c->rbuf = NULL;
  c->rlen = c->rcap = 0;
  free(c->wbuf);
  c->wbuf = NULL;
  c->wlen = c->woff = c->wcap = 0;
  free(c->frag);
  c->frag = NULL;
  c->flen = c->fcap = 0;
  if (c->inf) {
    inflateEnd(c->inf);
    free(c->inf);
    c->inf = NULL;
  }
}

static void conn_fail(struct worker *w, struct conn *c, uint64_t *counter) {
  if (counter) (*counter)++;
  conn_release(w, c);
}

static bool reserve(uint8_t **buf, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t nc = *cap ? *cap : 256;
  while (nc < need) nc *= 2;
  uint8_t *p = realloc(*buf, nc);
  if (!p) return false;
  *buf = p;
  *cap = nc;
  return true;
}

/* write what is queued; false if the connection died */
static bool conn_flush(struct worker *w, struct conn *c) {
  while (c->woff < c->wlen) {
    ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
    if (n > 0) {
      c->woff += (size_t)n;
      w->wire_out += (uint64_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c->want_out) {
        c->want_out = true;
        ep_set(w, c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
      }
      return true;
    }
    conn_fail(w, c, c->state == C_CLOSING ? NULL : &w->e_closed);
    return false;
  }
  c->wlen = c->woff = 0;
  if (c->want_out) {
    c->want_out = false;
    ep_set(w, c, EPOLLIN, EPOLL_CTL_MOD);
  }
  return true;
}

static void mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t k[4]) {
  uint64_t k8;
  uint8_t kk[8] = {k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]};
  memcpy(&k8, kk, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, src + i, 8);
    v ^= k8;
    memcpy(dst + i, &v, 8);
  }
  for (; i < n; i++) dst[i] = src[i] ^ k[i & 3];
}

/* append one masked frame to the output; false if out of memory (connection dropped) */
static bool conn_queue_frame_rsv(struct worker *w, struct conn *c, int op, bool fin, bool rsv1,
                                 const uint8_t *p, size_t len) {
  if (!reserve(&c->wbuf, &c->wcap, c->wlen + len + 14)) {
    conn_fail(w, c, &w->e_closed);
    return false;
  }
  uint8_t *h = c->wbuf + c->wlen;
  size_t hl = 2;
  h[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | op);
  if (len < 126)
    h[1] = (uint8_t)(0x80 | len);
  else if (len < 65536) {
    h[1] = 0x80 | 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    hl = 4;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    hl = 10;
  }
  uint32_t r = (uint32_t)rng_next(&w->rng);
  uint8_t *k = h + hl;
  memcpy(k, &r, 4);
  mask_copy(k + 4, p, len, k);
  c->wlen += hl + 4 + len;
  return true;
}

/* compress a whole message on its own (RFC 7692 7.2.1: sync flush, tail dropped); NULL on error */
static const uint8_t *zcompress(struct worker *w, int bits, const uint8_t *p, size_t len,
                                size_t *out) {
  if (bits < 9) bits = 9; /* zlib has no raw 8-bit window; 9 stays inside 256 (MAX_DIST) */
  z_stream *z = w->def[bits];
  if (!z) {
    z = calloc(1, sizeof *z);
    if (!z || deflateInit2(z, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      free(z);
      return NULL;
    }
    w->def[bits] = z;
  }
  size_t bound = deflateBound(z, (uLong)len) + 16;
  if (!reserve(&w->zbuf, &w->zcap, bound)) return NULL;
  z->next_in = (Bytef *)(uintptr_t)p;
  z->avail_in = (uInt)len;
  z->next_out = w->zbuf;
  z->avail_out = (uInt)bound;
  int r = deflate(z, Z_SYNC_FLUSH);
  size_t n = bound - z->avail_out;
  deflateReset(z);
  if (r != Z_OK || z->avail_in || n < 4) return NULL;
  *out = n - 4;
  return w->zbuf;
}

/* inflate a compressed message into w->ibuf; NULL on error */
static const uint8_t *zinflate(struct worker *w, struct conn *c, const uint8_t *p, size_t len,
                               size_t *out) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  if (cfg.mode == M_FANOUT && c->z_reset && !c->is_pub) {
    /* each message stands alone: its first 32 bytes are enough, from a shared inflater */
    static z_stream head;
    static bool head_ok;
    /* the same bytes inflate to the same prefix: a shared frame reaches every subscriber
         * in a row, so the last input and its output are kept (compared byte for byte) */
    static uint8_t last_in[4096], last_out[32];
    static size_t last_len, last_out_len;
    if (len <= sizeof last_in && len == last_len && memcmp(p, last_in, len) == 0) {
      *out = last_out_len;
      return last_out;
    }
    if (!head_ok && inflateInit2(&head, -15) != Z_OK) return NULL;
    head_ok = true;
    inflateReset(&head);
    head.next_in = (Bytef *)(uintptr_t)p;
    head.avail_in = (uInt)len;
    head.next_out = last_out;
    head.avail_out = 32;
    int r = inflate(&head, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
      last_len = 0;
      return NULL;
    }
    last_out_len = 32 - head.avail_out;
    last_len = len <= sizeof last_in ? len : 0;
    if (last_len) memcpy(last_in, p, len);
    *out = last_out_len;
    return last_out;
  }
  if (!c->inf) {
    c->inf = calloc(1, sizeof *c->inf);
    if (!c->inf || inflateInit2(c->inf, -15) != Z_OK) {
      free(c->inf);
      c->inf = NULL;
      return NULL;
    }
  }
  size_t n = 0;
  for (int pass = 0; pass < 2; pass++) {
    c->inf->next_in = (Bytef *)(uintptr_t)(pass ? tail : p);
    c->inf->avail_in = (uInt)(pass ? 4 : len);
    do {
      if (w->icap - n < 65536 && !reserve(&w->ibuf, &w->icap, n + 65536)) return NULL;
      c->inf->next_out = w->ibuf + n;
      c->inf->avail_out = (uInt)(w->icap - n);
      int r = inflate(c->inf, Z_SYNC_FLUSH);
      n = w->icap - c->inf->avail_out;
      if (r == Z_STREAM_END)
        inflateReset(c->inf);
      else if (r == Z_BUF_ERROR)
        break;
      else if (r != Z_OK)
        return NULL;
      if (n > MAX_MSG) return NULL;
    } while (c->inf->avail_in || c->inf->avail_out == 0);
  }
  *out = n;
  return w->ibuf;
}

/* append a message (compressed when agreed), split into frames of -f bytes for data messages
 * if asked */
static bool conn_queue(struct worker *w, struct conn *c, int op, const uint8_t *p, size_t len) {
  bool rsv1 = false;
  if (op < 8 && c->z) {
    size_t zl;
    const uint8_t *zp = zcompress(w, c->zbits, p, len, &zl);
    if (!zp) {
      conn_fail(w, c, &w->e_proto);
      return false;
    }
    p = zp;
    len = zl;
    rsv1 = true;
  }
  if (op >= 8 || !cfg.frag || len <= cfg.frag)
    return conn_queue_frame_rsv(w, c, op, true, rsv1, p, len);
  for (size_t off = 0; off < len; off += cfg.frag) {
    size_t n = len - off < cfg.frag ? len - off : cfg.frag;
    if (!conn_queue_frame_rsv(w, c, off ? 0 : op, off + n == len, rsv1 && !off, p + off, n))
      return false;
  }
  return true;
}

/* queue a message and try to send everything queued; false if the connection died */
static bool conn_send_frame(struct worker *w, struct conn *c, int op, const uint8_t *p,
                            size_t len) {
  return conn_queue(w, c, op, p, len) && conn_flush(w, c);
}

static const char hexd[] = "0123456789abcdef";

static void put_ts(uint8_t *p, size_t size, uint64_t t) {
  if (cfg.binary) {
    for (int i = 0; i < 8 && (size_t)i < size; i++) p[i] = (uint8_t)(t >> (8 * i));
  } else {
    for (int i = 0; i < 16 && (size_t)i < size; i++) p[i] = (uint8_t)hexd[(t >> (60 - 4 * i)) & 15];
  }
}

/* the first bytes of echo message number s: s in hex, so that every message differs */
static void seq_prefix(uint8_t *p, uint64_t s) {
  size_t k = cfg.size < 8 ? cfg.size : 8;
  for (size_t i = 0; i < k; i++) p[i] = (uint8_t)hexd[(s >> (4 * (k - 1 - i))) & 15];
}

/* queue the next echo message; flush too unless more are coming; false if the connection died */
static bool echo_send_next(struct worker *w, struct conn *c, bool flush) {
  uint64_t s = ++c->seq;
  seq_prefix(c->payload, s);
  c->t_sent[s % (uint64_t)cfg.depth] = now_ns();
  if (!conn_queue(w, c, cfg.binary ? 2 : 1, c->payload, cfg.size)) return false;
  return flush ? conn_flush(w, c) : true;
}

static bool pub_send(struct worker *w, struct conn *c, uint64_t now) {
  if (cfg.ts) put_ts(c->payload, cfg.size, now);
  uint64_t ws = atomic_load_explicit(&g_win_start, memory_order_relaxed);
  uint64_t we = atomic_load_explicit(&g_win_end, memory_order_relaxed);
  if (now >= ws && now < we) w->sent++;
  w->pub_total++;
  return conn_send_frame(w, c, cfg.binary ? 2 : 1, c->payload, cfg.size);
}

static bool parse_ts(int op, const uint8_t *p, size_t len, uint64_t *t) {
  if (op == 2) {
    if (len < 8) return false;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    *t = v;
    return true;
  }
  if (len < 16) return false;
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    int d;
    if (p[i] >= '0' && p[i] <= '9')
      d = p[i] - '0';
    else if (p[i] >= 'a' && p[i] <= 'f')
      d = p[i] - 'a' + 10;
    else if (p[i] >= 'A' && p[i] <= 'F')
      d = p[i] - 'A' + 10;
    else
      return false;
    v = v << 4 | (uint64_t)d;
  }
  *t = v;
  return true;
}

/* ------------------------------------------------------------------ fanout */
static void put_u64(uint8_t *p, uint64_t v) { /* 16 hex digits, or 8 bytes LE with -B */
  if (cfg.binary)
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
  else
    for (int i = 0; i < 16; i++) p[i] = (uint8_t)hexd[(v >> (60 - 4 * i)) & 15];
}

static bool parse_ts(int op, const uint8_t *p, size_t len, uint64_t *t);

static bool fan_parse(int op, const uint8_t *p, size_t len, uint64_t *ts, uint64_t *seq) {
  size_t k = op == 2 ? 8 : 16;
  return len >= 2 * k && parse_ts(op, p, len, ts) && parse_ts(op, p + k, len - k, seq);
}

/* message s has reached every open subscriber */
static void fan_complete(struct worker *w, uint64_t s, uint64_t now, bool in_win) {
  struct fanout *f = &w->f;
  if (!f->sync_seq) { /* from now on every subscriber is subscribed */
    f->sync_seq = s;
    f->pub_start = now;
    atomic_store(&g_fan_synced, 1);
  } else {
    f->completed++;
    uint64_t t = f->t_sent[s & FAN_MASK];
    if (in_win && t <= now) hist_add(&f->complete, now - t);
  }
  f->done = s;
  f->progress = now;
}

static void fan_receive(struct worker *w, struct conn *c, int op, const uint8_t *p, size_t len,
                        uint64_t now, bool in_win) {
  struct fanout *f = &w->f;
  uint64_t ts, s;
  if (c->is_pub) return; /* nothing is expected there; ignored */
  if (!fan_parse(op, p, len, &ts, &s)) {
    w->e_ts++;
    return;
  }
  if (s == 0 || s > f->seq) {
    w->e_mismatch++;
    return;
  } /* never sent */
  if (in_win) {
    w->msgs++;
    w->bytes += len;
    c->win_msgs++;
    if (ts <= now && now - ts < 3600ull * 1000000000u)
      hist_add(&w->h, now - ts);
    else
      w->e_ts++;
  }
  if (f->sync_seq && s > f->sync_seq) { /* in order, no gaps: checked once all are subscribed */
    if (s <= c->last_seq)
      f->order++;
    else if (s != c->last_seq + 1)
      f->lost += s - c->last_seq - 1;
  }
  if (s > c->last_seq) c->last_seq = s;
  if (s > f->done && s + FAN_RING > f->seq) {
    uint32_t n = ++f->count[s & FAN_MASK];
    if ((int)n >= f->subs_open) fan_complete(w, s, now, in_win);
  }
}

static void fan_send(struct worker *w, struct conn *c, uint64_t now) {
  struct fanout *f = &w->f;
  uint64_t s = ++f->seq;
  f->count[s & FAN_MASK] = 0;
  f->t_sent[s & FAN_MASK] = now;
  put_u64(c->payload, now);
  put_u64(c->payload + (cfg.binary ? 8 : 16), s);
  uint64_t ws = atomic_load_explicit(&g_win_start, memory_order_relaxed);
  uint64_t we = atomic_load_explicit(&g_win_end, memory_order_relaxed);
  if (now >= ws && now < we) f->published++;
  f->pub_total++;
  if (s - f->done > f->max_inflight) f->max_inflight = s - f->done;
  conn_queue(w, c, cfg.binary ? 2 : 1, c->payload, cfg.size);
}

/* the publisher: called every loop iteration once connected */
static void fan_pump(struct worker *w, uint64_t now) {
  struct fanout *f = &w->f;
  struct conn *c = f->pub;
  if (!c || c->state != C_OPEN || w->closing || atomic_load_explicit(&g_stop, memory_order_relaxed))
    return;
  if (f->seq > f->done) { /* no message completed for --fan-stall s: give up on those */
    uint64_t since = f->t_sent[(f->done + 1) & FAN_MASK];
    if (f->progress > since) since = f->progress;
    if (now - since > (uint64_t)(cfg.fan_stall * 1e9)) {
      if (f->sync_seq) f->stalled += f->seq - f->done; /* some subscriber stopped getting them */
      f->done = f->seq;
      f->progress = now;
    }
  }
  if (!f->sync_seq) { /* the next one once a subscriber got the last one */
    if (f->seq && (now - f->last_sync_send < FAN_SYNC_NS || !f->count[f->seq & FAN_MASK])) return;
    f->last_sync_send = now;
    fan_send(w, c, now);
    conn_flush(w, c);
    return;
  }
  uint64_t cap =
      cfg.window > 0 && (uint64_t)cfg.window < FAN_RING / 2 ? (uint64_t)cfg.window : FAN_RING / 2;
  uint64_t inflight = f->seq - f->done;
  uint64_t allow = inflight < cap ? cap - inflight : 0;
  if (cfg.rate > 0) {
    uint64_t due = (uint64_t)((double)(now - f->pub_start) * cfg.rate / 1e9);
    uint64_t behind = due > f->pub_total ? due - f->pub_total : 0;
    if (behind > allow) { /* the window is full: those are not sent at all */
      f->throttled += behind - allow;
      f->pub_total += behind - allow;
      behind = allow;
    }
    allow = behind;
  }
  if (!allow) return;
  if (allow > 256) allow = 256;
  for (uint64_t i = 0; i < allow && c->state == C_OPEN; i++) fan_send(w, c, now);
  if (c->state == C_OPEN) conn_flush(w, c);
}

/* a complete data message from the server; false if the connection died */
static bool on_message(struct worker *w, struct conn *c, int op, const uint8_t *p, size_t len) {
  if (c->state != C_OPEN) return true; /* closing: late messages are not counted */
  w->rx_msgs++;
  uint64_t now = w->rx_now; /* one clock read per read(), not per message (fan-out: millions/s) */
  uint64_t ws = atomic_load_explicit(&g_win_start, memory_order_relaxed);
  uint64_t we = atomic_load_explicit(&g_win_end, memory_order_relaxed);
  bool in_win = now >= ws && now < we;
  switch (cfg.mode) {
  case M_ECHO:
  case M_PROBE: {
    if (c->seq == c->acked) { /* unsolicited */
      w->e_mismatch++;
      if (cfg.mode == M_PROBE) atomic_store(&g_stop, 1);
      return true;
    }
    uint64_t s = ++c->acked; /* echoes come back in order */
    uint8_t pre[8];
    size_t k = cfg.size < 8 ? cfg.size : 8;
    seq_prefix(pre, s);
    if (op != (cfg.binary ? 2 : 1) || len != cfg.size || memcmp(p, pre, k) != 0 ||
        memcmp(p + k, c->payload + k, len - k) != 0) {
      w->e_mismatch++;
      if (cfg.mode == M_PROBE) {
        atomic_store(&g_stop, 1);
        return true;
      }
    }
    if (in_win) {
      w->msgs++;
      w->bytes += len;
      c->win_msgs++;
      hist_add(&w->h, now - c->t_sent[s % (uint64_t)cfg.depth]);
    }
    if (cfg.mode == M_PROBE) {
      atomic_store(&g_probe_ok, 1);
      atomic_store(&g_stop, 1);
      return true;
    }
    if (!atomic_load_explicit(&g_stop, memory_order_relaxed) && now < we)
      return echo_send_next(w, c, true);
    return true;
  }
  case M_FANOUT: fan_receive(w, c, op, p, len, now, in_win); return true;
  case M_SUB:
  case M_PUB:
    if (in_win) {
      w->msgs++;
      w->bytes += len;
      c->win_msgs++;
      if (cfg.ts && cfg.mode == M_SUB) {
        uint64_t t;
        if (parse_ts(op, p, len, &t) && t <= now && now - t < 3600ull * 1000000000u)
          hist_add(&w->h, now - t);
        else
          w->e_ts++;
      }
    }
    return true;
  }
  return true;
}

static void conn_opened(struct worker *w, struct conn *c) {
  c->state = C_OPEN;
  w->inflight--;
  w->open_now++;
  atomic_fetch_add(&w->connected_total, 1);
  if (cfg.mode == M_FANOUT) {
    if (c->is_pub) return;
    w->f.subs_open++;
  }
  if (cfg.hello && !conn_send_frame(w, c, 1, (const uint8_t *)cfg.hello, cfg.hello_len)) return;
  if ((cfg.mode == M_ECHO || cfg.mode == M_PROBE) && !atomic_load(&g_stop)) {
    for (int i = 0; i < cfg.depth; i++) /* -p > 1: all in one write, several frames per read */
      if (!echo_send_next(w, c, false)) return;
    conn_flush(w, c);
  }
}

/* parse the handshake response at the start of rbuf; returns bytes consumed, 0 if incomplete, -1 bad */
static long parse_handshake(struct conn *c) {
  const uint8_t *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
  if (!end) return c->rlen > HS_MAX ? -1 : 0;
  size_t hl = (size_t)(end - c->rbuf) + 4;
  const char *s = (const char *)c->rbuf, *e = (const char *)end;
  if (hl < 12 || memcmp(s, "HTTP/1.1 101", 12) != 0) return -1;
  bool got_accept = false, got_upgrade = false;
  const char *line = memchr(s, '\n', (size_t)(e - s));
  while (line && line < e) {
    line++;
    const char *eol = memchr(line, '\r', (size_t)(e - line) + 1);
    if (!eol) break;
    const char *colon = memchr(line, ':', (size_t)(eol - line));
    if (colon) {
      size_t nl = (size_t)(colon - line);
      const char *v = colon + 1;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      const char *ve = eol;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      size_t vl = (size_t)(ve - v);
      if (nl == 20 && strncasecmp(line, "sec-websocket-accept", 20) == 0) {
        if (vl != strlen(c->accept) || memcmp(v, c->accept, vl) != 0) return -1;
        got_accept = true;
      } else if (nl == 24 && strncasecmp(line, "sec-websocket-extensions", 24) == 0) {
        if (!cfg.deflate || vl < 18 || strncasecmp(v, "permessage-deflate", 18) != 0) return -1;
        c->z = true;
        c->zbits = 15;
        c->z_reset = memmem(v, vl, "server_no_context_takeover", 26) != NULL;
        const char *b = memmem(v, vl, "client_max_window_bits=", 23);
        if (b) c->zbits = atoi(b + 23);
        if (c->zbits < 8 || c->zbits > 15) return -1;
      } else if (nl == 7 && strncasecmp(line, "upgrade", 7) == 0) {
        got_upgrade = vl == 9 && strncasecmp(v, "websocket", 9) == 0;
      }
    }
    line = memchr(eol, '\n', (size_t)(e - eol) + 1);
  }
  if (!got_accept || !got_upgrade) return -1;
  return (long)hl;
}

/* handle every complete frame in rbuf; false if the connection died */
static bool parse_frames(struct worker *w, struct conn *c) {
  size_t pos = 0;
  bool alive = true;
  while (alive && c->rlen - pos >= 2) {
    uint8_t *f = c->rbuf + pos;
    size_t avail = c->rlen - pos;
    bool fin = f[0] & 0x80, masked = f[1] & 0x80;
    int op = f[0] & 0x0F;
    uint64_t len = f[1] & 0x7F;
    size_t hl = 2;
    /* RSV1 only with permessage-deflate, on the first frame of a data message */
    bool rsv1 = f[0] & 0x40;
    if ((f[0] & 0x30) || (rsv1 && (!c->z || (op != 1 && op != 2)))) {
      conn_fail(w, c, &w->e_proto);
      return false;
    }
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t)f[2] << 8 | f[3];
      hl = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | f[2 + i];
      hl = 10;
    }
    if (masked) hl += 4; /* servers must not mask; tolerate, count */
    if (len > MAX_MSG) {
      conn_fail(w, c, &w->e_proto);
      return false;
    }
    if (avail < hl + len) {
      if (!reserve(&c->rbuf, &c->rcap, hl + len)) { /* the frame moves to the front below */
        conn_fail(w, c, &w->e_proto);
        return false;
      }
      break;
    }
    uint8_t *p = f + hl;
    if (masked) {
      w->e_proto++;
      mask_copy(p, p, len, f + hl - 4);
    }
    pos += hl + len;
    if (op >= 8) { /* control frame */
      if (!fin || len > 125) {
        conn_fail(w, c, &w->e_proto);
        return false;
      }
      if (op == 8) { /* close */
        if (c->state != C_CLOSING) {
          w->e_closed++;
          uint8_t code[2] = {0x03, 0xE8};
          conn_send_frame(w, c, 8, code, 2);
        }
        conn_release(w, c);
        return false;
      } else if (op == 9) { /* ping -> pong */
        uint8_t tmp[125];
        memcpy(tmp, p, len);
        alive = conn_send_frame(w, c, 10, tmp, len);
      } else if (op != 10) {
        conn_fail(w, c, &w->e_proto);
        return false;
      }
      continue;
    }
    if (op == 0) { /* continuation */
      if (!c->fop) {
        conn_fail(w, c, &w->e_proto);
        return false;
      }
      if (c->flen + len > MAX_MSG || !reserve(&c->frag, &c->fcap, c->flen + len)) {
        conn_fail(w, c, &w->e_proto);
        return false;
      }
      memcpy(c->frag + c->flen, p, len);
      c->flen += len;
      if (fin) {
        int fop = c->fop;
        c->fop = 0;
        const uint8_t *mp = c->frag;
        size_t ml = c->flen;
        if (c->frag_z && !(mp = zinflate(w, c, c->frag, c->flen, &ml))) {
          conn_fail(w, c, &w->e_proto);
          return false;
        }
        alive = on_message(w, c, fop, mp, ml);
        if (alive) c->flen = 0;
      }
    } else if (op == 1 || op == 2) {
      if (c->fop) {
        conn_fail(w, c, &w->e_proto);
        return false;
      }
      if (fin) {
        const uint8_t *mp = p;
        size_t ml = len;
        if (rsv1 && !(mp = zinflate(w, c, p, len, &ml))) {
          conn_fail(w, c, &w->e_proto);
          return false;
        }
        alive = on_message(w, c, op, mp, ml);
      } else {
        if (!reserve(&c->frag, &c->fcap, len ? len : 1)) {
          conn_fail(w, c, &w->e_proto);
          return false;
        }
        memcpy(c->frag, p, len);
        c->flen = len;
        c->fop = op;
        c->frag_z = rsv1;
      }
    } else {
      conn_fail(w, c, &w->e_proto);
      return false;
    }
    if (alive && c->state == C_DEAD) alive = false;
  }
  if (!alive || c->state == C_DEAD) return false;
  if (pos) {
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
  }
  return true;
}

static void on_readable(struct worker *w, struct conn *c) {
  for (int round = 0; round < 4; round++) {
    if (c->rcap - c->rlen < 1024 && !reserve(&c->rbuf, &c->rcap, c->rcap * 2)) {
      conn_fail(w, c, &w->e_proto);
      return;
    }
    size_t room = c->rcap - c->rlen;
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, room, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      conn_fail(w, c,
                c->state == C_CLOSING     ? NULL
                : c->state == C_HANDSHAKE ? &w->e_handshake
                                          : &w->e_closed);
      return;
    }
    if (n == 0) { /* EOF */
      conn_fail(w, c,
                c->state == C_CLOSING     ? NULL
                : c->state == C_HANDSHAKE ? &w->e_handshake
                                          : &w->e_closed);
      return;
    }
    c->rlen += (size_t)n;
    w->wire_in += (uint64_t)n;
    w->rx_now = now_ns();
    if (c->state == C_HANDSHAKE) {
      long hl = parse_handshake(c);
      if (hl < 0) {
        conn_fail(w, c, &w->e_handshake);
        return;
      }
      if (hl == 0) continue;
      memmove(c->rbuf, c->rbuf + hl, c->rlen - (size_t)hl);
      c->rlen -= (size_t)hl;
      conn_opened(w, c);
      if (c->state == C_DEAD) return;
    }
    if (!parse_frames(w, c)) return;
    if ((size_t)n < room) return; /* drained the socket */
  }
}

static void conn_start(struct worker *w, struct conn *c) {
  c->fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    c->state = C_DEAD;
    w->e_connect++;
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = C_CONNECTING;
  w->inflight++;
  if (connect(c->fd, (struct sockaddr *)&cfg.addr, cfg.addrlen) < 0 && errno != EINPROGRESS) {
    conn_fail(w, c, &w->e_connect);
    return;
  }
  ep_set(w, c, EPOLLOUT, EPOLL_CTL_ADD);
  c->want_out = true;
}

static void on_connected(struct worker *w, struct conn *c) {
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
    conn_fail(w, c, &w->e_connect);
    return;
  }
  uint8_t raw[16], dig[20];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = rng_next(&w->rng);
    memcpy(raw + i, &r, 8);
  }
  base64(raw, 16, c->key);
  char cat[80];
  int cl = snprintf(cat, sizeof cat, "%s%s", c->key, WS_GUID);
  sha1((const uint8_t *)cat, (size_t)cl, dig);
  base64(dig, 20, c->accept);
  c->rcap = RBUF_INIT;
  c->rbuf = malloc(c->rcap);
  if (!c->rbuf) {
    conn_fail(w, c, &w->e_connect);
    return;
  }
  char req[4096];
  int rl = snprintf(
      req, sizeof req,
      "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
      c->is_pub ? cfg.pub_path : cfg.path, cfg.host, cfg.port, c->key,
      cfg.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                  : "");
  if (rl <= 0 || (size_t)rl >= sizeof req || !reserve(&c->wbuf, &c->wcap, (size_t)rl)) {
    conn_fail(w, c, &w->e_connect);
    return;
  }
  memcpy(c->wbuf, req, (size_t)rl);
  c->wlen = (size_t)rl;
  c->woff = 0;
  c->state = C_HANDSHAKE;
  c->want_out = false;
  ep_set(w, c, EPOLLIN, EPOLL_CTL_MOD);
  conn_flush(w, c);
}

static void begin_close(struct worker *w) {
  uint64_t now = now_ns();
  w->closing = true;
  for (int i = 0; i < w->n; i++) {
    struct conn *c = &w->c[i];
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
      conn_release(w, c);
      continue;
    }
    if (c->state != C_OPEN) continue;
    if (cfg.mode == M_ECHO && c->seq != c->acked &&
        now - c->t_sent[(c->acked + 1) % (uint64_t)cfg.depth] > (uint64_t)(cfg.stall_s * 1e9))
      w->stalled++;
    uint8_t code[2] = {0x03, 0xE8}; /* 1000 normal closure */
    c->state = C_CLOSING;
    conn_send_frame(w, c, 8, code, 2);
  }
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct epoll_event ev[512];
  uint64_t t0 = now_ns();
  uint64_t connect_deadline = t0 + (uint64_t)(cfg.connect_timeout * 1e9);
  uint64_t close_deadline = 0;
  uint64_t pub_start = 0;
  double pub_rate = cfg.rate / cfg.threads;
  for (;;) {
    uint64_t now = now_ns();
    if (!w->connect_done) {
      while (w->next_connect < w->n && w->inflight < w->batch && !atomic_load(&g_stop))
        conn_start(w, &w->c[w->next_connect++]);
      if (now > connect_deadline || atomic_load(&g_stop)) {
        for (int i = 0; i < w->n; i++)
          if (w->c[i].state == C_CONNECTING || w->c[i].state == C_HANDSHAKE)
            conn_fail(w, &w->c[i], &w->e_connect);
        w->e_connect += (uint64_t)(w->n - w->next_connect);
        w->next_connect = w->n;
      }
      if (w->next_connect == w->n && w->inflight == 0) {
        w->connect_done = true;
        atomic_fetch_add(&g_workers_connected, 1);
        pub_start = now_ns();
      }
    }
    if (!w->closing && atomic_load(&g_stop)) {
      begin_close(w);
      close_deadline = now_ns() + (uint64_t)(cfg.close_timeout * 1e9);
    }
    if (w->closing && (w->open_now == 0 || now_ns() > close_deadline)) break;
    int timeout = w->connect_done ? 10 : 2;
    if (cfg.mode == M_FANOUT && w->connect_done && !w->closing) {
      fan_pump(w, now_ns());
      timeout = 1;
    }
    if (cfg.mode == M_PUB && w->connect_done && !w->closing && w->open_now > 0 && pub_rate > 0) {
      now = now_ns();
      uint64_t due = (uint64_t)((double)(now - pub_start) * pub_rate / 1e9);
      uint64_t burst = 0;
      while (w->pub_total < due && burst < 10000) { /* round robin over open conns */
        struct conn *c = NULL;
        for (int k = 0; k < w->n && !c; k++) {
          struct conn *d = &w->c[w->pub_rr++ % (uint64_t)w->n];
          if (d->state == C_OPEN && d->wlen == 0) c = d;
        }
        if (!c) {
          w->pub_total = due;
          break;
        } /* all blocked: drop (not counted as sent) */
        pub_send(w, c, now);
        burst++;
      }
      timeout = 1;
    }
    int ne = epoll_wait(w->epfd, ev, 512, timeout);
    if (ne < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      exit(1);
    }
    for (int i = 0; i < ne; i++) {
      struct conn *c = ev[i].data.ptr;
      if (c->state == C_DEAD) continue;
      if (c->state == C_CONNECTING) {
        on_connected(w, c);
        continue;
      }
      if ((ev[i].events & EPOLLOUT) && c->wlen && !conn_flush(w, c)) continue;
      if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(w, c);
    }
  }
  for (int i = 0; i < w->n; i++)
    if (w->c[i].state != C_DEAD && w->c[i].state != C_IDLE) conn_release(w, &w->c[i]);
  w->min_conn_msgs = UINT64_MAX;
  for (int i = 0; i < w->n; i++) {
    if (w->c[i].is_pub) continue;
    if (w->c[i].win_msgs < w->min_conn_msgs) w->min_conn_msgs = w->c[i].win_msgs;
    if (w->c[i].win_msgs > w->max_conn_msgs) w->max_conn_msgs = w->c[i].win_msgs;
  }
  return NULL;
}

/* ------------------------------------------------------------------ CPU accounting */
static double rusage_s(double *sys) { /* user+sys seconds of this process; sys part in *sys */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double st = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  if (sys) *sys = st;
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + st;
}

static long server_ticks(void) { /* utime+stime of the --server-pid processes, -1 if unreadable */
  long total = 0;
  for (int i = 0; i < cfg.nspids; i++) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)cfg.spids[i]);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p += 2; /* field 3 (state) */
    unsigned long ut = 0, st = 0;
    int field = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
      if (field == 14) ut = strtoul(tok, NULL, 10);
      if (field == 15) {
        st = strtoul(tok, NULL, 10);
        break;
      }
    }
    total += (long)(ut + st);
  }
  return total;
}

/* ------------------------------------------------------------------ setup */
static void usage(FILE *f) {
  fprintf(
      f,
      "usage: ws_load [options] ws://HOST:PORT/PATH\n"
      "  -m MODE          echo (default) | sub | pub | probe | fanout\n"
      "  -c N             connections (default 100)\n"
      "  -s BYTES         message size for echo/pub/probe/fanout (default 32; fanout at least 32, "
      "16 with -B)\n"
      "  -d SECONDS       measured window (default 10)\n"
      "  -w SECONDS       warm-up after all connections are up, not counted (default 1)\n"
      "  -T N             threads, connections split between them (default 1)\n"
      "  -p N             echo: messages in flight per connection (default 1; N > 1 sends N frames "
      "in\n"
      "                   one write at the start, then one per echo)\n"
      "  -f BYTES         send each message as frames of at most BYTES (continuation frames; "
      "default: one)\n"
      "  -B               binary messages (default: text, printable ASCII)\n"
      "  -z               offer permessage-deflate; compress what is sent, inflate what comes\n"
      "  -j               JSON-like message text instead of random letters\n"
      "  -t               timestamps: pub writes CLOCK_MONOTONIC ns at the start of each message\n"
      "                   (8 bytes LE if binary, 16 hex digits if text); sub reports latency from "
      "them\n"
      "  -r RATE          pub: messages/s over all connections (default 1000)\n"
      "  -b N             handshakes in flight at once, all threads (default 256)\n"
      "  -C SECONDS       connect phase deadline (default 30; probe: the whole probe)\n"
      "  --hello TEXT     text message sent once right after each handshake (e.g. a subscribe)\n"
      "  --server-pid P[,P...]  report these processes' CPU (utime+stime) per message in the "
      "window\n"
      "  --stall SECONDS  echo: an echo outstanding this long at the end counts as stalled "
      "(default 1)\n"
      "  --pub-path PATH  fanout: the publisher connects to this path (default /pub); -c "
      "subscribers\n"
      "                   connect to the URL's path\n"
      "  --window N       fanout: messages in flight at most (published, not yet received by "
      "every\n"
      "                   subscriber; default 16); -r additionally caps messages/s (default: "
      "none)\n"
      "  --fan-stall S    fanout: when no message has reached every subscriber for S seconds "
      "while\n"
      "                   some are in flight, those are given up and counted as stalled (default "
      "10)\n"
      "  --json           one JSON object on stdout instead of text\n"
      "  -q               probe: print nothing\n");
}

static void parse_url(const char *u) {
  if (strncmp(u, "ws://", 5) != 0) {
    fprintf(stderr, "ws_load: only ws:// URLs are supported\n");
    exit(2);
  }
  const char *h = u + 5, *slash = strchr(h, '/');
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  char hp[300];
  if (hl == 0 || hl >= sizeof hp) {
    fprintf(stderr, "ws_load: bad URL\n");
    exit(2);
  }
  memcpy(hp, h, hl);
  hp[hl] = 0;
  snprintf(cfg.path, sizeof cfg.path, "%s", slash ? slash : "/");
  char *colon = strrchr(hp, ':');
  if (hp[0] == '[') { /* [v6]:port */
    char *rb = strchr(hp, ']');
    if (!rb) {
      fprintf(stderr, "ws_load: bad URL\n");
      exit(2);
    }
    *rb = 0;
    snprintf(cfg.host, sizeof cfg.host, "%s", hp + 1);
    snprintf(cfg.port, sizeof cfg.port, "%s", rb[1] == ':' ? rb + 2 : "80");
  } else if (colon) {
    *colon = 0;
    snprintf(cfg.host, sizeof cfg.host, "%s", hp);
    snprintf(cfg.port, sizeof cfg.port, "%s", colon + 1);
  } else {
    snprintf(cfg.host, sizeof cfg.host, "%s", hp);
    snprintf(cfg.port, sizeof cfg.port, "80");
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int rc = getaddrinfo(cfg.host, cfg.port, &hints, &ai);
  if (rc) {
    fprintf(stderr, "ws_load: %s: %s\n", cfg.host, gai_strerror(rc));
    exit(2);
  }
  memcpy(&cfg.addr, ai->ai_addr, ai->ai_addrlen);
  cfg.addrlen = ai->ai_addrlen;
  freeaddrinfo(ai);
}

static void raise_nofile(int need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
  if (rl.rlim_cur >= (rlim_t)need) return;
  if (rl.rlim_max < (rlim_t)need) {
    struct rlimit r2 = {(rlim_t)need, (rlim_t)need};
    if (setrlimit(RLIMIT_NOFILE, &r2) == 0) return; /* root may raise the hard limit */
  }
  rl.rlim_cur = rl.rlim_max < (rlim_t)need ? rl.rlim_max : (rlim_t)need;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)need)
    fprintf(stderr, "ws_load: warning: RLIMIT_NOFILE is %lu, %d connections need about %d\n",
            (unsigned long)rl.rlim_cur, cfg.conns, need);
}

static void on_signal(int sig) {
  (void)sig;
  g_signal = 1;
}

static double num_arg(const char *s, const char *what) {
  char *e;
  double v = strtod(s, &e);
  if (e == s || *e || v < 0) {
    fprintf(stderr, "ws_load: bad %s '%s'\n", what, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {{"json", no_argument, 0, 'J'},
                                     {"hello", required_argument, 0, 'H'},
                                     {"server-pid", required_argument, 0, 'P'},
                                     {"stall", required_argument, 0, 'S'},
                                     {"pub-path", required_argument, 0, 'U'},
                                     {"window", required_argument, 0, 'W'},
                                     {"fan-stall", required_argument, 0, 'X'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  bool rate_set = false, ctimeout_set = false;
  int o;
  while ((o = getopt_long(argc, argv, "m:c:s:d:w:T:p:f:Btr:b:C:qhzj", lo, NULL)) != -1) {
    switch (o) {
    case 'm':
      if (!strcmp(optarg, "echo"))
        cfg.mode = M_ECHO;
      else if (!strcmp(optarg, "sub"))
        cfg.mode = M_SUB;
      else if (!strcmp(optarg, "pub"))
        cfg.mode = M_PUB;
      else if (!strcmp(optarg, "probe"))
        cfg.mode = M_PROBE;
      else if (!strcmp(optarg, "fanout"))
        cfg.mode = M_FANOUT;
      else {
        fprintf(stderr, "ws_load: unknown mode '%s'\n", optarg);
        return 2;
      }
      break;
    case 'c': cfg.conns = (int)num_arg(optarg, "-c"); break;
    case 's': cfg.size = (size_t)num_arg(optarg, "-s"); break;
    case 'd': cfg.duration = num_arg(optarg, "-d"); break;
    case 'w': cfg.warmup = num_arg(optarg, "-w"); break;
    case 'T': cfg.threads = (int)num_arg(optarg, "-T"); break;
    case 'p': cfg.depth = (int)num_arg(optarg, "-p"); break;
    case 'f': cfg.frag = (size_t)num_arg(optarg, "-f"); break;
    case 'B': cfg.binary = true; break;
    case 'z': cfg.deflate = true; break;
    case 'j': cfg.jsonish = true; break;
    case 't': cfg.ts = true; break;
    case 'r':
      cfg.rate = num_arg(optarg, "-r");
      rate_set = true;
      break;
    case 'b': cfg.batch = (int)num_arg(optarg, "-b"); break;
    case 'C':
      cfg.connect_timeout = num_arg(optarg, "-C");
      ctimeout_set = true;
      break;
    case 'q': cfg.quiet = true; break;
    case 'J': cfg.json = true; break;
    case 'H':
      cfg.hello = optarg;
      cfg.hello_len = strlen(optarg);
      break;
    case 'S': cfg.stall_s = num_arg(optarg, "--stall"); break;
    case 'U':
      if (optarg[0] != '/' || strlen(optarg) >= sizeof cfg.pub_path) {
        fprintf(stderr, "ws_load: bad --pub-path\n");
        return 2;
      }
      snprintf(cfg.pub_path, sizeof cfg.pub_path, "%s", optarg);
      break;
    case 'W': cfg.window = (int)num_arg(optarg, "--window"); break;
    case 'X': cfg.fan_stall = num_arg(optarg, "--fan-stall"); break;
    case 'P': {
      char *save = NULL, *s = strdup(optarg);
      for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (cfg.nspids < MAX_SERVER_PIDS) cfg.spids[cfg.nspids++] = (pid_t)atoi(t);
      free(s);
      break;
    }
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc - 1) {
    usage(stderr);
    return 2;
  }
  cfg.url = argv[optind];
  if (cfg.mode == M_PROBE) {
    cfg.conns = 1;
    cfg.threads = 1;
    cfg.warmup = 0;
    if (!ctimeout_set) cfg.connect_timeout = 2;
  }
  if (cfg.mode == M_PUB && !rate_set) cfg.rate = 1000;
  if (cfg.mode == M_FANOUT) {
    cfg.threads = 1; /* the receipt counts are not shared between threads */
    size_t need = cfg.binary ? 16 : 32;
    if (cfg.size < need) cfg.size = need;
    if (cfg.window < 0 || cfg.window > (int)(FAN_RING / 2)) {
      fprintf(stderr, "ws_load: --window must be 0..%u\n", FAN_RING / 2);
      return 2;
    }
    if (!rate_set) cfg.rate = 0;
    if (cfg.window == 0 && cfg.rate == 0) {
      fprintf(stderr, "ws_load: fanout needs --window or -r\n");
      return 2;
    }
  }
  if (cfg.conns < 1 || cfg.conns > 1000000) {
    fprintf(stderr, "ws_load: -c must be 1..1000000\n");
    return 2;
  }
  if (cfg.threads < 1 || cfg.threads > MAX_THREADS) {
    fprintf(stderr, "ws_load: -T must be 1..%d\n", MAX_THREADS);
    return 2;
  }
  if (cfg.threads > cfg.conns) cfg.threads = cfg.conns;
  if (cfg.size > MAX_MSG) {
    fprintf(stderr, "ws_load: -s at most %u\n", MAX_MSG);
    return 2;
  }
  if (cfg.ts && cfg.size < (cfg.binary ? 8u : 16u)) cfg.size = cfg.binary ? 8 : 16;
  if (cfg.batch < 1) cfg.batch = 1;
  if (cfg.depth < 1 || cfg.depth > 65536) {
    fprintf(stderr, "ws_load: -p must be 1..65536\n");
    return 2;
  }
  if (cfg.duration > 86400 || cfg.warmup > 86400) {
    fprintf(stderr, "ws_load: -d/-w too large\n");
    return 2;
  }
  parse_url(cfg.url);
  raise_nofile(cfg.conns + 64 + (cfg.mode == M_FANOUT));

  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  static struct worker W[MAX_THREADS];
  uint64_t seed = now_ns() ^ ((uint64_t)getpid() << 32);
  int per = cfg.conns / cfg.threads, extra = cfg.conns % cfg.threads, first = 0;
  int nconns = cfg.conns + (cfg.mode == M_FANOUT); /* fanout: + the publisher, last */
  struct conn *all = calloc((size_t)nconns, sizeof *all);
  if (!all) {
    perror("calloc");
    return 1;
  }
  for (int t = 0; t < cfg.threads; t++) {
    struct worker *w = &W[t];
    w->id = t;
    w->n = per + (t < extra) + (cfg.mode == M_FANOUT);
    w->c = all + first;
    first += w->n;
    w->batch = cfg.batch / cfg.threads > 0 ? cfg.batch / cfg.threads : 1;
    w->rng = seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1));
    if (!w->rng) w->rng = 1;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0) {
      perror("epoll_create1");
      return 1;
    }
    hist_init(&w->h);
    for (int i = 0; i < w->n; i++) {
      struct conn *c = &w->c[i];
      c->fd = -1;
      c->payload = malloc(cfg.size ? cfg.size : 1);
      c->t_sent = calloc((size_t)cfg.depth, sizeof *c->t_sent);
      if (!c->payload || !c->t_sent) {
        perror("malloc");
        return 1;
      }
      for (size_t k = 0; k < cfg.size; k++) c->payload[k] = (uint8_t)('a' + rng_next(&w->rng) % 26);
      if (cfg.jsonish) { /* [{"id":N,"name":"item-N","price":P,"tags":["a","b"]},...] */
        size_t k = 0;
        char item[96];
        while (k < cfg.size) {
          unsigned id = (unsigned)(rng_next(&w->rng) % 100000);
          int il = snprintf(
              item, sizeof item,
              "%s{\"id\":%u,\"name\":\"item-%u\",\"price\":%u.%02u,\"tags\":[\"new\",\"sale\"]}",
              k ? "," : "[", id, id % 977, id % 500, id % 100);
          for (int q = 0; q < il && k < cfg.size; q++) c->payload[k++] = (uint8_t)item[q];
        }
        if (cfg.size) c->payload[cfg.size - 1] = ']';
      }
    }
    if (cfg.mode == M_FANOUT) {
      w->f.pub = &w->c[w->n - 1];
      w->f.pub->is_pub = true;
      w->f.count = calloc(FAN_RING, sizeof *w->f.count);
      w->f.t_sent = calloc(FAN_RING, sizeof *w->f.t_sent);
      if (!w->f.count || !w->f.t_sent) {
        perror("calloc");
        return 1;
      }
      hist_init(&w->f.complete);
    }
  }
  uint64_t t_begin = now_ns();
  for (int t = 0; t < cfg.threads; t++)
    if (pthread_create(&W[t].th, NULL, worker_main, &W[t])) {
      perror("pthread_create");
      return 1;
    }

  /* connect phase: workers bound it by -C themselves */
  while (atomic_load(&g_workers_connected) < cfg.threads) {
    sleep_until(now_ns() + 2000000);
    if (g_signal) atomic_store(&g_stop, 1);
  }
  uint64_t t_connected = now_ns();
  int connected = 0;
  for (int t = 0; t < cfg.threads; t++) connected += atomic_load(&W[t].connected_total);
  bool pub_connected = false;
  if (cfg.mode == M_FANOUT) {
    pub_connected = W[0].f.pub->state == C_OPEN;
    if (pub_connected) connected--; /* count subscribers only */
    /* sync: wait (within -C) until one message has reached every subscriber */
    uint64_t deadline = t_begin + (uint64_t)(cfg.connect_timeout * 1e9);
    while (pub_connected && connected > 0 && !atomic_load(&g_fan_synced) && !atomic_load(&g_stop) &&
           now_ns() < deadline)
      sleep_until(now_ns() + 2000000);
    if (!atomic_load(&g_fan_synced)) {
      fprintf(stderr, "ws_load: fanout: %s\n",
              !pub_connected ? "the publisher could not connect"
                             : "no message reached every subscriber within -C seconds");
      connected = 0;
    }
    t_connected = now_ns();
  }

  if (cfg.mode == M_PROBE) {
    uint64_t deadline = t_begin + (uint64_t)(cfg.connect_timeout * 1e9);
    while (!atomic_load(&g_stop) && now_ns() < deadline) sleep_until(now_ns() + 1000000);
    atomic_store(&g_stop, 1);
    for (int t = 0; t < cfg.threads; t++) pthread_join(W[t].th, NULL);
    int ok = atomic_load(&g_probe_ok);
    if (!cfg.quiet) {
      if (cfg.json)
        printf("{\"mode\":\"probe\",\"ok\":%s}\n", ok ? "true" : "false");
      else
        printf("probe %s: %s\n", cfg.url, ok ? "ok" : "FAILED");
    }
    return ok ? 0 : 1;
  }

  double cpu0 = 0, cpu1 = 0, sys0 = 0, sys1 = 0;
  long st0 = -1, st1 = -1;
  uint64_t ws = 0, we = 0;
  if (connected > 0 && !atomic_load(&g_stop)) {
    ws = now_ns() + (uint64_t)(cfg.warmup * 1e9);
    we = ws + (uint64_t)(cfg.duration * 1e9);
    atomic_store(&g_win_start, ws);
    atomic_store(&g_win_end, we);
    sleep_until(ws);
    cpu0 = rusage_s(&sys0);
    st0 = server_ticks();
    sleep_until(we);
    cpu1 = rusage_s(&sys1);
    st1 = server_ticks();
    if (now_ns() < we) we = now_ns(); /* interrupted */
  }
  atomic_store(&g_stop, 1);
  for (int t = 0; t < cfg.threads; t++) pthread_join(W[t].th, NULL);
  double cpu_total = rusage_s(NULL);

  /* merge */
  struct worker S = {0};
  hist_init(&S.h);
  S.min_conn_msgs = UINT64_MAX;
  for (int t = 0; t < cfg.threads; t++) {
    struct worker *w = &W[t];
    hist_merge(&S.h, &w->h);
    S.msgs += w->msgs;
    S.bytes += w->bytes;
    S.sent += w->sent;
    S.e_connect += w->e_connect;
    S.e_handshake += w->e_handshake;
    S.e_closed += w->e_closed;
    S.e_mismatch += w->e_mismatch;
    S.e_proto += w->e_proto;
    S.e_ts += w->e_ts;
    S.stalled += w->stalled;
    S.wire_in += w->wire_in;
    S.wire_out += w->wire_out;
    S.rx_msgs += w->rx_msgs;
    if (w->min_conn_msgs < S.min_conn_msgs) S.min_conn_msgs = w->min_conn_msgs;
    if (w->max_conn_msgs > S.max_conn_msgs) S.max_conn_msgs = w->max_conn_msgs;
  }
  double win = we > ws ? (double)(we - ws) / 1e9 : 0;
  double rate = win > 0 ? (double)S.msgs / win : 0;
  double cpu_pct = win > 0 ? (cpu1 - cpu0) / win * 100 : 0;
  double sys_pct = win > 0 ? (sys1 - sys0) / win * 100 : 0;
  double srv_us = -1;
  long hz = sysconf(_SC_CLK_TCK);
  uint64_t msgs_for_cpu = cfg.mode == M_PUB ? S.sent : S.msgs;
  if (cfg.nspids && st0 >= 0 && st1 >= 0 && msgs_for_cpu > 0)
    srv_us = (double)(st1 - st0) * 1e6 / (double)hz / (double)msgs_for_cpu;
  double srv_pct = (cfg.nspids && st0 >= 0 && st1 >= 0 && win > 0)
                       ? (double)(st1 - st0) / (double)hz / win * 100
                       : -1;
  static const double qs[] = {0.5, 0.9, 0.99, 0.999};
  uint64_t qv[4];
  hist_quantiles(&S.h, qs, 4, qv);
  struct fanout *F = &W[0].f; /* fanout runs one thread */
  uint64_t fq[4] = {0};
  if (cfg.mode == M_FANOUT) {
    S.stalled += F->stalled;
    hist_quantiles(&F->complete, qs, 3, fq);
    fq[3] = F->complete.max_us;
  }
  uint64_t errors = S.e_connect + S.e_handshake + S.e_closed + S.e_mismatch + S.e_proto +
                    S.stalled + F->lost + F->order;
  double mean = S.h.n ? (double)S.h.sum_us / (double)S.h.n : 0;
  const char *unit = cfg.mode == M_ECHO                          ? "messages"
                     : cfg.mode == M_SUB || cfg.mode == M_FANOUT ? "deliveries"
                                                                 : "received";
  if (S.min_conn_msgs == UINT64_MAX) S.min_conn_msgs = 0;

  if (cfg.json) {
    printf(
        "{\"mode\":\"%s\",\"url\":\"%s\",\"conns\":%d,\"connected\":%d,\"connect_s\":%.3f,"
        "\"threads\":%d,"
        "\"size\":%zu,\"depth\":%d,\"frag\":%zu,\"binary\":%s,\"warmup_s\":%.3f,\"window_s\":%.3f,"
        "\"messages\":%" PRIu64 ",\"rate\":%.1f,\"bytes\":%" PRIu64 ",\"sent\":%" PRIu64
        ",\"sent_rate\":%.1f,"
        "\"latency_us\":{\"n\":%" PRIu64 ",\"min\":%" PRIu64 ",\"mean\":%.1f,\"p50\":%" PRIu64
        ",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64
        ",\"over_hist\":%" PRIu64 "},"
        "\"per_conn_msgs\":{\"min\":%" PRIu64 ",\"max\":%" PRIu64 "},"
        "\"errors\":{\"total\":%" PRIu64 ",\"connect\":%" PRIu64 ",\"handshake\":%" PRIu64
        ",\"closed\":%" PRIu64 ",\"mismatch\":%" PRIu64 ",\"protocol\":%" PRIu64
        ",\"stalled\":%" PRIu64 ",\"bad_timestamp\":%" PRIu64 ",\"lost\":%" PRIu64
        ",\"out_of_order\":%" PRIu64 "},"
        "\"client_cpu_pct\":%.1f,\"client_sys_pct\":%.1f,\"client_cpu_total_s\":%.3f,\"server_cpu_"
        "us_per_msg\":%.3f,\"server_cpu_pct\":%.1f",
        mode_name[cfg.mode], cfg.url, cfg.conns, connected, (double)(t_connected - t_begin) / 1e9,
        cfg.threads, cfg.size, cfg.depth, cfg.frag, cfg.binary ? "true" : "false", cfg.warmup, win,
        S.msgs, rate, S.bytes, S.sent, win > 0 ? (double)S.sent / win : 0, S.h.n,
        S.h.n ? S.h.min_us : 0, mean, qv[0], qv[1], qv[2], qv[3], S.h.max_us, S.h.over,
        S.min_conn_msgs, S.max_conn_msgs, errors, S.e_connect, S.e_handshake, S.e_closed,
        S.e_mismatch, S.e_proto, S.stalled, S.e_ts, F->lost, F->order, cpu_pct, sys_pct, cpu_total,
        srv_us, srv_pct);
    printf(",\"deflate\":%s,\"wire_in\":%" PRIu64 ",\"wire_out\":%" PRIu64 ",\"rx_msgs\":%" PRIu64
           ",\"wire_in_per_msg\":%.1f",
           cfg.deflate ? "true" : "false", S.wire_in, S.wire_out, S.rx_msgs,
           S.rx_msgs ? (double)S.wire_in / (double)S.rx_msgs : 0);
    if (cfg.mode == M_FANOUT)
      printf(",\"fanout\":{\"subscribers\":%d,\"pub_path\":\"%s\",\"inflight_window\":%d,\"rate_"
             "limit\":%.1f,"
             "\"synced\":%s,\"published\":%" PRIu64
             ",\"publish_rate\":%.1f,\"published_total\":%" PRIu64 ",\"completed\":%" PRIu64
             ",\"max_inflight\":%" PRIu64 ",\"throttled\":%" PRIu64
             ",\"complete_us\":{\"n\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
             ",\"p99\":%" PRIu64 ",\"max\":%" PRIu64 "}}",
             cfg.conns, cfg.pub_path, cfg.window, cfg.rate,
             atomic_load(&g_fan_synced) ? "true" : "false", F->published,
             win > 0 ? (double)F->published / win : 0, F->pub_total, F->completed, F->max_inflight,
             F->throttled, F->complete.n, fq[0], fq[1], fq[2], fq[3]);
    printf("}\n");
  } else {
    char what[64] = "";
    if (cfg.mode != M_SUB)
      snprintf(what, sizeof what, "%zu B %s, ", cfg.size, cfg.binary ? "binary" : "text");
    printf(
        "ws_load %s %s: %d/%d connected in %.2f s, %s%d thread(s), warm-up %.1f s, window %.2f s\n",
        mode_name[cfg.mode], cfg.url, connected, cfg.conns, (double)(t_connected - t_begin) / 1e9,
        what, cfg.threads, cfg.warmup, win);
    printf("  %-12s %.1f/s  (%" PRIu64 " in window, per connection min %" PRIu64 " max %" PRIu64
           ")\n",
           unit, rate, S.msgs, S.min_conn_msgs, S.max_conn_msgs);
    if (cfg.mode == M_PUB)
      printf("  sent         %.1f/s  (%" PRIu64 " in window)\n", win > 0 ? (double)S.sent / win : 0,
             S.sent);
    if (cfg.mode == M_FANOUT) {
      printf("  published    %.1f/s  (%" PRIu64
             " in window; window %d in flight%s; max in flight %" PRIu64 ")\n",
             win > 0 ? (double)F->published / win : 0, F->published, cfg.window,
             cfg.rate > 0 ? ", rate-limited" : "", F->max_inflight);
      if (F->complete.n)
        printf("  complete us  p50 %" PRIu64 "  p90 %" PRIu64 "  p99 %" PRIu64 "  max %" PRIu64
               "  (publish -> last subscriber, n=%" PRIu64 ")\n",
               fq[0], fq[1], fq[2], fq[3], F->complete.n);
      printf("  order        lost %" PRIu64 ", out of order %" PRIu64 ", throttled %" PRIu64 "\n",
             F->lost, F->order, F->throttled);
    }
    if (S.h.n)
      printf("  latency us   p50 %" PRIu64 "  p90 %" PRIu64 "  p99 %" PRIu64 "  p99.9 %" PRIu64
             "  max %" PRIu64 "  mean %.1f  (n=%" PRIu64 ")\n",
             qv[0], qv[1], qv[2], qv[3], S.h.max_us, mean, S.h.n);
    printf("  errors       %" PRIu64 ": connect %" PRIu64 ", handshake %" PRIu64 ", closed %" PRIu64
           ", mismatch %" PRIu64 ", protocol %" PRIu64 ", stalled %" PRIu64
           ", bad timestamp %" PRIu64 "\n",
           errors, S.e_connect, S.e_handshake, S.e_closed, S.e_mismatch, S.e_proto, S.stalled,
           S.e_ts);
    printf("  wire         %" PRIu64 " B in, %" PRIu64
           " B out (%.1f B in per message received)%s\n",
           S.wire_in, S.wire_out, S.rx_msgs ? (double)S.wire_in / (double)S.rx_msgs : 0,
           cfg.deflate ? ", permessage-deflate offered" : "");
    printf("  client CPU   %.1f%% of one core in the window (%.1f%% in the kernel; %.2f s over the "
           "whole run)\n",
           cpu_pct, sys_pct, cpu_total);
    if (cfg.nspids) {
      if (srv_us >= 0)
        printf("  server CPU   %.2f us per message, %.1f%% of one core\n", srv_us, srv_pct);
      else
        printf("  server CPU   n/a\n");
    }
  }
  return connected > 0 ? 0 : 1;
}
