/* reactor: the event loop. One epoll instance owns every socket.
 *
 * Owns: the connection table (fd -> rx_conn), connection ids, each
 * connection's output queue (and holding it back: corked to the end of a
 * turn, or batched across calls), idle timeouts, timers, cross-thread
 * hand-off (rx_defer + an eventfd wake-up), the big lock, and shutdown.
 * Timers and deferred tasks are kept by reactor_timer.c, batches by
 * reactor_batch.c (both private to the reactor).
 *
 * Must never: parse a protocol (that is the rx_proto's job), call into
 * Python, or free a connection anywhere but at the end of a loop turn (so a
 * pointer held during a callback stays valid for the rest of that turn).
 *
 * Threads. The loop thread holds the big lock (rx_lock) at all times except
 * while it waits in epoll_wait and while it runs application code through
 * the dispatcher. Any other thread takes the lock before touching a
 * connection. Connections are named across threads by their 64-bit id
 * (generation << 32 | fd), never by pointer, so a stale id simply finds
 * nothing. */
#ifndef IODINE_REACTOR_H
#define IODINE_REACTOR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rx_conn rx_conn;

/* What a protocol (HTTP, WebSocket, a listener...) does with its
 * connection's events. Every member may be NULL. */
typedef struct rx_proto {
  void (*on_data)(rx_conn *c);     /* readable (or EOF/error to discover) */
  void (*on_drained)(rx_conn *c);  /* output queue fell to empty */
  void (*on_timeout)(rx_conn *c);  /* idle past c->timeout_ms; default: close */
  void (*on_shutdown)(rx_conn *c); /* the server is stopping */
  void (*on_close)(rx_conn *c);    /* last call: free the protocol's state */
  /* an outgoing connect (rx_connect) finished: err 0, or its errno */
  void (*on_connect)(rx_conn *c, int err);
  /* c->sent_total reached c->sent_watch (a marker the protocol set in its
   * output: everything queued before it has been written to the socket) */
  void (*on_sent)(rx_conn *c);
} rx_proto;

/* A shared, immutable, reference-counted byte buffer: framed once, queued on
 * many connections (pub/sub fan-out, static replies). */
typedef struct rx_buf {
  atomic_uint refs;
  size_t len;
  char data[];
} rx_buf;

rx_buf *rx_buf_new(const void *data, size_t len); /* data may be NULL */
void rx_buf_retain(rx_buf *b);
void rx_buf_release(rx_buf *b);

typedef struct rx_seg rx_seg; /* one queued write (private) */

/* The connection's flags: the reactor's own. Other modules set and read
 * them only through the small functions under "connection facts" below
 * (tests/test_code_shape.py checks that no ext/ file but reactor*.c
 * touches c->flags or the queue and list links). */
enum {
  RX_F_CLOSING = 1u << 0, /* close once the output queue is flushed */
  RX_F_CLOSED = 1u << 1,  /* gone: waiting for the end of the turn */
  RX_F_LINGER = 1u << 2,  /* on close: half-close, discard input briefly */
  RX_F_RESUME = 1u << 3,  /* on the resume list (on_data will be re-run) */
  RX_F_LISTENER = 1u << 4,
  RX_F_HUP = 1u << 5,         /* peer hung up or errored */
  RX_F_CORK = 1u << 6,        /* hold output until the end of the turn */
  RX_F_IDLE_READ = 1u << 7,   /* only input resets the idle clock */
  RX_F_UPGRADED = 1u << 8,    /* udata begins with an up_conn (upgrade.h) */
  RX_F_TR_WANT_OUT = 1u << 9, /* a transport read waits for output space */
  RX_F_TR_WANT_IN = 1u << 10, /* a transport write waits for input */
  RX_F_DRAINED = 1u << 11,    /* a short read emptied the socket: skip reads
                               until epoll reports input again */
  RX_F_RDHUP = 1u << 12,      /* epoll saw the peer's FIN or an error: read
                               on until read() says so itself */
  RX_F_CONNECTING = 1u << 13, /* rx_connect: on_connect not called yet */
  RX_F_PLUMBING = 1u << 14,   /* the server's own link, not a client */
  RX_F_BATCH = 1u << 15,      /* output held by rx_batch_begin */
};

