/* server: listening sockets, accepting connections, signals, and one run of
 * the loop from start to graceful stop.
 *
 * Owns: the listeners (TCP on IPv4/IPv6, Unix sockets, inherited
 * descriptors) and their per-listener HTTP settings, which live until the
 * process ends because every accepted connection points at them; the
 * process's stop and reload signals (SIGINT, SIGTERM, SIGQUIT, SIGUSR2,
 * SIGHUP, SIGUSR1 where no master handles them) and the timer that bounds
 * a stop (SIGALRM, armed by the first stop). Handlers only touch
 * sig_atomic_t flags, shutdown(2), the loop's wake-up and _exit.
 *
 * Must never: read from an accepted connection (http owns it from accept). */
#ifndef IODINE_SERVER_H
#define IODINE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* Prepare the core (idempotent). 0 or -errno. */
int srv_init(void);

/* The cap on connections open at once (accepted ones; listeners do not
 * count). At the cap, accepting pauses: newcomers wait in the kernel's
 * backlog until a connection closes. The default leaves an eighth of the
 * open-file limit (at least 64) for files, temp bodies and pipes. */
size_t srv_default_max_connections(void);
void srv_set_max_connections(size_t n);

/* Workers each bind their own socket with SO_REUSEPORT (the kernel spreads
 * connections by hash) instead of sharing the master's. Call before
 * srv_listen. Trade-off: a worker that stops takes the connections queued
 * on its socket with it (they are reset), so rolling restarts are not
 * lossless; the shared socket (default) never refuses. */
void srv_set_reuseport(int on);

/* Bind (and listen on) `addr` ("127.0.0.1", "::", "0.0.0.0", a host name, or
 * "unix:/path") and `port` (0: any free port). Returns the bound port (0
 * for Unix sockets) or -errno. Connections accepted there speak HTTP with
 * the given settings (copied); settings->tag names the application. The
 * socket is watched from the next srv_run, in whichever process runs it. */
int srv_listen(const char *addr, int port, const http_settings *settings);

/* Run until SIGINT/SIGTERM or srv_stop(). `runner` non-NULL runs
 * application events on this thread (see dispatch.h); NULL leaves them to
 * application threads calling dsp_next(1). Connections get `grace_ms` to
 * finish after a stop is asked. Returns 0. */
int srv_run(void (*runner)(void), uint32_t grace_ms);
void srv_stop(void);

/* Catch SIGINT/SIGTERM as "stop gracefully" from now on (idempotent):
 * call it before announcing the server is listening, so a supervisor that
 * signals right after that line gets a graceful stop. srv_run restores the
 * previous handlers when it returns. */
void srv_arm_signals(void);
void srv_disarm_signals(void);
/* What the handlers saw (see server.c "signals"): srv_take_reloads counts
 * SIGHUP (and SIGUSR1 once srv_catch_usr1 routed it here) since the last
 * call; srv_fast_exit_requested is a master's second SIGINT or SIGQUIT;
 * srv_set_master(1) makes those the master's to act on (elsewhere they
 * _exit(0) at once). srv_shutdown_listeners refuses new connections on
 * every listener now (shutdown(2): the descriptors stay valid). */
void srv_catch_usr1(void);
int srv_take_reloads(void);
int srv_fast_exit_requested(void);
int srv_stop_signals(void);
void srv_set_master(int on);
void srv_shutdown_listeners(void);
/* The bound on a stop: from the first stop (signal or srv_stop) a process
 * still alive stop_ms later (retire_ms after SIGUSR2) _exits with status
 * 0 from SIGALRM, removing its Unix socket files and the pid file (set
 * with srv_set_pid_file). -1: not armed. Not in a master. srv_disarm_exit
 * once the process finished its stop normally. */
void srv_set_exit_after(long stop_ms, long retire_ms);
void srv_set_pid_file(const char *path);
void srv_disarm_exit(void);
/* A worker retiring in a rolling restart gets SIGUSR2: its connections'
 * on_shutdown calls are spread over this many ms (reactor.h). */
void srv_set_drain_ms(uint32_t ms);
/* listen(2) backlog for sockets bound from now on (0: SOMAXCONN); the
 * chmod mode of Unix sockets bound from now on (-1: as the umask has it);
 * remove the files of the Unix sockets this process bound (at exit). */
void srv_set_backlog(int n);
void srv_set_unix_mode(int mode);
void srv_unlink_unix_sockets(void);
/* Serve on an inherited, bound socket (--fd N, systemd's LISTEN_FDS):
 * returns its TCP port (0 for a Unix socket) or -errno. */
int srv_listen_fd(int fd, const http_settings *settings);

/* Timers for application tasks: `task` is an id the application keeps;
 * each firing posts DSP_TASK with it, and DSP_TASK_END follows the last
 * one (or a cancel), in order. Any thread, running or not yet running. */
uint64_t srv_timer(uint64_t ms, uint64_t interval_ms, uint64_t reps, uint64_t task);
void srv_timer_cancel(uint64_t timer_id);

/* Close every listener (after a run, before the process exits). */
void srv_close_listeners(void);

/* Workers (see cluster.h for pub/sub between them). The application forks;
 * the core only needs to know:
 *  - srv_after_fork() in each child, at once: a fresh loop, none of the
 *    parent's connections, listeners ready to be attached by srv_run;
 *  - srv_master_turn() in the master, in its own loop between looking after
 *    children: one turn of relay I/O, no timers, no listeners. Returns
 *    nonzero once SIGINT/SIGTERM asked to stop. */
int srv_after_fork(void);
/* Accept balance between workers sharing a listening socket (server.c):
 * the master makes the shared page for `slots` processes before forking;
 * each worker joins with its slot right after srv_after_fork (its count is
 * published from srv_run on, once it can accept); the master vacates a
 * slot when its worker exits. Not used with SO_REUSEPORT. */
int srv_balance_init(int slots);
void srv_balance_join(int slot);
void srv_balance_vacate(int slot);
int srv_master_turn(int max_wait_ms);
int srv_stop_requested(void);

#endif
