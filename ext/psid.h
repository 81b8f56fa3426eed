/* psid: pub/sub message ids, in Redis stream id form "ms-seq".
 *
 * Owns: the id type, its text form (format and a strict parser), ordering,
 * and the next-id rule a sequencer follows. A sequencer (this process alone,
 * a cluster's master, or a Redis stream) hands every message of a channel
 * an id greater than the one before: ms is wall-clock milliseconds that
 * never go back (a clock stepped back keeps the last ms and counts seq up),
 * seq counts within one ms.
 *
 * The text form is canonical: decimal ms, '-', decimal seq, each fitting
 * 64 bits, no sign, no leading zeros (except "0"), nothing else. So
 * parse(format(id)) == id and format(parse(s)) == s for every accepted s,
 * and an id a client echoes back (SSE Last-Event-ID) is exactly one we sent.
 *
 * Must never: read past the given length, allocate, or touch any state:
 * every function is pure and thread-safe. */
#ifndef IODINE_PSID_H
#define IODINE_PSID_H

#include <stddef.h>
#include <stdint.h>

/* {0, 0} means "none": no sequencer ever hands it out. */
typedef struct ps_id {
  uint64_t ms;
  uint64_t seq;
} ps_id;

/* The longest text form: 20 digits, '-', 20 digits. */
#define PS_ID_TEXT_MAX 41

static inline int ps_id_cmp(ps_id a, ps_id b) {
  if (a.ms != b.ms) return a.ms < b.ms ? -1 : 1;
  if (a.seq != b.seq) return a.seq < b.seq ? -1 : 1;
  return 0;
}

static inline int ps_id_none(ps_id a) { return a.ms == 0 && a.seq == 0; }

/* Write the text form into out (no NUL); returns its length. */
size_t ps_id_format(char out[PS_ID_TEXT_MAX], ps_id id);

/* Parse exactly s[0..n) in canonical form. 0 and *out set, or -1 (*out
 * untouched). */
int ps_id_parse(const char *s, size_t n, ps_id *out);

/* The id a sequencer hands out after `last` at wall-clock `now_ms`: never
 * less than or equal to `last`, and never {0, 0}. */
ps_id ps_id_next(ps_id last, uint64_t now_ms);

#endif
