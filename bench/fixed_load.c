/* fixed_load: a fixed number of keep-alive HTTP/1.1 requests, for counting
 * what a server spends per request (perf stat -e instructions, strace -c,
 * callgrind) independently of how loaded the machine is. wrk runs for a
 * time; this runs for a count, so the totals divide exactly.
 *
 * Usage: fixed_load PORT TOTAL [CONNS [DEPTH]]
 *   CONNS connections (default 50), each with DEPTH requests in flight
 *   (default 1: plain keep-alive; 16: pipelined), until TOTAL answers have
 *   arrived in all. Prints "requests=N seconds=S". Loopback only.
 *
 * An answer is counted at the end of its head plus its Content-Length
 * (the hello apps always send one); anything else is an error (exit 1). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 1024
static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

typedef struct {
  int fd;
  char buf[65536];
  size_t len;
  long inflight;
} conn;

static conn cs[MAXC];

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int send_reqs(conn *c, long n) {
  char out[sizeof REQ * 64];
  size_t l = 0;
  for (long i = 0; i < n; i++) {
    memcpy(out + l, REQ, sizeof REQ - 1);
    l += sizeof REQ - 1;
  }
  size_t off = 0;
  while (off < l) {
    ssize_t w = write(c->fd, out + off, l - off);
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  c->inflight += n;
  return 0;
}

/* Answers complete in c->buf: consumed and counted. -1 on a bad answer. */
static long take_answers(conn *c) {
  long got = 0;
  for (;;) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return got;
    size_t head = (size_t)(end - c->buf) + 4;
    char *cl = memmem(c->buf, head, "Content-Length:", 15);
    if (!cl) cl = memmem(c->buf, head, "content-length:", 15);
    if (!cl || memcmp(c->buf, "HTTP/1.1 200", 12)) return -1;
    size_t body = strtoul(cl + 15, NULL, 10);
    if (c->len < head + body) return got;
    memmove(c->buf, c->buf + head + body, c->len - head - body);
    c->len -= head + body;
    c->inflight--;
    got++;
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: fixed_load PORT TOTAL [CONNS [DEPTH]]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  long total = atol(argv[2]);
  int nc = argc > 3 ? atoi(argv[3]) : 50;
  long depth = argc > 4 ? atol(argv[4]) : 1;
  if (nc < 1 || nc > MAXC || depth < 1 || depth > 64 || total < 1 || total > 100000000) {
    fprintf(stderr, "fixed_load: CONNS 1..%d, DEPTH 1..64, TOTAL 1..1e8\n", MAXC);
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct pollfd pf[MAXC];
  for (int i = 0; i < nc; i++) {
    cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(cs[i].fd, (struct sockaddr *)&sa, sizeof sa)) {
      perror("connect");
      return 1;
    }
    pf[i].fd = cs[i].fd;
    pf[i].events = POLLIN;
  }
  long sent = 0, done = 0;
  double t0 = now(), deadline = t0 + 600; /* bounded in time as well as count */
  for (int i = 0; i < nc && sent < total; i++) {
    long n = total - sent < depth ? total - sent : depth;
    if (send_reqs(&cs[i], n)) return 1;
    sent += n;
  }
  while (done < total) {
    if (now() > deadline) {
      fprintf(stderr, "fixed_load: deadline passed at %ld answers\n", done);
      return 1;
    }
    int r = poll(pf, (nfds_t)nc, 10000);
    if (r <= 0) {
      fprintf(stderr, "fixed_load: no answer in 10 s (%ld of %ld)\n", done, total);
      return 1;
    }
    for (int i = 0; i < nc; i++) {
      if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      conn *c = &cs[i];
      ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
      if (n <= 0) {
        fprintf(stderr, "fixed_load: connection %d closed after %ld answers\n", i, done);
        return 1;
      }
      c->len += (size_t)n;
      long got = take_answers(c);
      if (got < 0) {
        fprintf(stderr, "fixed_load: bad answer: %.60s\n", c->buf);
        return 1;
      }
      done += got;
      /* keep DEPTH in flight: refill once the whole batch is answered
       * (the way wrk's pipeline script does) */
      if (c->inflight == 0 && sent < total) {
        long k = total - sent < depth ? total - sent : depth;
        if (send_reqs(c, k)) return 1;
        sent += k;
      }
    }
  }
  printf("requests=%ld seconds=%.3f\n", done, now() - t0);
  return 0;
}
