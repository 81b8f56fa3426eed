/* Build: cc -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -Iext ext/reactor.c tests/c/test_reactor.c -o build/test_reactor
 *
 * The reactor's transport hook (the part TLS plugs into), with a fake
 * transport over a socketpair, so every crossing OpenSSL can produce is
 * produced on purpose:
 *   - a read that must wait for output space resumes on EPOLLOUT;
 *   - a write that must wait for input resumes on EPOLLIN, and then
 *     resumes the protocol (the transport may hold input it read); a read
 *     that epoll did not announce retries it too;
 *   - a refused write is offered again with at least the same bytes,
 *     through partial writes, small segments, a file (read in bounded
 *     pieces, never sendfile) and a large segment, all in order;
 *   - end of input sets RX_F_HUP; close hands the transport its fd once;
 *   - a drained stop (rx_stop_drained) spreads on_shutdown over the drain
 *     period; a plain stop calls them all at once;
 *   - plumbing (rx_mark_plumbing, a cluster relay) is not counted by
 *     rx_open_count, and a stop neither shuts it nor waits for it: it stays
 *     open while a client finishes and is closed after it;
 *   - an outgoing connect (rx_connect) calls on_connect once, with 0 when
 *     a listener took it and with ECONNREFUSED when nobody listens, before
 *     any on_data; writes made before the connect completes leave once it
 *     has; without on_connect a refused connect reads as end of input;
 *   - a batch (rx_batch_begin) holds small writes across calls and sends
 *     them in order at rx_batch_end; a large write or a file sends what
 *     was held first and is not held; rx_close and rx_set_proto send it;
 *     left alone, the loop sends it once it is due. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "reactor.h"

static int ok, fails;
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (cond)                                                                                      \
      ok++;                                                                                        \
    else {                                                                                         \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                       \
      fails++;                                                                                     \
    }                                                                                              \
  } while (0)

/* --- the fake transport ----------------------------------------------------- */

static struct {
  int read_want_write;    /* next reads answer WANT_WRITE this many times */
  int write_want_read;    /* next writes answer WANT_READ this many times */
  int refuse_every_other; /* alternate WANT_WRITE and acceptance */
  size_t max_write;       /* a partial write takes at most this */
  size_t max_offer;       /* largest len offered */
  int refused;            /* the last write was refused... */
  char last[1 << 16];     /* ...offering these bytes (the first 64 KiB) */
  size_t last_len;
  int shrunk; /* a retry offered fewer or other bytes */
  int closes, fd_open_at_close;
  char held[64]; /* input read from the socket, not yet given out */
  size_t held_len;
} fk;

static long fk_read(rx_conn *c, void *dst, size_t len) {
  if (fk.read_want_write) {
    /* as TLS does: take the record off the socket, then find it needs to
     * write before it can give anything out (so no input stays in the
     * kernel to make epoll report EPOLLIN again) */
    fk.read_want_write--;
    ssize_t r = read(c->fd, fk.held, sizeof fk.held);
    if (r > 0) fk.held_len = (size_t)r;
    return RX_TR_WANT_WRITE;
  }
  if (fk.held_len) {
    size_t n = fk.held_len < len ? fk.held_len : len;
    memcpy(dst, fk.held, n);
    memmove(fk.held, fk.held + n, fk.held_len - n);
    fk.held_len -= n;
    return (long)n;
  }
  ssize_t n = read(c->fd, dst, len);
  if (n > 0) return (long)n;
  if (n < 0 && errno == EAGAIN) return RX_TR_WANT_READ;
  return RX_TR_ERROR;
}

static long fk_write(rx_conn *c, const void *src, size_t len) {
  if (len > fk.max_offer) fk.max_offer = len;
  if (fk.refused) { /* the retry must offer at least the same bytes */
    size_t cmp = fk.last_len < sizeof fk.last ? fk.last_len : sizeof fk.last;
    if (len < fk.last_len || memcmp(src, fk.last, cmp)) fk.shrunk = 1;
    fk.refused = 0;
  } else if (fk.write_want_read || fk.refuse_every_other) {
    fk.refused = 1;
    fk.last_len = len;
    memcpy(fk.last, src, len < sizeof fk.last ? len : sizeof fk.last);
    if (fk.write_want_read) {
      fk.write_want_read--;
      return RX_TR_WANT_READ;
    }
    return RX_TR_WANT_WRITE;
  }
  if (fk.max_write && len > fk.max_write) len = fk.max_write;
  ssize_t n = write(c->fd, src, len);
  if (n > 0) return (long)n;
  if (n < 0 && errno == EAGAIN) return RX_TR_WANT_WRITE;
  return RX_TR_ERROR;
}