/* A transport between a connection and its socket: TLS (tls.h). Without
 * one (c->tr NULL, the usual case) the reactor uses the socket itself, with
 * sendmsg() and sendfile(). A transport's read and write return the bytes
 * moved (> 0) or one of these; they never return 0. */
enum {
  RX_TR_ERROR = -1,      /* end of input, or the connection failed */
  RX_TR_WANT_READ = -2,  /* nothing moves until the socket is readable */
  RX_TR_WANT_WRITE = -3, /* nothing moves until the socket is writable */
};
typedef struct rx_transport {
  long (*read)(rx_conn *c, void *dst, size_t len);
  /* Partial writes are fine. After a WANT_*, the next call must offer at
   * least the same bytes again (the reactor keeps them queued). */
  long (*write)(rx_conn *c, const void *src, size_t len);
  /* The connection is closing (its fd is still open): say goodbye if the
   * connection is healthy, then free c->tr_state. */
  void (*close)(rx_conn *c);
} rx_transport;

/* A connection. Protocols read fd, id, udata, peer, the output counters
 * and the idle limit, and set timeout_ms, sent_watch and tr_state (the
 * comments say when); flags are the reactor's alone (read and set through
 * the calls below), and so are the output queue and the list links, which
 * live past this struct where only the reactor's files see them
 * (reactor_int.h: rx_node). */
struct rx_conn {
  int fd;
  uint32_t gen;
  uint64_t id;
  const rx_proto *proto;
  void *udata;         /* the protocol's state */
  size_t out_bytes;    /* bytes queued, not yet written */
  uint32_t out_count;  /* writes queued: what `pending` reports */
  uint64_t sent_total; /* bytes ever written to the socket (or transport) */
  uint64_t sent_watch; /* call proto->on_sent once sent_total reaches
                              this (0: no marker); the protocol sets it to
                              sent_total + out_bytes to learn when what it
                              has queued so far has left */
  uint32_t flags;      /* private: RX_F_*, through the calls below */
  uint32_t timeout_ms; /* idle limit, 0 = none */
  uint64_t active_ms;  /* last read or write progress */
  char peer[48];       /* peer address, text */
  uint16_t peer_port;
  const rx_transport *tr; /* NULL: plain socket I/O */
  void *tr_state;         /* the transport's state */
};

/* --- lifecycle --------------------------------------------------------- */
int rx_init(void); /* 0 or -errno; call once before anything */
/* Run the loop in this thread until rx_stop() and every connection is gone
 * (or the grace period has passed). Returns 0. */
int rx_run(void);
/* Ask the loop to stop (any thread, async-signal-safe). Connections get
 * on_shutdown, then have `grace_ms` to finish before they are closed;
 * plumbing (rx_mark_plumbing) hears nothing and is closed once nothing
 * else is left. */
void rx_stop(void);
/* The same, but the on_shutdown calls of upgraded connections
 * (RX_F_UPGRADED) are spread evenly over the drain period (rx_set_drain_ms;
 * 0: all at once), and the grace period follows it: a retiring worker's
 * WebSocket clients then reconnect a few at a time. Async-signal-safe. */
void rx_stop_drained(void);
/* Wake the loop out of its wait (any thread, async-signal-safe). */
void rx_wake(void);
void rx_set_drain_ms(uint32_t ms);
/* One loop turn, waiting at most max_wait_ms for I/O (a cluster's master
 * runs turns between looking after its workers). Returns nonzero once a
 * stop was asked. */
int rx_run_once(int max_wait_ms);
int rx_stop_requested(void);
void rx_clear_stop(void);
/* Timers run only where this is on (default on; a master turns it off and
 * keeps its timers for the workers it forks). */
void rx_set_timers(int on);
/* In a child right after fork(): a fresh epoll set, none of the parent's
 * connections (their fds are closed here), timers kept. 0 or -errno. */
int rx_after_fork(void);
void rx_set_grace_ms(uint32_t ms);
int rx_stopping(void);
int rx_in_loop_thread(void);
uint64_t rx_now_ms(void); /* monotonic milliseconds, cached per turn */

