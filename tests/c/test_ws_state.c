/* Build: make build/test_ws_state (the whole core but server.c, ASan+UBSan)
 *
 * The WebSocket connection's state machine (websocket.h: OPEN, FAILING,
 * CLOSE_SENT, CLOSED), driven the way h11's state tests drive a
 * connection: frames in from the wire, then the state and the bytes that
 * came out asserted. A real socketpair and the real reactor carry the
 * bytes; this file plays the client (masked frames) on one end and the
 * application (dsp_next, ws_write, ws_close, up_close) on the other, with
 * no Python. The connection is made the real way: an HTTP request, the
 * handshake checks, http_upgrade.
 *
 *  - the transition table: every legal move, and those that must never
 *    happen (back to OPEN, anything after CLOSED, FAILING after our Close);
 *  - OPEN: messages in, pings answered, pongs ignored;
 *  - we close first: OPEN -> CLOSE_SENT, nothing written after it (a second
 *    close, a message, a pong for the peer's ping), the peer's frames after
 *    it dropped, then CLOSED;
 *  - the peer closes first: OPEN -> FAILING, its Close reaches the
 *    application after the messages before it, the application may still
 *    write, its answer echoes the code: -> CLOSE_SENT -> CLOSED;
 *  - a protocol error while earlier messages wait: FAILING, nothing on the
 *    wire until they are handled, then the Close with the error's code
 *    (1002 framing, 1007 bad UTF-8, 1009 too big);
 *  - the peer vanishes: OPEN -> CLOSED;
 *  - an illegal move aborts a debug build (in a forked child). */
#define _GNU_SOURCE
#include "check.h"
#include "peer.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "dispatch.h"
#include "http.h"
#include "reactor.h"
#include "upgrade.h"
#include "http_upgrade.h"
#include "websocket.h"
#include "raw.h"

#define MAX_MSG 4096

static http_settings settings = {
    .max_head = 8192,
    .max_line = 8192,
    .max_headers = 100,
    .max_body = 1 << 20,
    .spill = 1 << 20,
    .keepalive_ms = 10000,
    .header_timeout_ms = 10000,
    .ws_max_msg = MAX_MSG,
    .ws_deflate_min = 1 << 30,
    .ping_ms = 30000,
    .max_pending = 1 << 20,
};

/* --- plumbing ------------------------------------------------------------------ */

/* A client frame (masked, as RFC 6455 requires), appended to out. */
static size_t frame(uint8_t *out, int op, int fin, int rsv, const void *payload, size_t len) {
  static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
  size_t n = 0;
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
  if (len < 126) {
    out[n++] = (uint8_t)(0x80 | len);
  } else {
    out[n++] = 0x80 | 126;
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
  }
  memcpy(out + n, key, 4);
  n += 4;
  const uint8_t *p = payload;
  for (size_t i = 0; payload && i < len; i++) out[n + i] = p[i] ^ key[i & 3];
  return n + (payload ? len : 0);
}

static void send_frame(int fd, int op, const void *payload, size_t len) {
  uint8_t f[256];
  peer_send(fd, f, frame(f, op, 1, 0, payload, len));
}

/* A close payload: the code, then the reason. */
static size_t close_body(uint8_t *out, unsigned code, const char *reason) {
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  size_t rl = strlen(reason);
  memcpy(out + 2, reason, rl);
  return 2 + rl;
}

/* What the server wrote, and whether it ended (EOF). */
static uint8_t wire[1 << 20];
static size_t wire_len;
static int wire_eof;

static void pull(int fd) {
  for (;;) {
    ssize_t r = read(fd, wire + wire_len, sizeof wire - wire_len);
    if (r == 0) wire_eof = 1;
    if (r <= 0) return;
    wire_len += (size_t)r;
  }
}

/* Server frames (unmasked) in `wire`, in order. */
typedef struct {
  int op;
  size_t len;
  const uint8_t *p;
} sframe;

