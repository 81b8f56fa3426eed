/* resp: the Redis protocol (RESP2), bytes only.
 *
 * Owns: recognising one complete reply in a byte buffer (resp_scan, which
 * remembers how far it got, so a reply that arrives in many reads is
 * scanned once, not once per read), turning a complete reply into a flat
 * pre-order array of nodes that point into the caller's buffer
 * (resp_parse), and encoding a command as an array of bulk strings
 * (resp_encode).
 *
 * Shape (picohttpparser's): bytes in, a return code out: the bytes one
 * reply takes (> 0), -1 for bad input, -2 for "need more". The output
 * array is the caller's; nothing here allocates, keeps global state or
 * touches a socket. Pure functions: any thread.
 *
 * Limits (each a documented limit, LIMITS.md "Redis"): a reply nests at
 * most RESP_MAX_DEPTH arrays deep, an array has at most RESP_MAX_ELEMENTS
 * elements, a reply has at most RESP_MAX_NODES nodes in all, a bulk string
 * is at most RESP_MAX_BULK bytes and a line (status, error, integer,
 * length) at most RESP_MAX_LINE bytes. Past any of them the reply is bad
 * (-1): the engine then drops the connection and reconnects rather than
 * buffer without bound. */
#ifndef IODINE_RESP_H
#define IODINE_RESP_H

#include <stddef.h>
#include <stdint.h>

#define RESP_MAX_DEPTH 8
#define RESP_MAX_ELEMENTS (1u << 20)
#define RESP_MAX_NODES (1u << 22)
#define RESP_MAX_BULK (512u << 20)
#define RESP_MAX_LINE 4096u

enum {
  RESP_STATUS = '+', /* str/len: the text */
  RESP_ERROR = '-',  /* str/len: the text */
  RESP_INT = ':',    /* n: the value */
  RESP_BULK = '$',   /* str/len: the bytes; nil when n == -1 */
  RESP_ARRAY = '*',  /* n: element count (the next n subtrees); nil: -1 */
};

typedef struct resp_node {
  int type;        /* one of the RESP_* above */
  int64_t n;       /* integer value, array count, bulk length (-1: nil) */
  const char *str; /* status, error, bulk: into the caller's buffer */
  size_t len;
} resp_node;

/* Scanning state for one reply: zero it (or resp_scan_reset) before the
 * first byte of each reply. */
typedef struct resp_scan_state {
  size_t pos;                   /* bytes of this reply already checked */
  size_t nodes;                 /* nodes seen so far */
  int depth;                    /* open arrays */
  int64_t left[RESP_MAX_DEPTH]; /* elements still to come, per open array */
} resp_scan_state;

static inline void resp_scan_reset(resp_scan_state *s) {
  s->pos = 0;
  s->nodes = 0;
  s->depth = 0;
}

/* Is buf[0..len) the start of one complete reply? Returns its length
 * (> 0), -1 (bad or past a limit), or -2 (need more: call again with the
 * same buffer grown, same state). After a return > 0, s->nodes is the
 * number of nodes resp_parse will need. */
long resp_scan(resp_scan_state *s, const char *buf, size_t len);

/* Fill out[0..cap) with the nodes of the one reply at the start of buf (a
 * reply resp_scan accepted, or any bytes: this checks everything again).
 * Returns the number of nodes (> 0), -1 bad, -2 need more, -3 when cap is
 * too small. *used gets the reply's length in bytes. */
long resp_parse(const char *buf, size_t len, resp_node *out, size_t cap, size_t *used);

/* Encode a command of argc arguments as RESP (an array of bulk strings).
 * resp_encode_len gives the exact size; resp_encode writes it to dst and
 * returns the bytes written. */
size_t resp_encode_len(int argc, const size_t *lens);
size_t resp_encode(char *dst, int argc, const char *const *argv, const size_t *lens);

#endif
