/* history: the last N messages of each channel, with their ids, for
 * resuming subscribers (SSE Last-Event-ID, subscribe(since=...)).
 *
 * Owns: a table of channel histories kept apart from the subscription
 * table (a reconnecting client finds nobody subscribed, and the history
 * must still be there), each a ring of the channel's last `per_channel`
 * messages, and the bounds on all of it: at most `max_channels` channels
 * and `max_bytes` bytes (messages, names and rings, as allocated, counted
 * by hist_bytes). At a bound the channel published to least recently is
 * dropped whole first; a message larger than the whole byte budget is not
 * kept. Whatever leaves a channel's history raises that channel's "floor":
 * the newest id known to be missing. A resume from an id below the floor
 * cannot be complete, and is reported so.
 *
 * Messages are kept in arrival order. The sequencers hand ids in
 * increasing order, so that is id order; a replay visits the entries with
 * id > since in that order.
 *
 * Must never: call into Python, touch a connection, or read the clock.
 * Threads: not thread-safe; pubsub.c calls it with the big lock held. */
#ifndef IODINE_HISTORY_H
#define IODINE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "psid.h"

/* Set the bounds (per_channel 0: off, and everything kept is freed).
 * `seed` keys the hash (clients name channels); `start` is the floor of a
 * channel never seen: the first id this process can vouch for (messages
 * before it were never seen here). Shrinking a bound drops what no longer
 * fits. */
void hist_configure(size_t per_channel, size_t max_channels, size_t max_bytes, uint64_t seed,
                    ps_id start);

/* Nonzero when history is on. */
int hist_enabled(void);

/* Keep a message. 0, or -1 when it was not kept (off, larger than the byte
 * budget, out of memory: the channel's floor then covers it). */
int hist_add(const char *ch, size_t clen, ps_id id, const char *msg, size_t mlen, int text);

/* Called for each kept message of a replay, in order. */
typedef void (*hist_visit_fn)(void *ctx, ps_id id, const char *msg, size_t mlen, int text);

/* Visit every kept message of `ch` with an id after `since`, oldest first;
 * *count gets how many. Returns 1 when that is every message after `since`
 * this process saw (since >= the channel's floor), 0 when some may be
 * missing (history off, or older than what is kept). */
int hist_since(const char *ch, size_t clen, ps_id since, hist_visit_fn visit, void *ctx,
               size_t *count);

/* Drop everything (the bounds stay). */
void hist_clear(void);

/* Start over as a new process that has seen nothing before `start`
 * (a forked worker): everything is dropped and every floor is at least
 * `start`, so a resume from before it reports the gap. */
void hist_restart(ps_id start);

/* For tests and stats. */
size_t hist_bytes(void);
size_t hist_channels(void);
size_t hist_messages(const char *ch, size_t clen);

#endif
