/* server: see server.h for what this file owns. */
#define _GNU_SOURCE
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "http.h"
#include "http_upgrade.h"
#include "pubsub.h"
#include "reactor.h"
#include "redis.h"
#include "raw.h"
#include "sse.h"
#include "tls.h"
#include "websocket.h"

#define MAX_LISTENERS 64
#define ACCEPT_RETRY_MS 100
#define CAP_RETRY_MS 20
#define WORKER_ACCEPT_BATCH 1 /* bench/workers.sh: 1 spreads a burst evenly */

typedef struct listener {
  http_settings set;
  int fd, is_unix;
  int listening;                /* listen() was called on fd (with SO_REUSEPORT: in srv_run) */
  struct sockaddr_storage addr; /* TCP: where it is bound (the real port) */
  socklen_t addrlen;
  uint64_t conn;  /* attached in this process (0: not attached) */
  char path[108]; /* Unix socket: its file (removed at stop) */
  pid_t pid;      /* the process that attached it */
} listener;

static listener *listeners[MAX_LISTENERS];
static int nlisteners;
static size_t max_conns; /* accepted connections at once (0: not set yet) */
static int reuseport;    /* each worker binds its own socket (SO_REUSEPORT) */
static int accept_batch; /* accepts per turn (0: all waiting; workers: a few) */
static int cap_timer_armed;
static int backlog = SOMAXCONN; /* listen(2) queue length (--backlog) */
static int unix_mode = -1;      /* chmod of new Unix sockets (-1: umask's) */

static void on_accept(rx_conn *lc);

static void retry_accept(void *arg) {
  listener *l = arg;
  rx_conn *c = rx_find(l->conn);
  if (c) rx_resume(c);
}

static void cap_lifted(void *arg) {
  (void)arg;
  cap_timer_armed = 0;
  for (int i = 0; i < nlisteners; i++) {
    rx_conn *c = listeners[i]->conn ? rx_find(listeners[i]->conn) : NULL;
    if (c) rx_resume(c);
  }
}

/* At the connection cap, stop accepting: new connections wait in the
 * kernel's backlog (they are not refused) and we look again shortly. A
 * timer rather than a close hook keeps the reactor ignorant of listeners. */
static int at_cap(void) {
  if (!max_conns || rx_open_count() < max_conns + (size_t)nlisteners) return 0;
  if (!cap_timer_armed) {
    cap_timer_armed = 1;
    rx_timer(CAP_RETRY_MS, 0, 0, cap_lifted, NULL, NULL);
  }
  return 1;
}

/* --- accept balance between workers ------------------------------------------
 * Workers share one listening socket (unless SO_REUSEPORT). The kernel
 * tells every worker about a new connection and the first to call accept
 * gets it: on a lightly loaded machine that is often the same worker, and
 * with keep-alive clients it ends up holding most of the connections while
 * another core idles. So each worker publishes how many connections it
 * holds in a page shared by the cluster (srv_balance_init, before forking),
 * and one holding clearly more than the least loaded worker leaves a new
 * connection to it: it looks again BAL_RETRY_MS later, and takes the
 * connection itself once BAL_MAX_DEFER_MS have passed (the other worker may
 * be busy in a long application call). Counts are published at each
 * accept and every BAL_PUBLISH_MS. */
#define BAL_VACANT UINT32_MAX
#define BAL_RETRY_MS 1
#define BAL_MAX_DEFER_MS 5
#define BAL_PUBLISH_MS 50
static _Atomic uint32_t *bal; /* per process slot: open connections, or BAL_VACANT */
static int bal_slots;
static int bal_me = -1;    /* this worker's slot */
static uint64_t bal_since; /* when this worker began leaving connections (0: not) */
static int bal_timer_armed;