static void fk_close(rx_conn *c) {
  fk.closes++;
  fk.fd_open_at_close = fcntl(c->fd, F_GETFD) != -1;
}

static const rx_transport fake = {.read = fk_read, .write = fk_write, .close = fk_close};

/* --- a protocol that records what it reads ------------------------------- */

static char got[64];
static size_t got_len;
static int on_data_calls, last_read;

static void on_data(rx_conn *c) {
  on_data_calls++;
  for (;;) {
    long n = rx_read(c, got + got_len, sizeof got - got_len);
    last_read = (int)n;
    if (n <= 0) return;
    got_len += (size_t)n;
  }
}

static const rx_proto proto = {.on_data = on_data};

/* --- helpers ---------------------------------------------------------------- */

static void turns(int n) {
  for (int i = 0; i < n; i++) rx_run_once(20);
}

static size_t drain(int fd, char *dst, size_t cap) {
  size_t n = 0;
  for (;;) {
    char sink[65536];
    ssize_t r = read(fd, dst ? dst + n : sink, dst ? cap - n : sizeof sink);
    if (r <= 0) return n;
    if (dst) n += (size_t)r;
  }
}

static rx_conn *pair(int *peer) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) return NULL;
  *peer = sv[1];
  rx_lock();
  rx_conn *c = rx_attach(sv[0], &proto, NULL);
  rx_set_transport(c, &fake, NULL);
  rx_unlock();
  return c;
}

static void reset(void) {
  memset(&fk, 0, sizeof fk);
  got_len = 0;
  on_data_calls = 0;
}

/* --- the cases -------------------------------------------------------------- */

static void read_waits_for_output_space(void) {
  reset();
  int peer;
  rx_conn *c = pair(&peer);
  int sz = 4096;
  setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  char junk[4096] = {0};
  while (write(c->fd, junk, sizeof junk) > 0) {
  } /* the socket is full */
  turns(1);
  fk.read_want_write = 1;
  CHECK(write(peer, "abc", 3) == 3);
  turns(1);
  CHECK(on_data_calls >= 1 && got_len == 0);
  CHECK(c->flags & RX_F_TR_WANT_OUT);
  int before = on_data_calls;
  drain(peer, NULL, 0); /* room again: an EPOLLOUT edge, no new input */
  turns(2);
  CHECK(on_data_calls > before);
  CHECK(got_len == 3 && !memcmp(got, "abc", 3));
  CHECK(!(c->flags & RX_F_TR_WANT_OUT));
  rx_lock();
  rx_close_now(c);
  rx_unlock();
  turns(1);
  close(peer);
}

static void write_waits_for_input(void) {
  reset();
  int peer;
  rx_conn *c = pair(&peer);
  turns(1); /* the first, "writable", edge goes by */
  fk.write_want_read = 1;
  rx_lock();
  CHECK(rx_write(c, "hello", 5) == 0);
  rx_unlock();
  CHECK(c->out_bytes == 5 && (c->flags & RX_F_TR_WANT_IN));
  turns(2);
  char buf[16];
  CHECK(read(peer, buf, sizeof buf) < 0); /* nothing went out: no input yet */
  on_data_calls = 0;
  CHECK(write(peer, "x", 1) == 1);
  turns(1);
  CHECK(!fk.shrunk);
  CHECK(read(peer, buf, sizeof buf) == 5 && !memcmp(buf, "hello", 5));
  CHECK(c->out_bytes == 0 && !(c->flags & RX_F_TR_WANT_IN));
  /* once for the input, once more because the write read from the socket */
  CHECK(on_data_calls == 2);
  rx_lock();
  rx_close_now(c);
  rx_unlock();
  turns(1);
  close(peer);
}

