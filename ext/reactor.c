/* reactor: see reactor.h for what this file owns (with reactor_timer.c,
 * the timers, and reactor_stop.c, lingering close and stopping; the loop's
 * state they share is in reactor_int.h).
 *
 * Edge-triggered epoll: every socket is registered once for IN|OUT|RDHUP and
 * never modified again, so a write that would block costs no epoll_ctl. The
 * price of edge triggering is that a protocol which stops reading before
 * EAGAIN (to apply backpressure) must ask for rx_resume() when it is ready
 * again: the kernel will not tell us twice. */
#define _GNU_SOURCE
#include "reactor.h"
#include "reactor_timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "reactor_int.h"

struct rx_state rx;

static _Thread_local int in_loop;

/* --- time and locking ---------------------------------------------------- */

static uint64_t clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t rx_now_ms(void) { return in_loop ? rx.now : clock_ms(); }

uint64_t rx_int_clock_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void rx_lock(void) { pthread_mutex_lock(&rx.lock); }
void rx_unlock(void) { pthread_mutex_unlock(&rx.lock); }

/* One condition for every waiter on the big lock (application threads
 * reading a request body as it arrives): broadcasts are rare, so sharing it
 * costs little. CLOCK_MONOTONIC: a clock step neither cuts nor stretches. */
static pthread_cond_t wait_cond;

void rx_wait_ms(uint32_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(ms % 1000u) * 1000000u;
  ts.tv_sec += (time_t)(ms / 1000u + ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  pthread_cond_timedwait(&wait_cond, &rx.lock, &ts);
}

void rx_broadcast(void) { pthread_cond_broadcast(&wait_cond); }
int rx_in_loop_thread(void) { return in_loop; }
int rx_stopping(void) { return rx.stopping || atomic_load(&rx.stop_requested); }
void rx_set_grace_ms(uint32_t ms) { rx.grace_ms = ms; }
void rx_set_drain_ms(uint32_t ms) { rx.drain_ms = ms; }
void rx_set_turn_hook(void (*fn)(void)) { rx.turn_hook = fn; }
void rx_set_busy_probe(int (*fn)(void)) { rx.busy_probe = fn; }

void rx_int_wake(void) {
  uint64_t one = 1;
  ssize_t r = write(rx.wakefd, &one, sizeof one);
  (void)r; /* EAGAIN means a wake-up is already pending: good enough */
}

void rx_wake_sleeping(void) {
  if (!in_loop && atomic_load(&rx.sleeping)) rx_int_wake();
}

/* --- shared buffers -------------------------------------------------------- */

rx_buf *rx_buf_new(const void *data, size_t len) {
  rx_buf *b = malloc(sizeof *b + len);
  if (!b) return NULL;
  atomic_init(&b->refs, 1);
  b->len = len;
  if (data && len) memcpy(b->data, data, len);
  return b;
}
void rx_buf_retain(rx_buf *b) { atomic_fetch_add(&b->refs, 1); }
void rx_buf_release(rx_buf *b) {
  if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}

/* --- init ------------------------------------------------------------------ */

int rx_init(void) {
  if (rx.ready) return 0;
  struct rlimit rl;
  size_t cap = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    cap = rl.rlim_cur < 16 ? 16 : (size_t)rl.rlim_cur;
  if (cap > (1u << 22)) cap = 1u << 22;
  rx.table = calloc(cap, sizeof *rx.table);
  rx.gens = calloc(cap, sizeof *rx.gens);
  if (!rx.table || !rx.gens) return -ENOMEM;
  rx.cap = cap;
  rx.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (rx.epfd < 0) return -errno;
  rx.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (rx.wakefd < 0) return -errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = rx.wakefd};
  if (epoll_ctl(rx.epfd, EPOLL_CTL_ADD, rx.wakefd, &ev) < 0) return -errno;
  pthread_mutex_init(&rx.lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&wait_cond, &ca);
  rxt_init();
  rx.grace_ms = 10000;
  rx.now = clock_ms();
  rx.timers_on = 1;
  rx.ready = 1;
  return 0;
}

/* --- connections ----------------------------------------------------------- */

