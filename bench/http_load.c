/*
 * bench/http_load.c - a keep-alive HTTP/1.1 load generator cheaper than wrk, so that on a
 * two-core machine the server, not the client, is what runs out of CPU: epoll, non-blocking
 * sockets, one fixed request, libc only, one thread.
 *
 * Build:  cc -O2 -std=c11 -Wall -Wextra -o build/http_load bench/http_load.c
 *
 * Usage:  http_load -p PORT [-c CONNS] [-d SECS] [-w SECS] [-P DEPTH] [-u PATH] [-s PID,...]
 *
 *   -c  connections (default 50), each with one batch of DEPTH requests in flight
 *   -d  measured seconds (default 10, 1..300)      -w  warm-up seconds, not counted (default 1)
 *   -P  requests per write (default 1: plain keep-alive; 16: pipelined like bench/pipeline.lua)
 *   -u  request path (default /)                    -s  server pids whose CPU time to report
 *
 * Closed loop, like wrk: a connection writes its batch, reads until every answer of the batch
 * is complete, records each answer's latency (from the batch's write to the answer's last
 * byte) and writes the next batch. An answer is complete at the end of its head plus its
 * Content-Length; an answer without Content-Length (chunked, or close-delimited) is an error
 * and the connection is reopened, as is a connection the server closes. Non-2xx answers are
 * counted. Loopback (127.0.0.1) only.
 *
 * Prints one line, the same keys as bench/report.lua's plus the CPU figures:
 *   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N max_us=N errors=N non2xx=N
 *         client_cpu_pct=F [server_cpu_pct=F server_us_per_req=F]
 * client_cpu_pct is this process's user+sys time over the measured window (100: its core is
 * saturated, so req/s measures the client); the server figures sum utime+stime of the -s pids
 * (every thread) from /proc over the same window.
 *
 * Latencies go into 1 us buckets up to 1 s (slower answers land in the last bucket; the
 * maximum is kept exactly).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 10000
#define MAX_DEPTH 64
#define MAX_PIDS 64
#define RBUF 65536
#define HIST_US 1000000 /* 1 us buckets up to 1 s */

typedef struct {
  int fd;
  size_t len;       /* bytes in buf not yet consumed */
  int inflight;     /* answers of the current batch still due */
  uint64_t sent_ns; /* when the current batch was written */
  char buf[RBUF];
} conn;

static struct {
  struct sockaddr_in sa;
  int nconns, depth, secs, warmup;
  char req[MAX_DEPTH * 256];
  size_t req_len;
  int pids[MAX_PIDS], npids;
} cfg;

static struct {
  int counting;
  uint64_t requests, errors, non2xx, max_ns;
  uint32_t *hist; /* HIST_US + 1 buckets */
} st;

static conn *conns;
static int ep;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static double cpu_self_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* utime+stime of the -s pids in clock ticks (a process's stat covers all its threads) */
static long long cpu_server_ticks(void) {
  long long total = 0;
  for (int i = 0; i < cfg.npids; i++) {
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", cfg.pids[i]);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')'); /* comm may hold spaces: fields count from its end */
    if (!p) continue;
    unsigned long long ut = 0, stt = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) == 2)
      total += (long long)(ut + stt);
  }
  return total;
}

static int conn_open(conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* a blocking-style connect on loopback: EINPROGRESS completes at once or soon; the first
   * write waits for it through EPOLLOUT below */
  if (connect(c->fd, (struct sockaddr *)&cfg.sa, sizeof cfg.sa) && errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  c->len = 0;
  c->inflight = 0;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_reopen(conn *c) {
  st.errors++;
  if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
  if (conn_open(c)) {
    fprintf(stderr, "http_load: reconnect failed: %s\n", strerror(errno));
    exit(1);
  }
}

/* Write the batch (small: one write takes it all on a fresh loopback socket). */
static void send_batch(conn *c) {
  c->sent_ns = now_ns();
  ssize_t w = write(c->fd, cfg.req, cfg.req_len);
  if (w != (ssize_t)cfg.req_len) {
    conn_reopen(c);
    return;
  }
  c->inflight = cfg.depth;
}

static void record(uint64_t ns) {
  if (!st.counting) return;
  st.requests++;
  if (ns > st.max_ns) st.max_ns = ns;
  uint64_t us = ns / 1000;
  st.hist[us < HIST_US ? us : HIST_US]++;
}

/* Consume every complete answer in c->buf. -1: a malformed or unframed answer. */
static int take_answers(conn *c, uint64_t t) {
  size_t off = 0;
  while (c->inflight > 0) {
    char *b = c->buf + off;
    size_t avail = c->len - off;
    char *end = memmem(b, avail, "\r\n\r\n", 4);
    if (!end) break;
    size_t head = (size_t)(end - b) + 4;
    if (head < 12 || memcmp(b, "HTTP/1.", 7)) return -1;
    long body = -1;
    for (char *l = memchr(b, '\n', head); l && l < b + head;
         l = memchr(l + 1, '\n', (size_t)(b + head - l - 1))) {
      if ((size_t)(b + head - l) > 16 && !strncasecmp(l + 1, "content-length:", 15)) {
        body = strtol(l + 16, NULL, 10);
        break;
      }
    }
    if (body < 0) return -1;
    if (avail < head + (size_t)body) break;
    if (b[9] != '2') st.non2xx += st.counting;
    record(t - c->sent_ns);
    off += head + (size_t)body;
    c->inflight--;
  }
  if (off) {
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
  }
  return 0;
}

static void on_event(conn *c, uint32_t events) {
  if (events & EPOLLOUT) { /* connected: from now on only input matters */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    send_batch(c);
    return;
  }
  ssize_t n = read(c->fd, c->buf + c->len, RBUF - c->len);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) return;
    conn_reopen(c);
    return;
  }
  c->len += (size_t)n;
  if (take_answers(c, now_ns())) {
    fprintf(stderr, "http_load: bad or unframed answer: %.60s\n", c->buf);
    conn_reopen(c);
    return;
  }
  if (c->len == RBUF) { /* an answer bigger than the buffer: not what this tool measures */
    conn_reopen(c);
    return;
  }
  if (c->inflight == 0) send_batch(c);
}

