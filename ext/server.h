/* server: listening sockets, accepting connections, signals, and one run of
 * the loop from start to graceful stop.
 *
 * Owns: the listeners (TCP on IPv4/IPv6, Unix sockets) and their per-listener
 * HTTP settings, which live until the process ends because every accepted
 * connection points at them; SIGINT/SIGTERM while the loop runs.
 *
 * Must never: read from an accepted connection (http owns it from accept). */
#ifndef IODINE_SERVER_H
#define IODINE_SERVER_H

#include <stddef.h>
#include <stdint.h>

/* Prepare the core (idempotent). 0 or -errno. */
int srv_init(void);

/* Listen on `addr` ("127.0.0.1", "::", "0.0.0.0", a host name, or
 * "unix:/path") and `port` (0: any free port). Returns the bound port (0
 * for Unix sockets) or -errno. Connections accepted there speak HTTP with
 * the given limits; `tag` names the application that serves them. */
int srv_listen(const char *addr, int port, size_t max_head, size_t max_line,
               size_t max_headers, uint64_t max_body, size_t spill,
               uint32_t keepalive_ms, int tag);

/* Run until SIGINT/SIGTERM or srv_stop(). `runner` non-NULL runs
 * application events on this thread (see dispatch.h); NULL leaves them to
 * application threads calling dsp_next(1). Connections get `grace_ms` to
 * finish after a stop is asked. Returns 0. */
int srv_run(void (*runner)(void), uint32_t grace_ms);
void srv_stop(void);

/* Close every listener (after a run, before the process exits). */
void srv_close_listeners(void);

#endif