static size_t frames(sframe *out, size_t max) {
  size_t n = 0, at = 0;
  while (n < max && wire_len - at >= 2) {
    size_t len = wire[at + 1] & 0x7f, hl = 2;
    if (len == 126) {
      if (wire_len - at < 4) break;
      len = (size_t)wire[at + 2] << 8 | wire[at + 3];
      hl = 4;
    } else if (len == 127) {
      if (wire_len - at < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | wire[at + 2 + i];
      hl = 10;
    }
    if (wire_len - at - hl < len) break;
    out[n++] = (sframe){wire[at] & 0x0f, len, wire + at + hl};
    at += hl + len;
  }
  return n;
}

/* Run the loop and read until the server's output ends (~2 s). */
static int read_to_eof(int fd) {
  for (int i = 0; i < 400 && !wire_eof; i++) {
    turns(1);
    pull(fd);
  }
  return wire_eof;
}

/* An application event, taken off the queue and finished (its payload,
 * if any, is the caller's: ws_msg_done). */
typedef struct {
  int kind;
  void *ptr;
  uint64_t arg;
} event;

static event next_event(void) {
  for (int i = 0; i < 400; i++) {
    dsp_event *ev = dsp_next(0);
    if (ev) {
      event e = {ev->kind, ev->ptr, ev->arg};
      dsp_done(ev);
      return e;
    }
    turns(1);
  }
  return (event){0, NULL, 0};
}

static int msg_is(event e, const char *text) {
  ws_msg *m = e.ptr;
  int ok = e.kind == DSP_MESSAGE && m && m->len == strlen(text) && !memcmp(m->data, text, m->len);
  if (e.kind == DSP_MESSAGE) ws_msg_done(m);
  return ok;
}

/* The state of connection id; -1 once it is no (longer a) WebSocket. */
static int state(uint64_t id) {
  ws_state s;
  rx_lock();
  int r = ws_state_of(id, &s);
  rx_unlock();
  return r ? -1 : (int)s;
}

typedef struct {
  int client;
  uint64_t id;
} pair;

/* A WebSocket connection, the real way: request, handshake, upgrade. With
 * `tight`, the kernel buffers are small, so output queues in the reactor. */
static pair open_ws(int tight) {
  pair p = {-1, 0};
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) return p;
  if (tight) {
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  rx_lock();
  rx_conn *c = http_attach(sv[0], &settings, "127.0.0.1", 40000);
  p.id = c ? c->id : 0;
  rx_unlock();
  p.client = sv[1];
  static const char hs[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  peer_send(p.client, hs, sizeof hs - 1);
  event e = next_event();
  if (e.kind != DSP_HTTP_REQUEST) return (pair){-1, 0};
  http_req_free(e.ptr);
  if (http_upgrade(p.id, "", 0, 0)) return (pair){-1, 0};
  e = next_event();
  if (e.kind != DSP_OPEN) return (pair){-1, 0};
  /* the 101's head, then nothing: the wire starts empty */
  wire_len = 0;
  wire_eof = 0;
  for (int i = 0; i < 400 && !memmem(wire, wire_len, "\r\n\r\n", 4); i++) {
    turns(1);
    pull(p.client);
  }
  uint8_t *end = memmem(wire, wire_len, "\r\n\r\n", 4);
  if (!end) return (pair){-1, 0};
  size_t head = (size_t)(end + 4 - wire);
  memmove(wire, wire + head, wire_len - head);
  wire_len -= head;
  return p;
}

/* --- the table ------------------------------------------------------------------ */

static void table(void) {
  CHECK(ws_may(WS_OPEN, WS_FAILING) && ws_may(WS_OPEN, WS_CLOSE_SENT) &&
            ws_may(WS_FAILING, WS_CLOSE_SENT),
        "the close handshake's moves are legal");
  for (int s = 0; s < WS_CLOSED; s++)
    CHECK(ws_may((ws_state)s, WS_CLOSED), "the socket may end in state %d", s);
  for (int s = 0; s < WS_NSTATES; s++) {
    CHECK(!ws_may((ws_state)s, WS_OPEN), "nothing goes back to OPEN (from %d)", s);
    CHECK(!ws_may(WS_CLOSED, (ws_state)s), "CLOSED is final (not -> %d)", s);
    CHECK(!ws_may((ws_state)s, (ws_state)s), "no move to the same state (%d)", s);
  }
  CHECK(!ws_may(WS_CLOSE_SENT, WS_FAILING), "after our Close, input no longer fails");
  CHECK(!ws_may(WS_NSTATES, WS_CLOSED) && !ws_may(WS_OPEN, WS_NSTATES),
        "out-of-range states are refused");
}

/* The WebSocket client's side (raw.c): the same close handshake seen from
 * the client, whose input may also end after its Close (the server's
 * answer, then its FIN). The wire behaviour is driven by tests/raw. */
static void client_table(void) {
  CHECK(raw_may(RAW_CONNECTING, RAW_OPEN) && raw_may(RAW_OPEN, RAW_CLOSE_SENT) &&
            raw_may(RAW_OPEN, RAW_EOF) && raw_may(RAW_CLOSE_SENT, RAW_EOF),
        "client: the legal moves");
  for (int s = 0; s < RAW_NSTATES; s++) {
    CHECK(!raw_may((raw_state)s, RAW_CONNECTING), "client: nothing goes back to CONNECTING (%d)",
          s);
    CHECK(!raw_may(RAW_EOF, (raw_state)s), "client: EOF is final (not -> %d)", s);
    CHECK(!raw_may((raw_state)s, (raw_state)s), "client: no move to the same state (%d)", s);
  }
  CHECK(!raw_may(RAW_CONNECTING, RAW_CLOSE_SENT) && !raw_may(RAW_CLOSE_SENT, RAW_OPEN),
        "client: no Close before the handshake, no reopening after it");
  CHECK(!raw_may(RAW_NSTATES, RAW_EOF) && !raw_may(RAW_OPEN, RAW_NSTATES),
        "client: out-of-range states are refused");
}

/* --- OPEN ------------------------------------------------------------------------- */

static void open_state(void) {
  pair p = open_ws(0);
  CHECK(p.id != 0, "upgraded");
  CHECK(state(p.id) == WS_OPEN, "a new WebSocket is OPEN");
  send_frame(p.client, 0x1, "hi", 2);
  CHECK(msg_is(next_event(), "hi"), "a message in");
  send_frame(p.client, 0x9, "p1", 2);
  send_frame(p.client, 0xA, "unasked", 7); /* a pong nobody asked for */
  sframe f[4];
  for (int i = 0; i < 400 && frames(f, 4) < 1; i++) {
    turns(1);
    pull(p.client);
  }
  CHECK(ws_write(p.id, "yo", 2, 1) == 0, "a message out");
  for (int i = 0; i < 400 && frames(f, 4) < 2; i++) {
    turns(1);
    pull(p.client);
  }
  size_t n = frames(f, 4);
  CHECK(n == 2 && f[0].op == 0xA && f[0].len == 2 && !memcmp(f[0].p, "p1", 2) && f[1].op == 0x1 &&
            f[1].len == 2 && !memcmp(f[1].p, "yo", 2),
        "the ping's pong, then the message (%zu frames)", n);
  CHECK(dsp_next(0) == NULL && state(p.id) == WS_OPEN, "the pong made no event: still OPEN");
  /* the peer vanishes without a Close: OPEN -> CLOSED */
  close(p.client);
  event e = next_event();
  CHECK(e.kind == DSP_CLOSE, "on_close (%d)", e.kind);
  CHECK(state(p.id) == -1, "gone (CLOSED)");
}

/* --- we close first ----------------------------------------------------------------- */

static void we_close_first(void) {
  pair p = open_ws(1);
  CHECK(p.id != 0, "upgraded");
  /* a big message the peer does not read yet: our output waits in the
   * reactor, and the connection with it */
  static char big[200000];
  memset(big, 'b', sizeof big);
  CHECK(ws_write(p.id, big, sizeof big, 0) == 0, "a big message queued");
  CHECK(ws_close(p.id, 1000, "bye", 3) == 0, "our close");
  CHECK(state(p.id) == WS_CLOSE_SENT, "OPEN -> CLOSE_SENT (%d)", state(p.id));
  CHECK(up_is_open(p.id) == 0 && up_pending(p.id) == -1, "closing, for the shared calls");
  CHECK(ws_write(p.id, "late", 4, 1) == -1, "nothing written after our Close");
  CHECK(ws_close(p.id, 1001, "again", 5) == -1, "a second close is refused");
  /* the peer talks on: its frames are dropped, its ping is not answered */
  send_frame(p.client, 0x1, "after", 5);
  send_frame(p.client, 0x9, "p2", 2);
  turns(5);
  CHECK(dsp_next(0) == NULL, "no message after our Close");
  CHECK(state(p.id) == WS_CLOSE_SENT, "still CLOSE_SENT while output waits");
  /* the peer reads: our output leaves, then the connection ends */
  CHECK(read_to_eof(p.client), "half-closed after the Close");
  sframe f[8];
  size_t n = frames(f, 8);
  CHECK(n == 2 && f[0].op == 0x2 && f[0].len == sizeof big && f[1].op == 0x8 && f[1].len == 5 &&
            !memcmp(f[1].p,
                    "\x03\xe8"
                    "bye",
                    5),
        "the message, then one Close 1000 \"bye\", no pong (%zu frames)", n);
  event e = next_event();
  CHECK(e.kind == DSP_CLOSE, "on_close, with no message before it (%d)", e.kind);
  CHECK(state(p.id) == -1, "CLOSE_SENT -> CLOSED");
  close(p.client);
  turns(2);
}

/* --- the peer closes first ------------------------------------------------------------ */

static void peer_closes_first(void) {
  pair p = open_ws(0);
  CHECK(p.id != 0, "upgraded");
  uint8_t buf[512], body[64];
  size_t n = frame(buf, 0x1, 1, 0, "m1", 2);
  n += frame(buf + n, 0x8, 1, 0, body, close_body(body, 1001, "away"));
  n += frame(buf + n, 0x9, 1, 0, "p3", 2); /* after its Close: never read */
  peer_send(p.client, buf, n);
  turns(5);
  CHECK(state(p.id) == WS_FAILING, "the peer's Close: OPEN -> FAILING (%d)", state(p.id));
  pull(p.client);
  CHECK(wire_len == 0, "nothing answered before the application has seen m1");
  CHECK(msg_is(next_event(), "m1"), "the message before the Close, first");
  CHECK(ws_write(p.id, "reply", 5, 1) == 0, "FAILING still writes (answers to m1)");
  event e = next_event();
  ws_msg *m = e.ptr;
  CHECK(e.kind == DSP_FAIL && e.arg == 1001 && m && m->len == 4 && !memcmp(m->data, "away", 4),
        "then the peer's Close: code and reason (%d, %llu)", e.kind, (unsigned long long)e.arg);
  if (m) ws_msg_done(m);
  CHECK(state(p.id) == WS_FAILING, "still FAILING until the application answers");
  CHECK(ws_close(p.id, 1001, "away", 4) == 0, "the application's answer echoes it");
  CHECK(read_to_eof(p.client), "then the end");
  sframe f[8];
  size_t k = frames(f, 8);
  CHECK(k == 2 && f[0].op == 0x1 && f[0].len == 5 && f[1].op == 0x8 && f[1].len == 6 &&
            !memcmp(f[1].p,
                    "\x03\xe9"
                    "away",
                    6),
        "the reply, then the echoed Close, no pong (%zu frames)", k);
  e = next_event();
  CHECK(e.kind == DSP_CLOSE && state(p.id) == -1, "FAILING -> CLOSE_SENT -> CLOSED");
  close(p.client);
  turns(2);
}

/* --- protocol errors ---------------------------------------------------------------- */

/* `bad` (a frame) after two good messages: FAILING, the messages reach the
 * application first, then DSP_FAIL with `code`; its answer (up_close, as
 * the Python layer does) sends the Close. */
static void protocol_error(const char *what, const uint8_t *bad, size_t bad_len, unsigned code) {
  pair p = open_ws(0);
  CHECK(p.id != 0, "%s: upgraded", what);
  uint8_t buf[512];
  size_t n = frame(buf, 0x1, 1, 0, "a", 1);
  n += frame(buf + n, 0x1, 1, 0, "b", 1);
  memcpy(buf + n, bad, bad_len);
  peer_send(p.client, buf, n + bad_len);
  turns(5);
  CHECK(state(p.id) == WS_FAILING, "%s: FAILING (%d)", what, state(p.id));
  pull(p.client);
  CHECK(wire_len == 0, "%s: no Close while earlier messages wait", what);
  CHECK(msg_is(next_event(), "a"), "%s: the first message", what);
  CHECK(ws_write(p.id, "A", 1, 1) == 0, "%s: answered while FAILING", what);
  CHECK(msg_is(next_event(), "b"), "%s: the second", what);
  event e = next_event();
  CHECK(e.kind == DSP_FAIL && e.ptr == NULL && e.arg == code, "%s: then DSP_FAIL %u (%d, %llu)",
        what, code, e.kind, (unsigned long long)e.arg);
  CHECK(up_close(p.id, (unsigned)e.arg) == 0, "%s: the application closes", what);
  CHECK(read_to_eof(p.client), "%s: the end", what);
  sframe f[8];
  size_t k = frames(f, 8);
  uint8_t want[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  CHECK(k == 2 && f[0].op == 0x1 && f[0].len == 1 && f[1].op == 0x8 && f[1].len == 2 &&
            !memcmp(f[1].p, want, 2),
        "%s: the answer, then Close %u (%zu frames)", what, code, k);
  e = next_event();
  CHECK(e.kind == DSP_CLOSE && state(p.id) == -1, "%s: CLOSED", what);
  close(p.client);
  turns(2);
}

static void protocol_errors(void) {
  uint8_t f[64];
  protocol_error("RSV2 set", f, frame(f, 0x1, 1, 2, "x", 1), 1002);
  protocol_error("a continuation with no message", f, frame(f, 0x0, 1, 0, "x", 1), 1002);
  protocol_error("bad UTF-8", f, frame(f, 0x1, 1, 0, "\xc3\x28", 2), 1007);
  /* only the head of a frame over the limit: it fails on the head */
  f[0] = 0x82;
  f[1] = 0x80 | 126;
  f[2] = (uint8_t)((MAX_MSG + 1) >> 8);
  f[3] = (uint8_t)(MAX_MSG + 1);
  memset(f + 4, 0, 4);
  protocol_error("too big", f, 8, 1009);
}

/* --- an illegal move ------------------------------------------------------------------ */

/* In a forked child (the loop is not run there): the move through ws_to.
 * Returns the child's wait status. */
static int move_in_child(uint64_t id, ws_state to) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2); /* the assert's message */
    rx_lock();
    ws_test_move(id, to);
    rx_unlock();
    _exit(0);
  }
  int st = -1;
  if (pid > 0) waitpid(pid, &st, 0);
  return st;
}

static void illegal_move(void) {
  pair p = open_ws(0);
  CHECK(p.id != 0 && state(p.id) == WS_OPEN, "upgraded");
  int st = move_in_child(p.id, WS_FAILING);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a legal move passes (status %d)", st);
#ifndef NDEBUG
  st = move_in_child(p.id, WS_OPEN);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "OPEN -> OPEN aborts (status %d)", st);
  st = move_in_child(p.id, WS_NSTATES);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "out of range aborts (status %d)", st);
#endif
  CHECK(state(p.id) == WS_OPEN, "the parent's connection is untouched");
  close(p.client);
  event e = next_event();
  CHECK(e.kind == DSP_CLOSE, "closed (%d)", e.kind);
}

int main(void) {
  /* what srv_init does in the extension: the upgrades HTTP may hand over */
  http_upgrade_register(&ws_upgrader);
  if (rx_init()) {
    printf("rx_init failed\n");
    return 1;
  }
  table();
  client_table();
  open_state();
  we_close_first();
  peer_closes_first();
  protocol_errors();
  illegal_move();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