rx_conn *rx_attach(int fd, const rx_proto *proto, void *udata) {
  if (fd < 0 || (size_t)fd >= rx.cap || rx.table[fd]) return NULL;
  rx_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  rx_conn *c = &n->c;
  c->fd = fd;
  c->gen = ++rx.gens[fd];
  c->id = ((uint64_t)c->gen << 32) | (uint32_t)fd;
  c->proto = proto;
  c->udata = udata;
  c->active_ms = rx_now_ms();
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
  if (epoll_ctl(rx.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    free(c);
    return NULL;
  }
  rx.table[fd] = c;
  rx.open++;
  if ((size_t)fd + 1 > rx.top) rx.top = (size_t)fd + 1;
  return c;
}

rx_conn *rx_connect(const struct sockaddr *addr, unsigned addrlen, const rx_proto *proto,
                    void *udata) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  if (addr->sa_family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (connect(fd, addr, (socklen_t)addrlen) < 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  rx_conn *c = rx_attach(fd, proto, udata);
  if (!c) {
    close(fd);
    errno = ENOMEM;
  } else {
    c->flags |= RX_F_CONNECTING;
  }
  return c;
}

size_t rx_open_count(void) { return rx.open - rx.plumbing; }

void rx_mark_plumbing(rx_conn *c) {
  if (c->flags & RX_F_PLUMBING) return;
  c->flags |= RX_F_PLUMBING;
  rx.plumbing++;
}

void rx_int_forget(rx_conn *c) {
  rx.table[c->fd] = NULL;
  rx.open--;
  if (c->flags & RX_F_PLUMBING) rx.plumbing--;
  close(c->fd); /* also removes it from the epoll set */
}

rx_conn *rx_find(uint64_t id) {
  uint32_t fd = (uint32_t)id;
  if (fd >= rx.cap) return NULL;
  rx_conn *c = rx.table[fd];
  if (!c || c->id != id || (c->flags & RX_F_CLOSED)) return NULL;
  return c;
}

void rx_set_proto(rx_conn *c, const rx_proto *proto, void *udata) {
  if (c->flags & RX_F_BATCH) rx_batch_end(c);
  c->proto = proto;
  c->udata = udata;
  c->sent_watch = 0; /* a marker belongs to the protocol that set it */
}

void rx_set_transport(rx_conn *c, const rx_transport *tr, void *state) {
  c->tr = tr;
  c->tr_state = state;
}

void rx_touch(rx_conn *c) { c->active_ms = rx_now_ms(); }

void rx_resume(rx_conn *c) {
  if (c->flags & (RX_F_RESUME | RX_F_CLOSED)) return;
  c->flags |= RX_F_RESUME;
  priv(c)->resume_next = NULL;
  if (rx.resume_tail)
    priv(rx.resume_tail)->resume_next = c;
  else
    rx.resume_head = c;
  rx.resume_tail = c;
  if (!in_loop && atomic_load(&rx.sleeping)) rx_int_wake();
}

static void drop_queue(rx_conn *c) {
  rx_seg *s = priv(c)->out_head;
  while (s) {
    rx_seg *next = s->next;
    if (s->kind == SEG_BUF)
      rx_buf_release(s->buf);
    else if (s->kind == SEG_FILE)
      close(s->fd);
    free(s);
    s = next;
  }
  priv(c)->out_head = priv(c)->out_tail = NULL;
  c->out_bytes = 0;
  c->out_count = 0;
}

/* Mark closed and queue for the end of the turn, where on_close runs and the
 * memory is freed. The fd is closed now unless the connection lingers. */
static void doom(rx_conn *c, int linger) {
  c->flags |= RX_F_CLOSED;
  c->flags &= ~RX_F_CLOSING;
  if (c->flags & RX_F_BATCH) rx_int_batch_unlink(c);
  if (c->tr) { /* before the FIN (or a lingering half-close): close_notify */
    c->tr->close(c);
    c->tr = NULL;
    c->tr_state = NULL;
  }
  drop_queue(c);
  if (linger) {
    c->flags |= RX_F_LINGER;
    shutdown(c->fd, SHUT_WR);
  } else {
    rx_int_forget(c);
    c->flags &= ~RX_F_LINGER;
  }
  priv(c)->dead_next = rx.dead;
  rx.dead = c;
}

void rx_close_now(rx_conn *c) {
  if (c->flags & RX_F_CLOSED) return;
  doom(c, 0);
}

void rx_close(rx_conn *c) {
  if (c->flags & (RX_F_CLOSED | RX_F_CLOSING)) return;
  if (rx.held) rx_release(c); /* what was held back goes before the close */
  c->flags |= RX_F_CLOSING;
  if (c->flags & RX_F_BATCH) rx_batch_end(c); /* what it held, then the close */
  if (c->flags & RX_F_CLOSED) return;
  if (!priv(c)->out_head && !(c->flags & RX_F_CORK))
    doom(c, (c->flags & RX_F_LINGER) && !(c->flags & RX_F_HUP));
  else if (!in_loop && atomic_load(&rx.sleeping))
    rx_int_wake();
}

/* Reading through a transport. A TLS read may have to write first
 * (handshake messages, alerts); until the socket takes them it waits for
 * EPOLLOUT, which turn() then hands to on_data. */
static long tr_read(rx_conn *c, void *dst, size_t len) {
  c->flags &= ~RX_F_TR_WANT_OUT;
  if (!len) return 0;
  long n = c->tr->read(c, dst, len);
  /* A write waiting for input may go on now that input was read; epoll
   * will not report that input again, so retry it at the end of the turn. */
  if (c->flags & RX_F_TR_WANT_IN) rx_cork(c);
  if (n > 0) {
    c->active_ms = rx_now_ms(); /* handshake bytes alone do not count */
    return n;
  }
  if (n == RX_TR_WANT_READ) return 0;
  if (n == RX_TR_WANT_WRITE) {
    c->flags |= RX_F_TR_WANT_OUT;
    return 0;
  }
  c->flags |= RX_F_HUP;
  return -1;
}

long rx_read(rx_conn *c, void *dst, size_t len) {
  if (c->flags & RX_F_CLOSED) return -1;
  if (c->tr) return tr_read(c, dst, len);
  /* Edge-triggered epoll wants reads until EAGAIN, but a read that returned
   * less than asked for already emptied the socket: any later byte raises a
   * new edge. Skipping the read that would only say EAGAIN saves a system
   * call per request (per message). Not after a FIN was reported: then
   * the read that returns 0 must happen. */
  if (c->flags & RX_F_DRAINED) return 0;
  for (;;) {
    ssize_t n = read(c->fd, dst, len);
    if (n > 0) {
      c->active_ms = rx_now_ms();
      if ((size_t)n < len && !(c->flags & RX_F_RDHUP)) c->flags |= RX_F_DRAINED;
      return (long)n;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    c->flags |= RX_F_HUP;
    return -1;
  }
}

/* --- output ---------------------------------------------------------------- */

/* n bytes from the head of the queue went out: note the progress and
 * retire what was fully written. sendfile() already moved its file offset;
 * a transport's writes did not (files_too). */
static void retire(rx_conn *c, size_t n, int files_too) {
  if (!(c->flags & RX_F_IDLE_READ)) c->active_ms = rx_now_ms();
  c->out_bytes -= n;
  c->sent_total += n;
  if (c->sent_watch && c->sent_total >= c->sent_watch && c->proto && c->proto->on_sent)
    c->proto->on_sent(c); /* only notes the fact: the queue is not touched */
  while (priv(c)->out_head && n) {
    rx_seg *t = priv(c)->out_head;
    size_t take = t->len < n ? (size_t)t->len : n;
    if (t->kind != SEG_FILE || files_too) t->off += take;
    t->len -= take;
    n -= take;
    if (t->len) break;
    priv(c)->out_head = t->next;
    if (!priv(c)->out_head) priv(c)->out_tail = NULL;
    c->out_count -= t->writes;
    if (t->kind == SEG_BUF)
      rx_buf_release(t->buf);
    else if (t->kind == SEG_FILE)
      close(t->fd);
    free(t);
  }
}

/* --- output through a transport (TLS) ---------------------------------------
 * A transport encrypts what it is given: it cannot take a file by
 * sendfile(), and each call makes at least one record. So every write gets
 * one chunk: a large memory segment as it is, or up to STAGE_SIZE bytes
 * gathered from the head of the queue (small segments joined into one
 * record; files read with pread(), one bounded buffer at a time, never
 * whole). The chunk is rebuilt from the queue on each attempt and segments
 * retire only once written, so the retry after WANT_READ/WANT_WRITE offers
 * the same bytes again, and never fewer: the queue only grows at its tail. */

#define STAGE_SIZE 16384      /* one TLS record of plaintext */
#define DIRECT_MAX (1u << 20) /* bytes offered at once from one segment */

static char stage[STAGE_SIZE]; /* shared: every writer holds the big lock */

/* The next chunk to offer, at *out. 0 when the file at the head of the
 * queue has no more bytes than it had: it shrank, the response is broken. */
static size_t tr_chunk(rx_conn *c, const char **out) {
  rx_seg *s = priv(c)->out_head;
  if (s->kind != SEG_FILE && s->len >= STAGE_SIZE) {
    const char *base = s->kind == SEG_MEM ? s->data : s->buf->data;
    *out = base + s->off;
    return s->len > DIRECT_MAX ? DIRECT_MAX : (size_t)s->len;
  }
  size_t n = 0;
  for (rx_seg *t = s; t && n < STAGE_SIZE; t = t->next) {
    size_t want = STAGE_SIZE - n;
    if (t->len < want) want = (size_t)t->len;
    if (t->kind == SEG_FILE) {
      ssize_t r;
      do r = pread(t->fd, stage + n, want, (off_t)t->off);
      while (r < 0 && errno == EINTR);
      if (r <= 0) break;
      n += (size_t)r;
      if ((size_t)r < want) break; /* short: the next attempt finds out */
    } else {
      const char *base = t->kind == SEG_MEM ? t->data : t->buf->data;
      memcpy(stage + n, base + t->off, want);
      n += want;
    }
  }
  *out = stage;
  return n;
}

static int flush_tr(rx_conn *c) {
  int waited_in = (c->flags & RX_F_TR_WANT_IN) != 0;
  c->flags &= ~RX_F_TR_WANT_IN;
  while (priv(c)->out_head) {
    const char *p;
    size_t len = tr_chunk(c, &p);
    if (!len) {
      doom(c, 0);
      return -1;
    }
    long n = c->tr->write(c, p, len);
    if (n == RX_TR_WANT_WRITE) return 0; /* EPOLLOUT brings us back */
    if (n == RX_TR_WANT_READ) {
      c->flags |= RX_F_TR_WANT_IN; /* turn() retries on EPOLLIN */
      return 0;
    }
    if (n <= 0) {
      c->flags |= RX_F_HUP;
      doom(c, 0);
      return -1;
    }
    if (waited_in) {
      /* That write read from the socket: records it decrypted wait inside
       * the transport, and epoll will not report them again. */
      waited_in = 0;
      rx_resume(c);
    }
    retire(c, (size_t)n, 1);
  }
  return 0;
}

/* Write as much of the queue as the socket takes. Returns 0, or -1 when the
 * socket failed (the connection is then killed). */
static int flush(rx_conn *c) {
  if (c->tr) return flush_tr(c);
  while (priv(c)->out_head) {
    rx_seg *s = priv(c)->out_head;
    ssize_t n;
    if (s->kind == SEG_FILE) {
      off_t off = (off_t)s->off;
      size_t want = s->len > (1u << 20) ? (1u << 20) : (size_t)s->len;
      n = sendfile(c->fd, s->fd, &off, want);
      if (n == 0) { /* the file shrank under us: the response is broken */
        doom(c, 0);
        return -1;
      }
      if (n > 0) s->off = (uint64_t)off;
    } else {
      struct iovec iov[32];
      int cnt = 0;
      for (rx_seg *t = s; t && cnt < 32 && t->kind != SEG_FILE; t = t->next) {
        const char *base = t->kind == SEG_MEM ? t->data : t->buf->data;
        iov[cnt].iov_base = (void *)(base + t->off);
        iov[cnt].iov_len = (size_t)t->len;
        cnt++;
      }
      struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
      n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      c->flags |= RX_F_HUP;
      doom(c, 0);
      return -1;
    }
    retire(c, (size_t)n, 0);
  }
  return 0;
}

/* After progress: a drained queue either completes a close or tells the
 * protocol it may write more. */
static void after_flush(rx_conn *c) {
  if (priv(c)->out_head || (c->flags & RX_F_CLOSED)) return;
  if (c->flags & RX_F_CLOSING)
    doom(c, (c->flags & RX_F_LINGER) && !(c->flags & RX_F_HUP));
  else if (c->proto && c->proto->on_drained)
    c->proto->on_drained(c);
}

static void enqueue(rx_conn *c, rx_seg *s) {
  s->next = NULL;
  if (priv(c)->out_tail)
    priv(c)->out_tail->next = s;
  else
    priv(c)->out_head = s;
  priv(c)->out_tail = s;
  c->out_bytes += (size_t)s->len;
  c->out_count++;
  s->writes = 1;
}

/* Small writes behind others (queued, or corked for the end of the turn)
 * are copied into the tail's spare room instead of each getting a segment:
 * a pub/sub fan-out of short messages then costs a memcpy per recipient,
 * not a malloc, a reference and an iovec, and goes out in one writev. Not
 * through a transport: TLS retries must see exactly the bytes it was
 * offered before. Returns 1 when appended. */
#define SMALL_WRITE 256
#define SMALL_SEG 1024

static int append_small(rx_conn *c, const struct iovec *iov, int cnt, size_t total) {
  rx_seg *t = priv(c)->out_tail;
  if (total > SMALL_WRITE || c->tr || !t || t->kind != SEG_MEM || t->off + t->len + total > t->cap)
    return 0;
  char *dst = t->data + t->off + t->len;
  for (int i = 0; i < cnt; i++) {
    memcpy(dst, iov[i].iov_base, iov[i].iov_len);
    dst += iov[i].iov_len;
  }
  t->len += total;
  t->writes++;
  c->out_bytes += total;
  c->out_count++;
  return 1;
}

static int can_write(rx_conn *c) { return !(c->flags & (RX_F_CLOSED | RX_F_CLOSING)); }

/* Output waits in the queue: corked for the turn, or batched. */
static int held(const rx_conn *c) { return (c->flags & (RX_F_CORK | RX_F_BATCH)) != 0; }

/* A batch about to hold more than RX_BATCH_BYTES sends what it held
 * first; the write then goes as usual. Returns 0, or -1 when that send
 * failed (the connection is doomed). */
static int batch_room(rx_conn *c, size_t more) {
  if (!(c->flags & RX_F_BATCH) || c->out_bytes + more <= RX_BATCH_BYTES) return 0;
  rx_batch_end(c);
  return can_write(c) ? 0 : -1;
}

/* Straight to the socket, for a write with nothing queued ahead of it and
 * no transport in the way. Returns the bytes the socket took (all, some or
 * none), or -1 when it failed (the connection is doomed). */
static ssize_t send_now(rx_conn *c, const struct iovec *iov, int cnt) {
  struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
  ssize_t n;
  do n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    c->flags |= RX_F_HUP;
    doom(c, 0);
    return -1;
  }
  if (n > 0 && !(c->flags & RX_F_IDLE_READ)) c->active_ms = rx_now_ms();
  return n;
}

/* Try the socket first when nothing is queued ahead of us: most small
 * replies then cost one syscall and no allocation. What the socket does not
 * take is copied into one queued segment. A transport always writes from
 * the queue: it must be able to offer the same bytes again on a retry. */
int rx_writev(rx_conn *c, const struct iovec *iov, int cnt) {
  if (!can_write(c)) return -1;
  if (rx.held) rx_release(c);
  size_t total = 0, done = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  if (!total) return 0;
  if (batch_room(c, total)) return -1;
  if (append_small(c, iov, cnt, total)) return 0;
  if (!priv(c)->out_head && !held(c) && !c->tr) {
    ssize_t n = send_now(c, iov, cnt);
    if (n < 0) return -1;
    done = (size_t)n;
    if (done == total) return 0;
  }
  size_t left = total - done;
  /* a small write that must wait gets room for more behind it */
  size_t cap = left <= SMALL_WRITE && !c->tr ? SMALL_SEG : left;
  rx_seg *s = malloc(sizeof *s + cap);
  if (!s) {
    doom(c, 0);
    return -1;
  }
  s->cap = (uint32_t)(cap > UINT32_MAX ? UINT32_MAX : cap);
  s->kind = SEG_MEM;
  s->off = 0;
  s->len = left;
  s->buf = NULL;
  s->fd = -1;
  char *dst = s->data;
  for (int i = 0; i < cnt; i++) {
    size_t l = iov[i].iov_len;
    if (done >= l) {
      done -= l;
      continue;
    }
    memcpy(dst, (const char *)iov[i].iov_base + done, l - done);
    dst += l - done;
    done = 0;
  }
  int was_empty = priv(c)->out_head == NULL && !held(c);
  enqueue(c, s);
  if (c->tr && was_empty) { /* a transport writes from the queue (flush_tr) */
    flush(c);
    return (c->flags & RX_F_CLOSED) ? -1 : 0;
  }
  return 0;
}

int rx_write(rx_conn *c, const void *data, size_t len) {
  struct iovec iov = {(void *)data, len};
  return rx_writev(c, &iov, 1);
}

int rx_write_buf(rx_conn *c, rx_buf *b) {
  if (!can_write(c)) return -1;
  if (rx.held) rx_release(c);
  if (batch_room(c, b->len)) return -1;
  if (b->len <= SMALL_WRITE && (priv(c)->out_head || held(c)) && !c->tr) {
    /* small and waiting anyway: a copy is cheaper than a shared reference */
    struct iovec iov = {b->data, b->len};
    return rx_writev(c, &iov, 1);
  }
  size_t done = 0;
  int was_empty = priv(c)->out_head == NULL && !held(c);
  if (was_empty && !c->tr) {
    /* nothing ahead of it: straight to the socket, as rx_writev does (a
     * fan-out with one message in flight then costs each recipient one
     * send, no segment and no reference) */
    struct iovec iov = {b->data, b->len};
    ssize_t n = send_now(c, &iov, 1);
    if (n < 0) return -1;
    done = (size_t)n;
    if (done == b->len) return 0;
  }
  rx_seg *s = malloc(sizeof *s);
  if (!s) { /* part of it may have left: the stream cannot go on torn */
    doom(c, 0);
    return -1;
  }
  rx_buf_retain(b);
  s->kind = SEG_BUF;
  s->cap = 0;
  s->buf = b;
  s->off = done;
  s->len = b->len - done;
  s->fd = -1;
  enqueue(c, s);
  if (was_empty && c->tr) flush(c); /* on_drained is for queues that had to wait */
  return (c->flags & RX_F_CLOSED) ? -1 : 0;
}

int rx_write_file(rx_conn *c, int fd, uint64_t offset, uint64_t len) {
  if (!can_write(c) || !len) {
    close(fd);
    return can_write(c) ? 0 : -1;
  }
  if (rx.held) rx_release(c);
  if (c->flags & RX_F_BATCH) { /* a file is never held: what was held goes first */
    rx_batch_end(c);
    if (!can_write(c)) {
      close(fd);
      return -1;
    }
  }
  rx_seg *s = malloc(sizeof *s);
  if (!s) {
    close(fd);
    return -1;
  }
  s->kind = SEG_FILE;
  s->cap = 0;
  s->fd = fd;
  s->off = offset;
  s->len = len;
  s->buf = NULL;
  int was_empty = priv(c)->out_head == NULL && !held(c);
  enqueue(c, s);
  if (was_empty) flush(c); /* on_drained is for queues that had to wait */
  return (c->flags & RX_F_CLOSED) ? -1 : 0;
}

void rx_hold(void (*fn)(rx_conn *c)) {
  rx.held = fn;
  if (!in_loop && atomic_load(&rx.sleeping)) rx_int_wake(); /* the turn's end releases it */
}

void rx_release(rx_conn *c) {
  void (*fn)(rx_conn *) = rx.held;
  rx.held = NULL; /* first: its own writes must not call it again */
  if (fn) fn(c);
}

void rx_count_writes(rx_conn *c, uint32_t more) {
  if (!priv(c)->out_tail) return; /* all written already: nothing counts as pending */
  priv(c)->out_tail->writes += more;
  c->out_count += more;
}

void rx_cork(rx_conn *c) {
  if (c->flags & (RX_F_CORK | RX_F_CLOSED)) return;
  c->flags |= RX_F_CORK;
  priv(c)->cork_next = rx.corked;
  rx.corked = c;
  if (!in_loop && atomic_load(&rx.sleeping)) rx_int_wake(); /* it flushes the corks */
}

void rx_int_send(rx_conn *c) {
  if (c->flags & RX_F_CLOSED) return;
  if (priv(c)->out_head) {
    if (flush(c) == 0) after_flush(c);
  } else if (c->flags & RX_F_CLOSING) {
    after_flush(c);
  }
}

static void uncork_all(void) {
  if (rx.held) rx_release(NULL);
  while (rx.corked) {
    rx_conn *c = rx.corked;
    rx.corked = priv(c)->cork_next;
    c->flags &= ~RX_F_CORK;
    if (!(c->flags & RX_F_BATCH)) rx_int_send(c); /* a batch sends its own */
  }
}

/* --- the loop -------------------------------------------------------------- */

static void run_resumes(void) {
  /* A snapshot: connections resumed while we run wait for the next turn,
   * so one busy connection cannot starve epoll. */
  rx_conn *c = rx.resume_head;
  rx.resume_head = rx.resume_tail = NULL;
  while (c) {
    rx_conn *next = priv(c)->resume_next;
    c->flags &= ~RX_F_RESUME;
    if (!(c->flags & RX_F_CLOSED) && c->proto && c->proto->on_data) c->proto->on_data(c);
    c = next;
  }
}

static void sweep(void) {
  for (size_t fd = 0; fd < rx.top; fd++) {
    rx_conn *c = rx.table[fd];
    if (!c || !c->timeout_ms) continue;
    if ((c->flags & RX_F_CLOSED) && !(c->flags & RX_F_LINGER)) continue;
    if (rx.now - c->active_ms < c->timeout_ms) continue;
    c->active_ms = rx.now; /* one call per period, even if it declines */
    if (c->proto && c->proto->on_timeout)
      c->proto->on_timeout(c);
    else
      rx_close_now(c);
  }
}

/* A connection about to be freed must not stay on the resume list (it is
 * singly linked; the list is short, and this only runs for the rare dead
 * connection that was resumed in the same turn). */
static void unlist(rx_conn *c) {
  if (!(c->flags & RX_F_RESUME)) return;
  rx_conn **pp = &rx.resume_head, *prev = NULL;
  while (*pp && *pp != c) {
    prev = *pp;
    pp = &priv(*pp)->resume_next;
  }
  if (*pp) {
    *pp = priv(c)->resume_next;
    if (rx.resume_tail == c) rx.resume_tail = prev;
  }
  c->flags &= ~RX_F_RESUME;
}

/* End of turn: on_close, then free (or start lingering). */
static void bury(void) {
  while (rx.dead) {
    rx_conn *list = rx.dead;
    rx.dead = NULL;
    while (list) {
      rx_conn *c = list;
      list = priv(c)->dead_next;
      if (!rx_lingering(c)) {
        if (c->proto && c->proto->on_close) c->proto->on_close(c);
        c->proto = NULL;
        c->udata = NULL;
      }
      if (c->flags & RX_F_LINGER) {
        rx_linger_begin(c);
        continue;
      }
      unlist(c);
      free(c);
    }
  }
}

/* Through a transport a write may wait for input and a read for output
 * space: hand each readiness to whichever side waits for it. */
static uint32_t tr_events(const rx_conn *c, uint32_t e) {
  if ((c->flags & RX_F_TR_WANT_IN) && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
    e |= EPOLLOUT;
  if ((c->flags & RX_F_TR_WANT_OUT) && (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))) e |= EPOLLIN;
  return e;
}

/* One turn: wait for I/O (at most `max_wait` ms), handle it, then resumes,
 * timers, deferred tasks, idle sweep, the turn hook, corked output, and the
 * end-of-turn frees. Called with the lock held. */
static void turn(int max_wait) {
  struct epoll_event evs[256];
  int timeout = (int)(rx.next_sweep > rx.now ? rx.next_sweep - rx.now : 0);
  if (rx.timers_on) timeout = (int)rxt_wait_ms(rx.now, (uint64_t)timeout);
  if (timeout > max_wait) timeout = max_wait;
  atomic_store(&rx.sleeping, 1);
  if (rx.resume_head || rxt_tasks_waiting() || (rx.busy_probe && rx.busy_probe())) timeout = 0;
  uint64_t now_us = rx_int_clock_us(), due = rx_int_batch_due();
  if (due) { /* wake up in time to send a batch still held then */
    uint64_t ms = due > now_us ? (due - now_us + 999) / 1000 : 0;
    if (timeout < 0 || ms < (uint64_t)timeout) timeout = (int)ms;
  }
  rx.sleep_until = timeout < 0 ? UINT64_MAX : now_us + (uint64_t)timeout * 1000u;
  rx_unlock();
  int n = epoll_wait(rx.epfd, evs, 256, timeout);
  rx_lock();
  atomic_store(&rx.sleeping, 0);
  /* held back by a thread while we slept: out before this turn's events */
  if (rx.held) rx_release(NULL);
  rx.now = clock_ms();
  for (int i = 0; i < n; i++) {
    int fd = evs[i].data.fd;
    uint32_t e = evs[i].events;
    if (fd == rx.wakefd) {
      uint64_t v;
      ssize_t r = read(rx.wakefd, &v, sizeof v);
      (void)r;
      continue;
    }
    rx_conn *c = rx.table[fd];
    if (!c) continue;
    if (rx_lingering(c)) {
      rx_linger_data(c);
      continue;
    }
    if (c->flags & RX_F_CLOSED) continue;
    if (e & (EPOLLHUP | EPOLLERR)) c->flags |= RX_F_HUP;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      c->flags &= ~RX_F_DRAINED;
      if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->flags |= RX_F_RDHUP;
    }
    if ((c->flags & RX_F_CONNECTING) && (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
      /* writable (or failed) for the first time: the connect is over */
      c->flags &= ~RX_F_CONNECTING;
      int err = 0;
      socklen_t elen = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
      if (c->proto && c->proto->on_connect) c->proto->on_connect(c, err);
      if (c->flags & RX_F_CLOSED) continue;
    }
    if (c->tr) e = tr_events(c, e);
    if ((e & EPOLLOUT) && priv(c)->out_head) {
      if (flush(c) == 0) after_flush(c);
    }
    if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !(c->flags & RX_F_CLOSED) &&
        c->proto && c->proto->on_data)
      c->proto->on_data(c);
  }
  run_resumes();
  if (rx.timers_on) rxt_run_timers(rx.now);
  rxt_run_tasks();
  if (rx.now >= rx.next_sweep) {
    sweep();
    rx.next_sweep = rx.now + SWEEP_MS;
  }
  if (rx.turn_hook) rx.turn_hook();
  if (rx.batch_head) rx_int_batch_expire(rx_int_clock_us());
  uncork_all();
  bury();
}

int rx_run(void) {
  in_loop = 1;
  rx_lock();
  rx.now = clock_ms();
  rx.next_sweep = rx.now + SWEEP_MS;
  for (;;) {
    if (atomic_load(&rx.stop_requested) && !rx.stopping) rx_begin_shutdown();
    if (rx.stopping) {
      rx_drain_step();
      size_t live = 0; /* plumbing is not waited for: it closes last */
      for (size_t fd = 0; fd < rx.top; fd++)
        if (rx.table[fd] && !(rx.table[fd]->flags & RX_F_PLUMBING)) live++;
      if (!live && !rx.dead) {
        if (rx.plumbing) {
          rx_close_everything();
          bury();
        }
        break;
      }
      if (rx.now >= rx.deadline) {
        rx_close_everything();
        bury();
        if (rx.turn_hook) rx.turn_hook();
        uncork_all();
        bury();
        break;
      }
    }
    turn(rx.stopping ? (rx.drain_done < rx.drain_total ? 10 : 50) : 60000);
  }
  rx.stopping = 0;
  rx.drain_total = rx.drain_done = 0;
  atomic_store(&rx.stop_requested, 0);
  rx_unlock();
  in_loop = 0;
  return 0;
}

int rx_run_once(int max_wait_ms) {
  in_loop = 1;
  rx_lock();
  rx.now = clock_ms();
  if (!rx.next_sweep) rx.next_sweep = rx.now + SWEEP_MS;
  turn(max_wait_ms);
  rx_unlock();
  in_loop = 0;
  return atomic_load(&rx.stop_requested);
}

void rx_set_timers(int on) { rx.timers_on = on != 0; }

int rx_stop_requested(void) { return atomic_load(&rx.stop_requested); }

void rx_clear_stop(void) { atomic_store(&rx.stop_requested, 0); }

/* In a child after fork(): the parent's epoll set and wake-up fd are
 * shared with it, and its connections are not ours. Close them all (without
 * on_close: their state belongs to the parent) and start a fresh loop. The
 * timer heap is kept: timers set before the fork run in the child. */
int rx_after_fork(void) {
  pthread_mutex_init(&rx.lock, NULL);
  rxt_after_fork();
  for (size_t fd = 0; fd < rx.top; fd++) {
    rx_conn *c = rx.table[fd];
    if (!c) continue;
    rx.table[fd] = NULL;
    close(c->fd);
    /* c and its protocol state are the parent's copies: left as they are */
  }
  rx.open = rx.plumbing = 0;
  rx.resume_head = rx.resume_tail = NULL;
  rx.dead = NULL;
  rx.corked = NULL;
  rx.batch_head = rx.batch_tail = NULL;
  rx.stopping = 0;
  /* stop_requested is kept: a SIGTERM that reached this child before now
   * (its handler is inherited) must still stop it. */
  atomic_store(&rx.sleeping, 0);
  close(rx.epfd);
  close(rx.wakefd);
  rx.epfd = epoll_create1(EPOLL_CLOEXEC);
  rx.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (rx.epfd < 0 || rx.wakefd < 0) return -errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = rx.wakefd};
  if (epoll_ctl(rx.epfd, EPOLL_CTL_ADD, rx.wakefd, &ev) < 0) return -errno;
  rx.timers_on = 1;
  return 0;
}