static void read_retries_a_write_waiting_for_input(void) {
  reset();
  int peer;
  rx_conn *c = pair(&peer);
  turns(1);
  fk.write_want_read = 1;
  rx_lock();
  CHECK(rx_write(c, "later", 5) == 0);
  CHECK(c->flags & RX_F_TR_WANT_IN);
  rx_resume(c); /* the protocol reads without epoll saying so */
  rx_unlock();
  turns(1);
  char buf[16];
  CHECK(read(peer, buf, sizeof buf) == 5 && !memcmp(buf, "later", 5));
  CHECK(c->out_bytes == 0 && !fk.shrunk);
  rx_lock();
  rx_close_now(c);
  rx_unlock();
  turns(1);
  close(peer);
}

static void retries_offer_the_same_bytes(void) {
  reset();
  int peer;
  rx_conn *c = pair(&peer);
  turns(1);
  /* expected output: small segments, a file (offset 1000, 100000 bytes),
   * more small ones, and a 300 KiB segment */
  size_t flen = 100000, blen = 300 * 1024, total = 0;
  char *expect = malloc(flen + blen + 64), *file = malloc(flen + 1000), *big = malloc(blen);
  char *out = malloc(flen + blen + 64);
  for (size_t i = 0; i < flen + 1000; i++) file[i] = (char)(i * 7 + 3);
  for (size_t i = 0; i < blen; i++) big[i] = (char)(i * 13 + 1);
  char path[] = "/tmp/test_reactor_XXXXXX";
  int fd = mkstemp(path);
  unlink(path);
  CHECK(fd >= 0 && write(fd, file, flen + 1000) == (ssize_t)(flen + 1000));
  fk.refuse_every_other = 1;
  fk.max_write = 7000;
  rx_lock();
  rx_cork(c); /* queue it all, then flush at the end of the turn */
  rx_write(c, "head-", 5);
  memcpy(expect + total, "head-", 5), total += 5;
  rx_write(c, "one-", 4);
  memcpy(expect + total, "one-", 4), total += 4;
  CHECK(rx_write_file(c, fd, 1000, flen) == 0);
  memcpy(expect + total, file + 1000, flen), total += flen;
  rx_write(c, "-tail", 5);
  memcpy(expect + total, "-tail", 5), total += 5;
  rx_write(c, big, blen);
  memcpy(expect + total, big, blen), total += blen;
  rx_unlock();
  size_t n = 0;
  for (int i = 0; i < 5000 && n < total; i++) {
    if (fk.refused) { /* a real refusal comes with a later EPOLLOUT; */
      rx_lock();      /* here a cork stands in for it: it flushes too */
      rx_cork(c);
      rx_unlock();
    }
    turns(1);
    n += drain(peer, out + n, flen + blen + 64 - n);
  }
  CHECK(n == total && !memcmp(out, expect, total));
  CHECK(!fk.shrunk);
  CHECK(fk.max_offer <= (1u << 20));
  CHECK(c->out_bytes == 0 && c->out_count == 0);
  rx_lock();
  rx_close_now(c);
  rx_unlock();
  turns(1);
  close(peer);
  free(expect), free(file), free(big), free(out);
}

static void eof_and_close(void) {
  reset();
  int peer;
  rx_conn *c = pair(&peer);
  turns(1);
  close(peer); /* end of input */
  turns(1);
  CHECK(last_read == -1 && (c->flags & RX_F_HUP));
  rx_lock();
  rx_close_now(c);
  rx_close_now(c);
  rx_unlock();
  turns(1);
  CHECK(fk.closes == 1 && fk.fd_open_at_close);
}

/* --- drained stop ----------------------------------------------------------------- */

#define NDRAIN 40
static uint64_t shut_at[NDRAIN];
static int nshut;

static uint64_t plain_at, stop_at;

static void drain_shutdown(rx_conn *c) {
  if (!rx_upgraded(c)) plain_at = rx_now_ms();
  if (nshut < NDRAIN) shut_at[nshut++] = rx_now_ms();
  rx_close_now(c);
}

static const rx_proto drain_proto = {.on_shutdown = drain_shutdown};

/* Returns the span (ms) between the first and the last on_shutdown, and the
 * most of them within any 50 ms; every connection must have heard it. */