void rx_lock(void);
void rx_unlock(void);
/* For a thread other than the loop's, big lock held: release it, wait for
 * rx_broadcast() or `ms`, take it again (a caller re-checks its condition:
 * wake-ups are shared and may be spurious). Never on the loop thread. */
void rx_wait_ms(uint32_t ms);
/* Wake every rx_wait_ms() waiter (big lock held). */
void rx_broadcast(void);

/* Hooks the layers above install (one each). */
void rx_set_turn_hook(void (*fn)(void)); /* end of every loop turn */
/* Returns nonzero when the turn hook has work queued, so epoll must not
 * sleep. */
void rx_set_busy_probe(int (*fn)(void));

/* --- connections ------------------------------------------------------- */
/* Adopt a non-blocking fd. The fd is closed when the connection is. */
rx_conn *rx_attach(int fd, const rx_proto *proto, void *udata);
/* Open an outgoing stream connection (TCP, with TCP_NODELAY, or Unix)
 * without blocking: the connect completes in the background. Writes made
 * meanwhile are queued and leave once it has; a refused or failed connect
 * shows as end of input (rx_read returns -1), and, for a protocol with
 * on_connect, as that call with the errno (on_connect(c, 0) on success,
 * before anything is read or flushed). Lock held. The caller owns
 * the deadline (a peer that never answers the SYN is its business).
 * Returns the connection, or NULL with errno set. */
struct sockaddr;
rx_conn *rx_connect(const struct sockaddr *addr, unsigned addrlen, const rx_proto *proto,
                    void *udata);
rx_conn *rx_find(uint64_t id); /* caller holds the lock; NULL when stale */
/* Sockets attached now, plumbing (rx_mark_plumbing) excepted: clients,
 * outgoing connections, listeners, and lingering ones until they end. */
size_t rx_open_count(void);
/* Ends a batch first: what was held goes out under the protocol that
 * held it. */
void rx_set_proto(rx_conn *c, const rx_proto *proto, void *udata);
/* Route c's I/O through a transport, before c has read or written. */
void rx_set_transport(rx_conn *c, const rx_transport *tr, void *state);
/* Close after the output queue is flushed. */
void rx_close(rx_conn *c);
/* Close at once, dropping queued output. */
void rx_close_now(rx_conn *c);

/* --- connection facts: the only ways to the flags from outside ---------- */
/* Closed, or closing once its output is flushed: nothing more is written. */
static inline int rx_closed(const rx_conn *c) {
  return (c->flags & (RX_F_CLOSED | RX_F_CLOSING)) != 0;
}
/* Closing once its output is flushed (rx_close), not closed yet. */
static inline int rx_closing(const rx_conn *c) {
  return (c->flags & (RX_F_CLOSED | RX_F_CLOSING)) == RX_F_CLOSING;
}
/* The peer hung up or the socket failed (rx_read returned -1, or epoll
 * said so). */
static inline int rx_peer_gone(const rx_conn *c) { return (c->flags & RX_F_HUP) != 0; }
/* On close: half-close and discard the peer's input for a while (LINGER_MS,
 * LINGER_BYTES) instead of closing at once, so input still arriving does
 * not turn our last bytes into a reset. Not after the peer hung up. */
static inline void rx_linger(rx_conn *c) { c->flags |= RX_F_LINGER; }
/* udata begins with an up_conn (upgrade.h): the upgraded-connection calls
 * apply, and a drained stop spreads its on_shutdown (rx_stop_drained). */
static inline void rx_mark_upgraded(rx_conn *c) { c->flags |= RX_F_UPGRADED; }
static inline int rx_upgraded(const rx_conn *c) { return (c->flags & RX_F_UPGRADED) != 0; }
/* Only input resets the idle clock (our own pings are no sign of life). */
static inline void rx_idle_on_read(rx_conn *c) { c->flags |= RX_F_IDLE_READ; }
/* A listening socket: a stop shuts it first (on_shutdown, or a close). */
static inline void rx_mark_listener(rx_conn *c) { c->flags |= RX_F_LISTENER; }
/* The server's own link (a cluster relay), not a client: rx_open_count
 * leaves it out, and a stop neither shuts nor waits for it: it stays open
 * while clients finish (they may still publish through it) and is closed
 * last, when no client is left. Right after rx_attach. */