int srv_balance_init(int slots) {
  if (slots <= 0) return -EINVAL;
  void *m = mmap(NULL, (size_t)slots * sizeof *bal, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -errno;
  bal = m;
  bal_slots = slots;
  for (int i = 0; i < slots; i++) atomic_init(&bal[i], BAL_VACANT);
  return 0;
}

static void bal_publish(void *arg) {
  (void)arg;
  if (bal && bal_me >= 0)
    atomic_store_explicit(&bal[bal_me], (uint32_t)rx_open_count(), memory_order_relaxed);
}

static int bal_slot_pending = -1; /* joined, not yet accepting */

void srv_balance_join(int slot) {
  if (bal && slot >= 0 && slot < bal_slots) bal_slot_pending = slot;
}

/* From srv_run, once the listeners are attached: only a worker that can
 * accept may have connections left to it. */
static void bal_start(void) {
  if (bal_slot_pending < 0) return;
  bal_me = bal_slot_pending;
  bal_slot_pending = -1;
  bal_publish(NULL);
  rx_timer(BAL_PUBLISH_MS, BAL_PUBLISH_MS, 0, bal_publish, NULL, NULL);
}

void srv_balance_vacate(int slot) {
  if (bal && slot >= 0 && slot < bal_slots)
    atomic_store_explicit(&bal[slot], BAL_VACANT, memory_order_relaxed);
}

static void bal_retry(void *arg) {
  bal_timer_armed = 0;
  retry_accept(arg);
}

/* 1: leave this connection to a less loaded worker for now. */
static int bal_defer(listener *l) {
  if (!bal || bal_me < 0 || reuseport) return 0;
  bal_publish(NULL);
  uint32_t mine = (uint32_t)rx_open_count(), least = BAL_VACANT;
  for (int i = 0; i < bal_slots; i++) {
    uint32_t n = i == bal_me ? BAL_VACANT : atomic_load_explicit(&bal[i], memory_order_relaxed);
    if (n < least) least = n;
  }
  if (least == BAL_VACANT || mine <= least + 1 + least / 8) {
    bal_since = 0;
    return 0;
  }
  uint64_t now = rx_now_ms();
  if (!bal_since) bal_since = now;
  if (now - bal_since >= BAL_MAX_DEFER_MS) { /* nobody came: ours (the next waits anew) */
    bal_since = 0;
    return 0;
  }
  if (!bal_timer_armed) {
    bal_timer_armed = 1;
    rx_timer(BAL_RETRY_MS, 0, 0, bal_retry, NULL, l);
  }
  return 1;
}

static void on_accept(rx_conn *lc) {
  listener *l = lc->udata;
  for (int taken = 0;; taken++) {
    if (at_cap()) return;
    if (bal_defer(l)) return;
    if (accept_batch && taken == accept_batch) {
      /* Workers share the socket: one that took every waiting connection
       * in one go would end up with all of a burst (all of a client's
       * keep-alive pool). Take one, then let this turn's other work and
       * the other workers' accepts run; we come back next turn. */
      rx_resume(lc);
      return;
    }
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int fd = accept4(lc->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        /* Out of descriptors: edge-triggered epoll will not remind us of
         * the waiting connections, so try again shortly. */
        rx_timer(ACCEPT_RETRY_MS, 0, 0, retry_accept, NULL, l);
      return;
    }
    char peer[48] = "";
    uint16_t port = 0;
    if (sa.ss_family == AF_INET) {
      struct sockaddr_in *in = (struct sockaddr_in *)&sa;
      inet_ntop(AF_INET, &in->sin_addr, peer, sizeof peer);
      port = ntohs(in->sin_port);
    } else if (sa.ss_family == AF_INET6) {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
      /* An IPv4 client of a dual-stack socket is shown as IPv4, as it
       * would be on an IPv4 listener (logs, REMOTE_ADDR, proxy trust). */
      if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
        inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], peer, sizeof peer);
      else
        inet_ntop(AF_INET6, &in6->sin6_addr, peer, sizeof peer);
      port = ntohs(in6->sin6_port);
    }
    if (!l->is_unix) {
      int one = 1; /* responses are written whole: no reason to wait */
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (l->set.service == 1) { /* raw: TLS included, see raw.h */
      if (!raw_attach(fd, &l->set, peer, port)) close(fd);
      continue;
    }
    rx_conn *hc = http_attach(fd, &l->set, peer, port);
    if (!hc) close(fd);
    /* TLS goes in before the first read, which http_attach only queued */
    else if (l->set.tls && tls_attach(hc, l->set.tls))
      rx_close_now(hc);
  }
}