static uint64_t stop_and_measure(int drained, int *worst) {
  int peers[NDRAIN];
  nshut = 0;
  rx_lock();
  for (int i = 0; i < NDRAIN; i++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) return 0;
    peers[i] = sv[1];
    rx_conn *c = rx_attach(sv[0], &drain_proto, NULL);
    if (i) rx_mark_upgraded(c); /* the first stays plain HTTP: at once */
  }
  rx_unlock();
  rx_set_drain_ms(400);
  rx_set_grace_ms(3000);
  stop_at = rx_now_ms();
  if (drained)
    rx_stop_drained();
  else
    rx_stop();
  rx_run(); /* until every connection is gone */
  for (int i = 0; i < NDRAIN; i++) close(peers[i]);
  CHECK(nshut == NDRAIN);
  *worst = 0;
  for (int i = 0; i < nshut; i++) {
    int n = 0;
    for (int j = 0; j < nshut; j++) n += shut_at[j] >= shut_at[i] && shut_at[j] < shut_at[i] + 50;
    if (n > *worst) *worst = n;
  }
  return nshut ? shut_at[nshut - 1] - shut_at[0] : 0;
}

static void drained_stop_spreads_shutdowns(void) {
  int worst;
  uint64_t span = stop_and_measure(1, &worst);
  CHECK(span >= 300 && span <= 1000);
  CHECK(worst <= NDRAIN / 3);      /* even: about 5 per 50 ms */
  CHECK(plain_at - stop_at < 100); /* a plain HTTP connection: not spread */
  span = stop_and_measure(0, &worst);
  CHECK(span < 100 && worst == NDRAIN); /* a plain stop: all at once */
}

/* --- plumbing ------------------------------------------------------------------ */

static struct {
  int pipe_shut, client_closed, pipe_closed, pipe_closed_after_client;
  uint64_t client;
} pl;

static void pl_pipe_shutdown(rx_conn *c) {
  (void)c;
  pl.pipe_shut++;
}
static void pl_pipe_close(rx_conn *c) {
  (void)c;
  pl.pipe_closed++;
  pl.pipe_closed_after_client = pl.client_closed;
}
static void pl_client_close(rx_conn *c) {
  (void)c;
  pl.client_closed++;
}
static void pl_client_done(void *arg) { /* a client finishing its work */
  (void)arg;
  rx_conn *c = rx_find(pl.client);
  if (c) rx_close(c);
}
static void pl_client_shutdown(rx_conn *c) {
  (void)c;
  rx_timer(150, 0, 1, pl_client_done, NULL, NULL);
}
static const rx_proto pl_pipe = {.on_shutdown = pl_pipe_shutdown, .on_close = pl_pipe_close};
static const rx_proto pl_client = {.on_shutdown = pl_client_shutdown, .on_close = pl_client_close};

static void plumbing_is_not_counted_and_closes_last(void) {
  int a[2], b[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a) ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b))
    return;
  rx_lock();
  size_t before = rx_open_count();
  rx_conn *pipe = rx_attach(a[0], &pl_pipe, NULL);
  rx_mark_plumbing(pipe);
  rx_mark_plumbing(pipe); /* twice is once */
  CHECK(rx_open_count() == before);
  rx_conn *client = rx_attach(b[0], &pl_client, NULL);
  pl.client = client->id;
  CHECK(rx_open_count() == before + 1); /* the client only */
  rx_unlock();
  rx_set_drain_ms(0);
  rx_set_grace_ms(3000);
  uint64_t t0 = rx_now_ms();
  rx_stop();
  rx_run();
  CHECK(pl.pipe_shut == 0);                            /* not shut like a client */
  CHECK(pl.client_closed == 1 && pl.pipe_closed == 1); /* both ended */
  CHECK(pl.pipe_closed_after_client == 1);             /* open while the client worked */
  CHECK(rx_now_ms() - t0 < 2000);                      /* not waited for: no grace spent */
  CHECK(rx_open_count() == before);
  close(a[1]);
  close(b[1]);
}

/* --- rx_connect -------------------------------------------------------------- */

static struct {
  int reads, hup;
  char got[64];
  size_t got_len;
} cx;

