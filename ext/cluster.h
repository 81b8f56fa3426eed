/* cluster: pub/sub across the processes of one server (a master and its
 * forked workers), relayed by the master over one Unix socketpair per
 * worker.
 *
 * Owns: the relay connections and their frame format
 *
 *   u32 length of the rest | u8 kind (1 = publish) | u8 text |
 *   u32 channel length | channel | message        (integers little-endian)
 *
 * A worker that publishes delivers locally at once (pubsub.c) and sends one
 * frame to the master; the master forwards the same bytes, shared, to every
 * other worker, which delivers locally. Stream sockets keep each
 * publisher's messages in order; every worker gets each message once.
 *
 * Must never: deliver a worker's own message back to it, or buffer without
 * bound (a relay peer more than CL_MAX_QUEUED behind is cut off). */
#ifndef IODINE_CLUSTER_H
#define IODINE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#define CL_MAX_FRAME (256u << 20)
#define CL_MAX_QUEUED (1024ull << 20)

/* Master: adopt its end of worker `slot`'s socketpair. 0 or -1. */
int cl_master_adopt(int fd, int slot);
/* Worker: adopt its end of the socketpair to the master. 0 or -1. */
int cl_worker_adopt(int fd);
/* Send a message to the rest of the cluster (worker: to the master; master:
 * to every worker). Returns 0; -1 when there is no cluster; -2 when it could
 * not be relayed (larger than CL_MAX_FRAME, the relay to the master backed
 * up past CL_MAX_QUEUED, or out of memory). Any thread. */
int cl_publish(const char *channel, size_t clen, const char *msg, size_t mlen, int text);
/* Nonzero in a process that is part of a cluster. */
int cl_active(void);

#endif