void rx_mark_plumbing(rx_conn *c);
/* Run c->proto->on_data again soon, without waiting for epoll (data may be
 * waiting in a buffer the protocol paused on). */
void rx_resume(rx_conn *c);
void rx_touch(rx_conn *c); /* reset the idle clock */

/* Read up to len bytes. Returns >0 bytes, 0 when nothing is available now,
 * -1 when the peer closed its side or the socket failed. On -1 the flag
 * RX_F_HUP is set and the connection is left open: the protocol decides
 * whether a response still in flight is flushed first (rx_close) or not.
 * Through a transport too, 0 means nothing is buffered anywhere (TLS holds
 * no decrypted bytes back), so reading until 0 is all edge-triggered epoll
 * asks; a protocol that stops earlier resumes itself (rx_resume), as ever. */
long rx_read(rx_conn *c, void *dst, size_t len);

/* --- output ------------------------------------------------------------ */
/* Hold this connection's output until the end of the loop turn, then send
 * it in one go: answers to pipelined requests share a system call and a
 * TCP segment instead of one each. Any thread holding the lock. */
void rx_cork(rx_conn *c);
/* Hold this connection's output across calls, not just to the end of a
 * loop turn: an application thread answering a connection's pipelined
 * requests one after another holds the answers, and they leave in one
 * write when it ends the batch (rx_batch_end). Only small output is held:
 * a file (rx_write_file), or a write that would take what is held past
 * RX_BATCH_BYTES (reactor_int.h), first sends what was held, then goes as
 * usual; so do rx_close and rx_set_proto. And nothing is held for long:
 * RX_BATCH_MS after the batch began the loop thread sends it, so a thread
 * that blocks (on a slow application call) never keeps answers back. Any
 * thread holding the lock; a no-op on a batched or closing connection. */
void rx_batch_begin(rx_conn *c);
/* Send what the batch held now (a no-op without one). Lock held. */
void rx_batch_end(rx_conn *c);
/* Held-back output: a layer that delays writes to batch them (pub/sub
 * gathers a turn's run of publishes to one channel) registers `fn`; the
 * reactor calls it once, before the next write or graceful close of any
 * connection (passing that connection) and before the turn's corked
 * output (passing NULL), so held-back bytes never fall behind a later
 * write. rx_release runs it now: anyone about to read queue state, and a
 * protocol about to change its own state before its close frame
 * (websocket.c, raw.c: what was held then still goes first). Lock held. */
void rx_hold(void (*fn)(rx_conn *c));
void rx_release(rx_conn *c);
/* The newest queued write counts as `more` further writes in out_count
 * (one buffer that carries several messages). Lock held. */
void rx_count_writes(rx_conn *c, uint32_t more);
/* Each returns 0, or -1 when the connection is closing or closed (nothing
 * queued). Writing is attempted at once; what the socket does not take is
 * queued and flushed as the peer reads. */
struct iovec;
int rx_write(rx_conn *c, const void *data, size_t len);      /* copies */
int rx_writev(rx_conn *c, const struct iovec *iov, int cnt); /* copies */
int rx_write_buf(rx_conn *c, rx_buf *b);                     /* shares: takes a new ref */
/* Queue len bytes of fd from offset, sent with sendfile(). The reactor owns
 * the fd from here on (it is closed when sent or dropped). */
int rx_write_file(rx_conn *c, int fd, uint64_t offset, uint64_t len);

/* --- timers and deferred work ------------------------------------------ */
typedef void (*rx_task_fn)(void *arg);
/* Run fn(arg) on the loop thread at the next turn. Any thread. */
int rx_defer(rx_task_fn fn, void *arg);
/* Run fn(arg) after `ms`, then every `interval_ms` (0: once) for `reps`
 * repetitions (0: forever). Returns a timer id > 0. Any thread.
 * `done(arg)` (may be NULL) runs once when the timer ends or is cancelled. */
uint64_t rx_timer(uint64_t ms, uint64_t interval_ms, uint64_t reps, rx_task_fn fn, rx_task_fn done,
                  void *arg);
void rx_timer_cancel(uint64_t timer_id);

#endif