static void cx_data(rx_conn *c) {
  for (;;) {
    long n = rx_read(c, cx.got + cx.got_len, sizeof cx.got - cx.got_len);
    if (n > 0) {
      cx.got_len += (size_t)n;
      cx.reads++;
      continue;
    }
    if (n < 0) cx.hup = 1;
    return;
  }
}
static const rx_proto cx_proto = {.on_data = cx_data};

static void connect_writes_early_and_sees_refusal(void) {
  int lst = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  CHECK(bind(lst, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lst, 4) == 0);
  getsockname(lst, (struct sockaddr *)&sa, &sl);
  memset(&cx, 0, sizeof cx);
  rx_lock();
  rx_conn *c = rx_connect((struct sockaddr *)&sa, sizeof sa, &cx_proto, NULL);
  CHECK(c != NULL);
  CHECK(c && rx_write(c, "PING\r\n", 6) == 0); /* before the connect completed */
  rx_unlock();
  int peer = accept(lst, NULL, NULL);
  CHECK(peer >= 0);
  char buf[16];
  size_t n = 0;
  for (int i = 0; i < 50 && n < 6; i++) {
    rx_run_once(20);
    ssize_t r = recv(peer, buf + n, sizeof buf - n, MSG_DONTWAIT);
    if (r > 0) n += (size_t)r;
  }
  CHECK(n == 6 && !memcmp(buf, "PING\r\n", 6));
  CHECK(write(peer, "+PONG\r\n", 7) == 7);
  for (int i = 0; i < 50 && cx.got_len < 7; i++) rx_run_once(20);
  CHECK(cx.got_len == 7 && !memcmp(cx.got, "+PONG\r\n", 7));
  close(peer);
  for (int i = 0; i < 50 && !cx.hup; i++) rx_run_once(20);
  CHECK(cx.hup);
  rx_close_now(c);
  /* nobody listens any more: the connect is refused, seen as end of input */
  close(lst);
  memset(&cx, 0, sizeof cx);
  rx_conn *d = rx_connect((struct sockaddr *)&sa, sizeof sa, &cx_proto, NULL);
  if (d) {
    for (int i = 0; i < 50 && !cx.hup; i++) rx_run_once(20);
    CHECK(cx.hup);
    rx_close_now(d);
  } else {
    CHECK(errno == ECONNREFUSED);
  }
  rx_run_once(0);
}

/* --- outgoing connects ------------------------------------------------------- */

static int connects, connect_err, data_before_connect;

static void cn_on_connect(rx_conn *c, int err) {
  (void)c;
  connects++;
  connect_err = err;
}

static void cn_on_data(rx_conn *c) {
  (void)c;
  if (!connects) data_before_connect = 1;
}

static const rx_proto cn_proto = {.on_data = cn_on_data, .on_connect = cn_on_connect};

static void connect_reports_once(void) {
  int lst = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  CHECK(bind(lst, (struct sockaddr *)&a, sizeof a) == 0 && listen(lst, 4) == 0);
  CHECK(getsockname(lst, (struct sockaddr *)&a, &alen) == 0);
  /* a listener takes it: on_connect(c, 0), once */
  connects = 0, connect_err = -1, data_before_connect = 0;
  rx_lock();
  rx_conn *c = rx_connect((struct sockaddr *)&a, sizeof a, &cn_proto, NULL);
  rx_unlock();
  CHECK(c != NULL && (c->flags & RX_F_CONNECTING));
  turns(3);
  CHECK(connects == 1 && connect_err == 0 && !(c->flags & RX_F_CONNECTING));
  rx_lock();
  rx_close_now(c);
  rx_unlock();
  turns(1);
  /* nobody listens there any more: ECONNREFUSED, once, before on_data */
  close(lst);
  connects = 0, connect_err = -1;
  rx_lock();
  c = rx_connect((struct sockaddr *)&a, sizeof a, &cn_proto, NULL);
  int sync_err = c ? 0 : errno;
  rx_unlock();
  if (!c) { /* the kernel may refuse at once: then rx_connect says so */
    CHECK(sync_err == ECONNREFUSED);
    return;
  }
  turns(3);
  CHECK(connects == 1 && connect_err == ECONNREFUSED && !data_before_connect);
  rx_lock();
  rx_close_now(c);
  rx_unlock();
  turns(1);
}

/* --- batches ------------------------------------------------------------------------ */