static int stop_told; /* DSP_STOPPING posted in this run */

/* The reactor tells every connection the server is stopping; the first
 * listener to hear it tells the application (its start_shutdown hooks). */
static void listener_shutdown(rx_conn *c) {
  srv_balance_vacate(bal_me); /* accepting no more: nobody should wait for us */
  if (!stop_told) {
    stop_told = 1;
    dsp_post(NULL, DSP_STOPPING, 0, NULL, 0);
  }
  rx_close_now(c);
}

static void listener_close(rx_conn *c) {
  listener *l = c->udata;
  l->fd = -1; /* closed with its connection: this process listens no more */
  l->conn = 0;
}

static const rx_proto listener_proto = {
    .on_data = on_accept, .on_shutdown = listener_shutdown, .on_close = listener_close};

/* Listening sockets are bound once (before any fork) and watched by
 * whichever process runs the loop: a worker, or the single process. A
 * cluster's master never attaches them, so it never accepts. */
static int attach_listeners(void) {
  int n = 0;
  rx_lock();
  for (int i = 0; i < nlisteners; i++) {
    listener *l = listeners[i];
    if (l->fd < 0 || (l->conn && l->pid == getpid() && rx_find(l->conn))) continue;
    if (!l->listening) {
      if (listen(l->fd, backlog) < 0) continue;
      l->listening = 1;
    }
    rx_conn *c = rx_attach(l->fd, &listener_proto, l);
    if (!c) continue;
    rx_mark_listener(c);
    l->conn = c->id;
    l->pid = getpid();
    rx_resume(c); /* connections may be waiting already (edge-triggered) */
    n++;
  }
  rx_unlock();
  return n;
}

/* The composition root: the protocols an HTTP request may upgrade to, in
 * the order they are offered a request (http_upgrade.h). A new one is one
 * line here. */
int srv_init(void) {
  if (http_upgrade_register(&ws_upgrader) || http_upgrade_register(&sse_upgrader)) return -1;
  return rx_init();
}

size_t srv_default_max_connections(void) {
  struct rlimit rl;
  size_t fds = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) fds = (size_t)rl.rlim_cur;
  /* leave room for files being sent, spilled bodies, pipes, logs */
  size_t reserve = fds / 8 < 64 ? 64 : fds / 8;
  return fds > reserve + 16 ? fds - reserve : 16;
}

void srv_set_max_connections(size_t n) { max_conns = n; }

void srv_set_backlog(int n) { backlog = n > 0 ? n : SOMAXCONN; }
void srv_set_unix_mode(int mode) { unix_mode = mode; }

static int open_unix(const char *path, int *out) {
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof un.sun_path) return -ENAMETOOLONG;
  strcpy(un.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  unlink(path); /* a stale socket file from an earlier run */
  if (bind(fd, (struct sockaddr *)&un, sizeof un) < 0 ||
      (unix_mode >= 0 && chmod(path, (mode_t)unix_mode) < 0) || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  *out = fd;
  return 0;
}

static int open_tcp(const char *addr, int port, listener *l, int *bound) {
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  char ps[8];
  snprintf(ps, sizeof ps, "%d", port);
  int rc = getaddrinfo(addr && *addr ? addr : NULL, ps, &hints, &res);
  if (rc) return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
  int err = -EADDRNOTAVAIL;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = -errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* With SO_REUSEPORT the socket is bound (reserving the port) but not
     * listening: a master's socket must not take a share of connections
     * that only workers accept. Workers bind their own (srv_after_fork). */
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || (!reuseport && listen(fd, backlog) < 0)) {
      err = -errno;
      close(fd);
      continue;
    }
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *bound = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                            : ((struct sockaddr_in *)&sa)->sin_port);
    l->addr = sa;
    l->addrlen = len;
    l->listening = !reuseport;
    l->fd = fd;
    freeaddrinfo(res);
    return 0;
  }
  freeaddrinfo(res);
  return err;
}

