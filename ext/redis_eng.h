/* redis_eng: the Redis engine's state, shared by its two files (private:
 * nothing outside redis.c and redis_stream.c includes it).
 *
 *   redis.c         connections (links), the publish and command queues,
 *                   the engine's state machine, the public rd_* API
 *   redis_stream.c  reading the deployment's stream: where to start, what a
 *                   Redis restart means for the position, decoding entries
 *                   and the duplicate filter
 *
 * Owns: nothing by itself; `eng` is defined in redis.c. Everything here
 * runs on the loop thread or under the big lock, as redis.h says.
 * Must never: be included by any other file. */
#ifndef IODINE_REDIS_ENG_H
#define IODINE_REDIS_ENG_H

#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>

#include "dispatch.h"
#include "pubsub.h"
#include "reactor.h"
#include "redis.h"
#include "resp.h"

#define TICK_MS 50
#define XREAD_COUNT "1000"
#define READ_CHUNK (64u << 10)

enum { E_IDLE, E_WAIT, E_CONNECTING, E_UP };
enum { L_DOWN, L_HANDSHAKE, L_READY };
enum { P_HS, P_PING, P_XADD, P_APP, P_INFO, P_REVRANGE, P_FIRST, P_XREAD };

typedef struct waiter {
  pthread_mutex_t m;
  pthread_cond_t cv;
  int done, refs;
  rd_reply *reply;
} waiter;

typedef struct app_cmd {
  struct app_cmd *next;
  uint64_t cb; /* callback id, 0: no reply wanted */
  waiter *w;   /* or a blocked caller */
  size_t len;
  char data[];
} app_cmd;

typedef struct pub {
  struct pub *next;
  uint64_t acked; /* when Redis acknowledged it (0: not yet) */
  size_t len;
  char data[];
} pub;

typedef struct pend {
  int kind;
  app_cmd *cmd; /* P_APP */
} pend;

typedef struct rd_link {
  const char *name; /* for log lines */
  int reader;
  int state;
  int hs_left; /* handshake replies still to come */
  rx_conn *c;
  char *in;
  size_t in_len, in_cap;
  resp_scan_state sc;
  resp_node *nodes;
  size_t nodes_cap;
  pend *ring;
  size_t r_head, r_len, r_cap;
  uint64_t wait_since; /* last progress while replies are outstanding */
  int ping_out;        /* a PING is outstanding */
  int closing;         /* shutdown: close once nothing is outstanding */
} rd_link;

typedef struct origin_slot {
  uint64_t origin, seq, seen; /* seen: eng.entries when last seen */
  int used;
} origin_slot;

struct rd_engine {
  int configured, started, state, ever_up, positioned, stopping;
  int loop;         /* a serving loop runs (or is about to) in this process */
  dsp_actor *actor; /* the engine's events (replies, log lines) run in order */
  /* settings */
  struct sockaddr_storage addr;
  unsigned addrlen;
  char *user, *password, *stream;
  size_t user_len, password_len, stream_len;
  int db;
  char maxlen[24], dbtext[16];
  uint32_t ping_ms, timeout_ms, backoff_min, backoff_max, block_ms;
  size_t queue_max, queue_bytes;
  char where[160];
  /* tokens */
  uint64_t origin, seq;
  char origin_hex[17];
  /* the publish queue: rhead..head retained (acknowledged), head..tail not */
  pub *rhead, *head, *send, *tail;
  size_t nq, qbytes, inflight;
  size_t nret, rbytes; /* retained */
  /* commands not yet written */
  app_cmd *cmd_head, *cmd_tail;
  size_t ncmd;
  /* connections */
  rd_link cmd, rd;
  uint64_t next_try, backoff, down_since, next_ping, tick;
  int episode_logged; /* a failure was logged in this outage */
  /* the reader */
  ps_id last;
  char run_id[64];     /* the reader's view of Redis's run_id */
  char cmd_run_id[64]; /* the command connection's */
  /* dedup */
  origin_slot origins[RD_ORIGINS];
  size_t norigins;
  /* the refusing episode */
  uint64_t refusing; /* publishes refused since the queue filled */
  uint64_t xadd_errors;
  rd_stats st;
};
extern struct rd_engine eng;

/* Send one command on a link; its reply is expected as `kind`. */
int rd_link_sendv(rd_link *l, int kind, int argc, const char *const *argv, const size_t *lens);
#define SENDV(l, kind, ...)                                                                        \
  do {                                                                                             \
    const char *argv_[] = {__VA_ARGS__};                                                           \
    size_t lens_[sizeof argv_ / sizeof *argv_];                                                    \
    for (size_t i_ = 0; i_ < sizeof argv_ / sizeof *argv_; i_++) lens_[i_] = strlen(argv_[i_]);    \
    rd_link_sendv(l, kind, (int)(sizeof argv_ / sizeof *argv_), argv_, lens_);                     \
  } while (0)

/* A 64-bit mix (the duplicate filter's hash; the origin token's seed). */
static inline uint64_t rd_mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/* redis.c */
void rd_xread(void);     /* the next XREAD BLOCK from eng.last */
void rd_send_pubs(void); /* write queued publishes, within RD_WINDOW */

/* redis_stream.c: the stream connection's replies */
void rd_run_id_of(const resp_node *n, char id[64]);
void rd_on_info(const resp_node *n);
void rd_on_revrange(const resp_node *n, size_t count);
void rd_on_first(const resp_node *n, size_t count);
void rd_on_xread(const resp_node *n, size_t count);

#endif