static rx_conn *plain_pair(int *peer) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) return NULL;
  *peer = sv[1];
  rx_lock();
  rx_conn *c = rx_attach(sv[0], &proto, NULL);
  rx_unlock();
  return c;
}

static int got_is(int peer, const char *want) {
  char buf[256];
  size_t n = drain(peer, buf, sizeof buf - 1);
  buf[n] = 0;
  if (strcmp(buf, want)) printf("  got \"%s\", want \"%s\"\n", buf, want);
  return !strcmp(buf, want);
}

static void batch_holds_across_calls(void) {
  reset();
  int peer;
  rx_conn *c = plain_pair(&peer);
  turns(1);
  rx_lock();
  rx_batch_begin(c);
  rx_write(c, "one;", 4);
  rx_write(c, "two;", 4);
  rx_unlock();
  CHECK(got_is(peer, "") && c->out_bytes == 8); /* held, not sent */
  rx_lock();
  rx_batch_end(c);
  rx_unlock();
  CHECK(got_is(peer, "one;two;") && c->out_bytes == 0);
  rx_lock();
  rx_write(c, "free;", 5); /* the batch is over: straight out */
  rx_unlock();
  CHECK(got_is(peer, "free;"));

  /* past the byte bound: what was held goes first, the big one unheld */
  size_t big = 100 * 1024, n = 0;
  char *out = malloc(big + 16), *data = malloc(big);
  memset(data, 'x', big);
  rx_lock();
  rx_batch_begin(c);
  rx_write(c, "held;", 5);
  rx_write(c, data, big);
  rx_write(c, "after;", 6); /* no batch now: behind the big one, not held */
  rx_unlock();
  for (int i = 0; i < 100 && n < big + 11; i++) {
    turns(1);
    n += drain(peer, out + n, big + 16 - n);
  }
  CHECK(n == big + 11 && !memcmp(out, "held;", 5) && out[5] == 'x' && out[big + 4] == 'x' &&
        !memcmp(out + big + 5, "after;", 6));
  free(out), free(data);

  /* a file is never held */
  char path[] = "/tmp/test_reactor_XXXXXX";
  int fd = mkstemp(path);
  unlink(path);
  CHECK(fd >= 0 && write(fd, "file;", 5) == 5);
  rx_lock();
  rx_batch_begin(c);
  rx_write(c, "before;", 7);
  CHECK(rx_write_file(c, fd, 0, 5) == 0);
  rx_unlock();
  CHECK(got_is(peer, "before;file;"));

  /* left alone, the loop sends it when it is due (RX_BATCH_MS) */
  rx_lock();
  rx_batch_begin(c);
  rx_write(c, "due;", 4);
  rx_unlock();
  CHECK(got_is(peer, ""));
  uint64_t t0 = rx_now_ms();
  int seen = 0;
  for (int i = 0; i < 50 && !seen; i++) {
    rx_run_once(1000); /* the held batch cuts the wait short */
    seen = got_is(peer, "due;") || seen;
  }
  CHECK(seen && rx_now_ms() - t0 < 500);

  /* a change of protocol sends it (under the protocol that held it) */
  rx_lock();
  rx_batch_begin(c);
  rx_write(c, "proto;", 6);
  rx_set_proto(c, &proto, NULL);
  rx_unlock();
  CHECK(got_is(peer, "proto;"));

  /* a close sends it, then closes */
  rx_lock();
  rx_batch_begin(c);
  rx_write(c, "bye;", 4);
  rx_close(c);
  rx_unlock();
  turns(1);
  CHECK(got_is(peer, "bye;"));
  char b;
  CHECK(read(peer, &b, 1) == 0); /* end of output */
  close(peer);
}

int main(void) {
  if (rx_init()) {
    printf("rx_init failed\n");
    return 1;
  }
  read_waits_for_output_space();
  write_waits_for_input();
  read_retries_a_write_waiting_for_input();
  retries_offer_the_same_bytes();
  eof_and_close();
  drained_stop_spreads_shutdowns();
  plumbing_is_not_counted_and_closes_last();
  connect_writes_early_and_sees_refusal();
  connect_reports_once();
  batch_holds_across_calls();
  printf("%d passed, %d failed\n", ok, fails);
  return fails != 0;
}