int srv_listen(const char *addr, int port, const http_settings *settings) {
  int rc = srv_init();
  if (rc) return rc;
  if (nlisteners == MAX_LISTENERS) return -EMFILE;
  listener *l = calloc(1, sizeof *l);
  if (!l) return -ENOMEM;
  l->set = *settings;
  int bound = 0;
  if (addr && !strncmp(addr, "unix:", 5)) {
    l->is_unix = 1;
    rc = open_unix(addr + 5, &l->fd);
    l->listening = 1;
    if (!rc) snprintf(l->path, sizeof l->path, "%s", addr + 5);
  } else {
    rc = open_tcp(addr, port, l, &bound);
  }
  if (rc) {
    free(l);
    return rc;
  }
  listeners[nlisteners++] = l;
  return bound;
}

/* --- signals -------------------------------------------------------------
 * SIGTERM/SIGINT: graceful stop. The process that bound the listeners (a
 * single process, or a cluster's master) shuts them down right in the
 * handler, so connections arriving from then on are refused at once even
 * while the loop thread is still inside a long application call; a worker
 * must not (the sockets are shared: a retiring worker would stop everyone
 * listening), its loop closes its own copies. A second SIGINT, or SIGQUIT,
 * is the fast way out: _exit(0) at once (a master only records it: it
 * must take its workers down first). SIGUSR2 (sent by the master to a
 * worker it retires) is a graceful stop with the drain period. SIGHUP and
 * SIGUSR1 without a master are counted for the application's runtime to
 * pick up (srv_take_reloads). Everything here is async-signal-safe. */
static volatile sig_atomic_t sig_stops;   /* SIGINT/SIGTERM/SIGQUIT received */
static volatile sig_atomic_t sig_fast;    /* a fast exit was asked (master) */
static volatile sig_atomic_t sig_reloads; /* SIGHUP/SIGUSR1 received */
static int sig_owns_listeners = 1;        /* 0 in a worker */
static int sig_is_master;                 /* fast exit is the master's to do */

int srv_listen_fd(int fd, const http_settings *settings) {
  int rc = srv_init();
  if (rc) return rc;
  if (nlisteners == MAX_LISTENERS) return -EMFILE;
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) return -errno;
  if (type != SOCK_STREAM) return -ENOTSOCK;
  listener *l = calloc(1, sizeof *l);
  if (!l) return -ENOMEM;
  l->set = *settings;
  l->addrlen = sizeof l->addr;
  if (getsockname(fd, (struct sockaddr *)&l->addr, &l->addrlen) < 0) {
    free(l);
    return -errno;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  l->fd = fd;
  l->is_unix = l->addr.ss_family == AF_UNIX; /* its file is not ours to remove */
  l->listening = 0; /* listen() again is harmless and covers a bound-only fd */
  listeners[nlisteners++] = l;
  int port = 0;
  if (l->addr.ss_family == AF_INET) port = ntohs(((struct sockaddr_in *)&l->addr)->sin_port);
  if (l->addr.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6 *)&l->addr)->sin6_port);
  return port;
}

/* The overdue stop: once a stop began, a process still running exit_ms
 * later (an application call that never returns: Python cannot interrupt
 * it, on the loop thread or another) is ended from SIGALRM with _exit(0),
 * after removing the files it made. No thread watches: a timer does. The
 * master never arms it (its loop is ours; it kills stuck workers). */
static long exit_ms = -1, exit_retire_ms = -1;
static char pid_path[4096];
static int exit_armed;

static void say_fd2(const char *text) {
  ssize_t r = write(2, text, strlen(text));
  (void)r;
}

static void on_overdue(int sig) {
  (void)sig;
  say_fd2("iodine: still busy after the grace period (an application call did not "
          "return); exiting without it\n");
  if (sig_owns_listeners) {
    for (int i = 0; i < nlisteners; i++)
      if (listeners[i]->is_unix && listeners[i]->path[0]) unlink(listeners[i]->path);
    if (pid_path[0]) unlink(pid_path);
  }
  _exit(0);
}

