/* cluster: pub/sub across the processes of one server (a master and its
 * forked workers), relayed by the master over one Unix socketpair per
 * worker.
 *
 * Owns: the relay connections, their frame format, and sequencing: the
 * master is the sequencer of its server's messages. Frames (integers
 * little-endian):
 *
 *   u32 length of the rest | u8 kind | u8 text | ...
 *   kind 1, publish (worker -> master):
 *     ... | u32 channel length | channel | message
 *   kind 2, sequenced (master -> every worker):
 *     ... | u64 id ms | u64 id seq | u32 channel length | channel | message
 *
 * A worker that publishes sends a kind 1 frame and delivers nothing yet;
 * the master stamps the next id of its sequencer (pubsub.c) and sends the
 * kind 2 frame, shared, to every worker, the publisher included, and each
 * delivers it locally on receipt. The master stamps and writes in one step
 * under the big lock, and each worker's socket is a stream, so every
 * worker sees every message once, in one order, with one id (ids increase
 * in that order). The master's own publishes are stamped and sent the
 * same way.
 *
 * Must never: deliver a message before the master has stamped it, or
 * buffer without bound (a relay peer more than CL_MAX_QUEUED behind is cut off). */
#ifndef IODINE_CLUSTER_H
#define IODINE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

/* Relay slots in the master, one per live worker: a rolling restart holds
 * a slot for each replacement beside its old worker, so at most half of
 * them serve at once (iodine_py/config.py MAX_WORKERS reads this). */
#define CL_MAX_WORKERS 1024
#define CL_MAX_FRAME (256u << 20)
#define CL_MAX_QUEUED (1024ull << 20)

/* Master: adopt its end of worker `slot`'s socketpair. 0 or -1. */
int cl_master_adopt(int fd, int slot);
/* Worker: adopt its end of the socketpair to the master. 0 or -1. */
int cl_worker_adopt(int fd);
/* Publish to every worker of the cluster (worker: through the master,
 * which stamps the id; master: stamped here). Returns 0; -1 when there is no cluster; -2 when it could
 * not be relayed (larger than CL_MAX_FRAME, the relay to the master backed
 * up past CL_MAX_QUEUED, or out of memory). Any thread. */
int cl_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text);
/* Nonzero in a process that is part of a cluster. */
int cl_active(void);

#endif
