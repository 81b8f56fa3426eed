/* redis: the Redis pub/sub engine's connections, living in the C loop.
 *
 * Owns: two connections to one Redis server per serving process (one for
 * commands: XADD, PING and the application's commands, pipelined and
 * matched to their replies in order; one that reads the deployment's
 * stream with XREAD BLOCK), their handshake (AUTH, SELECT), health checks
 * (a PING every `ping_ms` with a reply deadline, a deadline on every XREAD),
 * reconnecting with back-off, and the publish queue. Its code lives in
 * two files sharing a private header (redis_eng.h): redis.c (connections,
 * queues, the state machine, this API) and redis_stream.c (reading the
 * stream: position, restarts, entries, the duplicate filter).
 *
 * The design (SPEC-PubSub.md section 7): every publish of the deployment
 * is one entry {channel, message, text flag, origin, seq} XADDed to one
 * stream, and every process reads the whole stream from its own position
 * and delivers each entry to its own subscribers (ps_publish_id_locked,
 * the entry id as message id). A publish waits in an in-order queue until
 * Redis acknowledged its XADD; after a reconnect every unacknowledged one
 * is sent again, in order; readers drop an entry whose (origin, seq) is not
 * above what they already delivered for that origin, which removes the
 * copies a resend makes. So each process sees each message once, in stream
 * order, and each publisher's messages in publish order.
 *
 * Must never: block (connects are non-blocking, host names are resolved in
 * rd_configure, on the caller's thread, never in the loop), call into
 * Python (replies and log lines leave as dispatcher events), or buffer
 * without bound (the publish queue has a count and a byte cap; a reply is
 * at most RD_MAX_REPLY bytes; at most RD_WINDOW bytes of XADDs are in
 * flight).
 *
 * Threads: rd_publish, rd_cmd, rd_cmd_wait, rd_stats and rd_configure may
 * be called from any thread without the big lock (they take it; the loop
 * does the I/O). rd_cmd_wait blocks its caller and must not be called from
 * the loop thread. Everything else runs on the loop thread, lock held. */
#ifndef IODINE_REDIS_H
#define IODINE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "resp.h"

#define RD_MAX_REPLY (64u << 20) /* bytes one reply may take */
#define RD_WINDOW (4u << 20)     /* XADD bytes sent and not yet answered */
#define RD_ORIGINS 4096u         /* publishers a reader remembers (dedup) */

/* Its event kinds, DSP_RD_REPLY and DSP_RD_LOG, are in events.h. */

typedef struct rd_settings {
  const char *host; /* name or address; "unix:/path" for a Unix socket */
  int port;
  const char *user;     /* NULL: none (AUTH password alone) */
  const char *password; /* NULL: no AUTH */
  int db;
  const char *stream;  /* the stream key */
  uint64_t stream_max; /* XADD MAXLEN ~ this */
  uint32_t ping_ms;    /* PING interval */
  uint32_t timeout_ms; /* reply deadline (also: connect) */
  uint32_t backoff_min_ms, backoff_max_ms;
  uint32_t block_ms;  /* XREAD BLOCK */
  size_t queue_max;   /* publishes waiting (and commands waiting) */
  size_t queue_bytes; /* bytes of publishes waiting */
} rd_settings;

/* A reply, parsed: nodes[0] is the top (resp.h's pre-order layout); the
 * strings point into this block. */
typedef struct rd_reply {
  size_t n;
  resp_node *nodes;
} rd_reply;

typedef struct rd_stats {
  int configured;
  int connected;   /* both connections up */
  uint64_t queued; /* publishes not yet acknowledged by Redis */
  uint64_t queued_bytes;
  uint64_t refused;    /* publishes refused (queue full), ever */
  uint64_t delivered;  /* stream entries delivered here */
  uint64_t duplicates; /* stream entries dropped as already seen */
  uint64_t reconnects; /* times the connections were remade */
  uint64_t origin;     /* this process's publisher token */
} rd_stats;

/* Set up (or replace) the engine: copies everything, resolves the host
 * now. Any thread; blocks only on name resolution. 0 or -errno. */
int rd_configure(const rd_settings *s);
/* Forget the engine: close its connections, drop what is queued. */
void rd_unconfigure(void);
/* The serving loop is about to run (server.c's srv_run): connect. */
void rd_start(void);
/* In a child right after fork (server.c's srv_after_fork): a fresh
 * process token, no connections, nothing queued. */
void rd_after_fork(void);

/* Queue a publish. 0, -1 when the queue is full, -2 when no engine is
 * configured. Any thread. */
int rd_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text);
/* Queue a command on the command connection. callback != 0: its reply
 * comes back as DSP_RD_REPLY with that id. 0, -1 queue full, -2 no
 * engine. Any thread. */
int rd_cmd(int argc, const char *const *argv, const size_t *lens, uint64_t callback);
/* The same, waiting up to timeout_ms for the reply. Returns the reply
 * (free it with rd_reply_free) or NULL: *err is -1 queue full, -2 no
 * engine, -3 timeout, -4 called on the loop thread. Not on the loop. */
rd_reply *rd_cmd_wait(int argc, const char *const *argv, const size_t *lens, uint32_t timeout_ms,
                      int *err);
void rd_reply_free(rd_reply *r);
void rd_log_free(char *line);
void rd_get_stats(rd_stats *out);

#endif