static uint64_t percentile(double q) {
  uint64_t want = (uint64_t)((double)st.requests * q + 0.5), seen = 0;
  if (want == 0) want = 1;
  for (uint64_t us = 0; us <= HIST_US; us++) {
    seen += st.hist[us];
    if (seen >= want) return us;
  }
  return HIST_US;
}

static void usage(void) {
  fprintf(stderr, "usage: http_load -p PORT [-c CONNS] [-d SECS] [-w SECS] [-P DEPTH] [-u PATH] "
                  "[-s PID,...]\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  int port = 0, opt;
  const char *path = "/";
  cfg.nconns = 50;
  cfg.depth = 1;
  cfg.secs = 10;
  cfg.warmup = 1;
  while ((opt = getopt(argc, argv, "p:c:d:w:P:u:s:")) != -1) {
    switch (opt) {
    case 'p': port = atoi(optarg); break;
    case 'c': cfg.nconns = atoi(optarg); break;
    case 'd': cfg.secs = atoi(optarg); break;
    case 'w': cfg.warmup = atoi(optarg); break;
    case 'P': cfg.depth = atoi(optarg); break;
    case 'u': path = optarg; break;
    case 's':
      for (char *s = strtok(optarg, ","); s && cfg.npids < MAX_PIDS; s = strtok(NULL, ","))
        cfg.pids[cfg.npids++] = atoi(s);
      break;
    default: usage();
    }
  }
  if (port < 1 || port > 65535 || cfg.nconns < 1 || cfg.nconns > MAX_CONNS || cfg.depth < 1 ||
      cfg.depth > MAX_DEPTH || cfg.secs < 1 || cfg.secs > 300 || cfg.warmup < 0 ||
      cfg.warmup > 60 || strlen(path) > 100 || path[0] != '/')
    usage();
  cfg.sa.sin_family = AF_INET;
  cfg.sa.sin_port = htons((uint16_t)port);
  cfg.sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char one[256];
  int l = snprintf(one, sizeof one, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
  for (int i = 0; i < cfg.depth; i++) memcpy(cfg.req + (size_t)i * (size_t)l, one, (size_t)l);
  cfg.req_len = (size_t)l * (size_t)cfg.depth;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  st.hist = calloc(HIST_US + 1, sizeof *st.hist);
  conns = calloc((size_t)cfg.nconns, sizeof *conns);
  ep = epoll_create1(0);
  if (!st.hist || !conns || ep < 0) {
    perror("http_load");
    return 1;
  }
  struct rlimit rl;
  if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)cfg.nconns + 16) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  for (int i = 0; i < cfg.nconns; i++)
    if (conn_open(&conns[i])) {
      perror("http_load: connect");
      return 1;
    }
  uint64_t t0 = now_ns();
  uint64_t start = t0 + (uint64_t)cfg.warmup * 1000000000u;
  uint64_t stop = start + (uint64_t)cfg.secs * 1000000000u;
  double cpu0 = 0;
  long long srv0 = 0;
  struct epoll_event evs[512];
  for (;;) {
    uint64_t t = now_ns();
    if (!st.counting && t >= start) { /* the measured window opens */
      st.counting = 1;
      start = t;
      cpu0 = cpu_self_s();
      srv0 = cpu_server_ticks();
    }
    if (t >= stop) break;
    int n = epoll_wait(ep, evs, 512, 10);
    if (n < 0 && errno != EINTR) {
      perror("http_load: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
  }
  uint64_t t1 = now_ns();
  double cpu1 = cpu_self_s();
  long long srv1 = cpu_server_ticks();
  double secs = (double)(t1 - start) / 1e9;
  printf("BENCH requests=%llu duration_us=%llu rps=%.2f p50_us=%llu p99_us=%llu max_us=%llu "
         "errors=%llu non2xx=%llu client_cpu_pct=%.1f",
         (unsigned long long)st.requests, (unsigned long long)((t1 - start) / 1000),
         (double)st.requests / secs, (unsigned long long)percentile(0.50),
         (unsigned long long)percentile(0.99), (unsigned long long)(st.max_ns / 1000),
         (unsigned long long)st.errors, (unsigned long long)st.non2xx, (cpu1 - cpu0) / secs * 100);
  if (cfg.npids) {
    double srv_s = (double)(srv1 - srv0) / (double)sysconf(_SC_CLK_TCK);
    printf(" server_cpu_pct=%.1f server_us_per_req=%.2f", srv_s / secs * 100,
           st.requests ? srv_s * 1e6 / (double)st.requests : 0.0);
  }
  printf("\n");
  return 0;
}