static void arm_exit(long ms) {
  if (sig_is_master || ms < 0 || exit_armed) return;
  exit_armed = 1;
  struct sigaction sa = {0};
  sa.sa_handler = on_overdue;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
  if (!ms) it.it_value.tv_usec = 1;
  setitimer(ITIMER_REAL, &it, NULL);
}

void srv_set_exit_after(long stop_ms, long retire_ms) {
  exit_ms = stop_ms;
  exit_retire_ms = retire_ms;
}

void srv_set_pid_file(const char *path) {
  snprintf(pid_path, sizeof pid_path, "%s", path ? path : "");
}

void srv_disarm_exit(void) {
  struct itimerval off = {{0, 0}, {0, 0}};
  if (exit_armed) setitimer(ITIMER_REAL, &off, NULL);
  exit_armed = 0;
}

static volatile sig_atomic_t reload_posted;

/* The loop's turn hook: a reload signal becomes a DSP_RELOAD event (posting
 * allocates: not in the handler), then the application's events run. */
static void server_turn(void) {
  if (sig_reloads && !reload_posted) {
    reload_posted = 1;
    dsp_post(NULL, DSP_RELOAD, 0, NULL, 0);
  }
  dsp_turn();
}

static void on_signal(int sig) {
  int saved = errno; /* sem_post may set it; the interrupted code keeps its own */
  if (sig == SIGHUP || sig == SIGUSR1) {
    sig_reloads++;
    rx_wake();
    errno = saved;
    return;
  }
  if (sig == SIGUSR2) {
    rx_stop_drained();
    arm_exit(exit_retire_ms);
    errno = saved;
    return;
  }
  int fast = sig == SIGQUIT || (sig == SIGINT && sig_stops > 0);
  if (fast) {
    if (!sig_is_master) _exit(0);
    sig_fast = 1;
  }
  if (!sig_stops++ && sig_owns_listeners)
    for (int i = 0; i < nlisteners; i++)
      if (listeners[i]->fd >= 0) shutdown(listeners[i]->fd, SHUT_RDWR);
  rx_stop();
  arm_exit(exit_ms);
  errno = saved;
}

static struct {
  int armed;
  struct sigaction old_int, old_term, old_pipe, old_quit, old_usr2, old_hup;
} sig;

void srv_arm_signals(void) {
  if (sig.armed) return;
  struct sigaction sa = {0}, ign = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ign.sa_handler = SIG_IGN;
  sig_stops = sig_fast = 0;
  sigaction(SIGINT, &sa, &sig.old_int);
  sigaction(SIGTERM, &sa, &sig.old_term);
  sigaction(SIGQUIT, &sa, &sig.old_quit);
  sigaction(SIGUSR2, &sa, &sig.old_usr2);
  sigaction(SIGHUP, &sa, &sig.old_hup);
  sigaction(SIGPIPE, &ign, &sig.old_pipe);
  sig.armed = 1;
}

void srv_disarm_signals(void) {
  if (!sig.armed) return;
  sigaction(SIGINT, &sig.old_int, NULL);
  sigaction(SIGTERM, &sig.old_term, NULL);
  sigaction(SIGQUIT, &sig.old_quit, NULL);
  sigaction(SIGUSR2, &sig.old_usr2, NULL);
  sigaction(SIGHUP, &sig.old_hup, NULL);
  sigaction(SIGPIPE, &sig.old_pipe, NULL);
  sig.armed = 0;
}

void srv_catch_usr1(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
}

void srv_set_master(int on) { sig_is_master = on; }
int srv_fast_exit_requested(void) { return sig_fast; }
int srv_stop_signals(void) { return sig_stops; }

int srv_take_reloads(void) {
  int n = sig_reloads;
  sig_reloads = 0; /* a signal landing between the two lines is lost: it
                      asked for the reload this call reports anyway */
  reload_posted = 0;
  return n;
}

void srv_set_drain_ms(uint32_t ms) { rx_set_drain_ms(ms); }

void srv_shutdown_listeners(void) {
  for (int i = 0; i < nlisteners; i++)
    if (listeners[i]->fd >= 0) shutdown(listeners[i]->fd, SHUT_RDWR);
}

void srv_unlink_unix_sockets(void) {
  for (int i = 0; i < nlisteners; i++)
    if (listeners[i]->is_unix && listeners[i]->path[0]) unlink(listeners[i]->path);
}

int srv_run(void (*runner)(void), uint32_t grace_ms) {
  srv_arm_signals(); /* usually already armed, before "Listening" was said */
  attach_listeners();
  bal_start();
  stop_told = 0;
  dsp_restart();
  dsp_set_inline(runner);
  rx_set_turn_hook(server_turn);
  rx_set_busy_probe(runner ? dsp_pending : NULL);
  rx_set_grace_ms(grace_ms);
  rd_start(); /* the Redis engine, if one is configured, connects now */
  rx_run();
  /* The last connections' on_close events were posted by the final loop
   * turn; with no application threads, nobody else will run them. */
  if (runner)
    while (dsp_pending()) runner();
  dsp_stop();
  srv_disarm_signals();
  return 0;
}

void srv_stop(void) {
  rx_stop();
  arm_exit(exit_ms);
}

typedef struct app_timer {
  dsp_actor *actor; /* keeps a timer's firings and its end in order */
  uint64_t task;
} app_timer;

static void timer_fire(void *arg) {
  app_timer *t = arg;
  dsp_post(t->actor, DSP_TASK, 0, NULL, t->task);
}

static void timer_end(void *arg) {
  app_timer *t = arg;
  dsp_post(t->actor, DSP_TASK_END, 0, NULL, t->task);
  dsp_actor_release(t->actor);
  free(t);
}

uint64_t srv_timer(uint64_t ms, uint64_t interval_ms, uint64_t reps, uint64_t task) {
  if (srv_init()) return 0;
  app_timer *t = malloc(sizeof *t);
  if (!t) return 0;
  t->actor = dsp_actor_new();
  t->task = task;
  uint64_t id = t->actor ? rx_timer(ms, interval_ms, reps, timer_fire, timer_end, t) : 0;
  if (!id) {
    dsp_actor_release(t->actor);
    free(t);
  }
  return id;
}

void srv_timer_cancel(uint64_t timer_id) { rx_timer_cancel(timer_id); }

void srv_close_listeners(void) {
  rx_lock();
  for (int i = 0; i < nlisteners; i++) {
    listener *l = listeners[i];
    rx_conn *c = l->conn ? rx_find(l->conn) : NULL;
    if (c) {
      rx_close_now(c);
    } else if (l->fd >= 0) {
      close(l->fd);
      l->fd = -1;
    }
  }
  rx_unlock();
}

/* A worker's own SO_REUSEPORT socket on a listener's address. On failure
 * the inherited (bound, not yet listening) socket is used instead. */
static void own_socket(listener *l) {
  int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (l->addr.ss_family == AF_INET6) /* as the first bind had it (dual stack) */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int));
  if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) < 0 || listen(fd, backlog) < 0) {
    close(fd);
    return;
  }
  close(l->fd);
  l->fd = fd;
  l->listening = 1;
}

int srv_after_fork(void) {
  accept_batch = WORKER_ACCEPT_BATCH;
  sig_owns_listeners = 0; /* shared with the master and the other workers */
  sig_is_master = 0;
  exit_armed = 0; /* a timer is not inherited across fork */
  dsp_after_fork();
  ps_after_fork(); /* a worker's history vouches for what it sees, not its master */
  int rc = rx_after_fork();
  rd_after_fork(); /* a fresh publisher token, no Redis connections */
  for (int i = 0; i < nlisteners; i++) {
    listeners[i]->conn = 0;
    if (reuseport && !listeners[i]->is_unix && listeners[i]->fd >= 0) own_socket(listeners[i]);
  }
  return rc;
}

void srv_set_reuseport(int on) { reuseport = on; }

int srv_master_turn(int max_wait_ms) {
  rx_set_timers(0); /* timers are the workers' (they inherit them) */
  return rx_run_once(max_wait_ms);
}

int srv_stop_requested(void) { return rx_stop_requested(); }
