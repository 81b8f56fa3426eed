/* Build: make build/test_http_state (the whole core but server.c, ASan+UBSan)
 *
 * The HTTP core's two state machines (http_conn.h), driven the way h11's
 * state tests drive its connection: events in, then the states asserted.
 * A real socketpair and the real reactor carry the bytes; this file plays
 * the client on one end and the application (dsp_next, http_respond...)
 * on the other, with no Python.
 *
 *  - the transition tables: every legal move, and moves that must never
 *    happen (a response completed twice, a head after completion, leaving
 *    DONE);
 *  - request in: HEAD -> APP (no body), HEAD -> BODY -> APP (a body in two
 *    pieces), pipelined requests held back until the response is done;
 *  - response out: NONE -> HEAD_SENT -> DONE, with the framing each head
 *    decides: LENGTH (the application's Content-Length, or ours for a
 *    finished body), CHUNKED (HTTP/1.1 streaming), EOF (HTTP/1.0
 *    streaming: the close ends it), NONE (204, HEAD);
 *  - calls out of order are refused: a body before the head, a second head;
 *  - an error answer ends the connection (DONE, then gone); a broken
 *    WebSocket handshake is answered by the core (426);
 *  - `Expect: 100-continue` is answered in BODY;
 *  - static answers past their queue mark: WAIT until the peer reads;
 *  - an upgrade ends HTTP on the connection: the 101 goes out and the
 *    connection is no longer HTTP's. */
#define _GNU_SOURCE
#include "check.h"
#include "peer.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dispatch.h"
#include "http.h"
#include "http_conn.h"
#include "reactor.h"
#include "sse.h"
#include "websocket.h"

static http_settings settings = {
    .max_head = 8192,
    .max_line = 8192,
    .max_headers = 100,
    .max_body = 1 << 20,
    .spill = 1 << 20,
    .keepalive_ms = 10000,
    .header_timeout_ms = 10000,
    .ws_max_msg = 1 << 20,
    .ping_ms = 30000,
    .max_pending = 1 << 20,
};

/* --- plumbing ------------------------------------------------------------------ */

typedef struct {
  int client;  /* our end of the socketpair */
  uint64_t id; /* the server end's connection id */
} pair;

static pair open_pair(void) {
  int sv[2];
  pair p = {-1, 0};
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) return p;
  rx_lock();
  rx_conn *c = http_attach(sv[0], &settings, "127.0.0.1", 40000);
  p.id = c ? c->id : 0;
  rx_unlock();
  p.client = sv[1];
  return p;
}

static void send_all(int fd, const char *s) { peer_send(fd, s, strlen(s)); }

/* The states of connection id, as one value to compare ("gone" when the
 * connection no longer speaks HTTP). */
typedef struct {
  int gone;
  http_state conn;
  http_resp_state resp;
  http_out_framing framing;
} states;

static states now(uint64_t id) {
  states s = {0};
  rx_lock();
  s.gone = http_conn_states(id, &s.conn, &s.resp, &s.framing) != 0;
  rx_unlock();
  return s;
}

/* The next request event (running the loop until one comes, ~2 s). */
static http_req *next_request(void) {
  for (int i = 0; i < 400; i++) {
    dsp_event *ev = dsp_next(0);
    if (ev) {
      http_req *r = ev->kind == DSP_HTTP_REQUEST ? ev->ptr : NULL;
      dsp_done(ev);
      if (r) return r;
      continue;
    }
    turns(1);
  }
  return NULL;
}

/* Read what the server sent until `want` shows up (or, with want NULL,
 * until end of input); ~2 s at most. Returns the bytes read, NUL-ended. */
static char inbox[65536];
static size_t inbox_len;

static int read_until(int fd, const char *want) {
  inbox_len = 0;
  inbox[0] = 0;
  for (int i = 0; i < 400; i++) {
    turns(1);
    for (;;) {
      ssize_t r = read(fd, inbox + inbox_len, sizeof inbox - 1 - inbox_len);
      if (r == 0) return want == NULL;
      if (r < 0) break;
      inbox_len += (size_t)r;
      inbox[inbox_len] = 0;
    }
    if (want && strstr(inbox, want)) return 1;
  }
  return 0;
}

static int respond(uint64_t id, const char *status, const char *hd, size_t hlen, size_t count,
                   const char *body, int finish) {
  if (finish) return http_respond(id, status, strlen(status), hd, hlen, count, body, strlen(body));
  return http_respond_begin(id, status, strlen(status), hd, hlen, count, body, strlen(body));
}

/* --- the tables ------------------------------------------------------------------- */

static void tables(void) {
  CHECK(http_conn_may(H_HEAD, H_BODY) && http_conn_may(H_HEAD, H_APP) &&
            http_conn_may(H_BODY, H_APP) && http_conn_may(H_APP, H_HEAD) &&
            http_conn_may(H_HEAD, H_WAIT) && http_conn_may(H_WAIT, H_HEAD),
        "the request cycle's moves are legal");
  for (int s = 0; s < H_DONE; s++)
    CHECK(http_conn_may((http_state)s, H_DONE), "state %d may end the connection", s);
  for (int s = 0; s < H_NSTATES; s++)
    CHECK(!http_conn_may(H_DONE, (http_state)s), "DONE is final (not -> %d)", s);
  CHECK(!http_conn_may(H_BODY, H_HEAD) && !http_conn_may(H_APP, H_BODY) &&
            !http_conn_may(H_APP, H_APP) && !http_conn_may(H_WAIT, H_APP),
        "no request parsed while a response is owed, no body without a head");
  CHECK(http_resp_may(RESP_NONE, RESP_HEAD_SENT) && http_resp_may(RESP_HEAD_SENT, RESP_DONE) &&
            http_resp_may(RESP_DONE, RESP_NONE),
        "the response cycle's moves are legal");
  CHECK(!http_resp_may(RESP_NONE, RESP_DONE) && !http_resp_may(RESP_HEAD_SENT, RESP_NONE) &&
            !http_resp_may(RESP_DONE, RESP_HEAD_SENT) && !http_resp_may(RESP_DONE, RESP_DONE) &&
            !http_resp_may(RESP_HEAD_SENT, RESP_HEAD_SENT),
        "no completion without a head, no second head, no second completion");
  CHECK(!http_conn_may(H_NSTATES, H_HEAD) && !http_resp_may(RESP_NSTATES, RESP_NONE),
        "out-of-range states are refused");
}

/* --- request in, response out ----------------------------------------------------- */

static void chunked_cycle(void) {
  pair p = open_pair();
  CHECK(p.id != 0, "attached");
  states s = now(p.id);
  CHECK(!s.gone && s.conn == H_HEAD && s.resp == RESP_NONE, "a new connection waits for a head");
  send_all(p.client, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  http_req *r = next_request();
  CHECK(r != NULL, "the request was dispatched");
  if (!r) return;
  s = now(p.id);
  CHECK(s.conn == H_APP && s.resp == RESP_NONE, "APP, nothing sent yet (conn %d resp %d)", s.conn,
        s.resp);
  CHECK(http_write(p.id, "x", 1) == -1, "no body before the head");
  CHECK(http_finish(p.id) == -1, "no completion before the head");
  CHECK(respond(p.id, "200 OK", "", 0, 0, "hel", 0) == 0, "head sent");
  s = now(p.id);
  CHECK(s.conn == H_APP && s.resp == RESP_HEAD_SENT && s.framing == OUT_CHUNKED,
        "streaming HTTP/1.1 is chunked (resp %d framing %d)", s.resp, s.framing);
  CHECK(respond(p.id, "200 OK", "", 0, 0, "", 0) == -1, "no second head");
  CHECK(http_write(p.id, "lo", 2) >= 0, "body");
  CHECK(http_finish(p.id) == 0, "complete");
  s = now(p.id);
  CHECK(!s.gone && s.conn == H_HEAD && s.resp == RESP_DONE, "keep-alive: back to HEAD, DONE");
  CHECK(http_finish(p.id) == -1 && http_write(p.id, "x", 1) == -1, "nothing after completion");
  CHECK(read_until(p.client, "0\r\n\r\n"), "the chunked body ends");
  CHECK(strstr(inbox, "Transfer-Encoding: chunked\r\n") && strstr(inbox, "3\r\nhel\r\n") &&
            strstr(inbox, "2\r\nlo\r\n"),
        "framed as chunks: %s", inbox);
  http_req_free(r);
  /* the next request starts a new response */
  send_all(p.client, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  r = next_request();
  s = now(p.id);
  CHECK(r && s.conn == H_APP && s.resp == RESP_NONE && s.framing == OUT_NONE,
        "a new request resets the response");
  close(p.client);
  turns(3);
  s = now(p.id);
  CHECK(!s.gone && s.conn == H_APP, "the peer left mid-request: the response is still owed");
  int late = respond(p.id, "200 OK", "", 0, 0, "late", 1);
  CHECK(late == 0 || late == -1, "answered, or refused as gone (%d)", late);
  turns(2);
  CHECK(now(p.id).gone, "then gone");
  http_req_free(r);
}

static void length_cycle(void) {
  pair p = open_pair();
  send_all(p.client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  http_req *r = next_request();
  static const char hd[] = "Content-Length\0"
                           "5";
  CHECK(r && respond(p.id, "200 OK", hd, sizeof hd - 1, 1, "ab", 0) == 0, "head with a length");
  states s = now(p.id);
  CHECK(s.resp == RESP_HEAD_SENT && s.framing == OUT_LENGTH, "the application's length frames it");
  CHECK(http_write(p.id, "cdefgh", 6) >= 0, "more than promised is cut");
  CHECK(http_finish(p.id) == 0, "complete");
  s = now(p.id);
  CHECK(s.gone || s.conn == H_DONE, "a body over its length ends the connection");
  CHECK(read_until(p.client, NULL), "closed");
  CHECK(strstr(inbox, "\r\n\r\nabcde") && !strstr(inbox, "abcdef"), "cut at 5: %s", inbox);
  http_req_free(r);
  close(p.client);

  /* a finished body gets our Content-Length */
  p = open_pair();
  send_all(p.client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  r = next_request();
  CHECK(r && respond(p.id, "200 OK", "", 0, 0, "whole", 1) == 0, "finished at once");
  s = now(p.id);
  CHECK(s.conn == H_HEAD && s.resp == RESP_DONE && s.framing == OUT_LENGTH,
        "whole body: LENGTH, DONE, keep-alive");
  CHECK(read_until(p.client, "whole") && strstr(inbox, "Content-Length: 5\r\n"), "%s", inbox);
  http_req_free(r);
  close(p.client);
  turns(2);
}

static void http10_eof(void) {
  pair p = open_pair();
  send_all(p.client, "GET / HTTP/1.0\r\n\r\n");
  http_req *r = next_request();
  CHECK(r && respond(p.id, "200 OK", "", 0, 0, "part", 0) == 0, "HTTP/1.0 streaming head");
  states s = now(p.id);
  CHECK(s.resp == RESP_HEAD_SENT && s.framing == OUT_EOF, "HTTP/1.0 streaming: EOF framing");
  CHECK(http_finish(p.id) == 0, "complete");
  CHECK(read_until(p.client, NULL), "the close ends the body");
  CHECK(!strstr(inbox, "Transfer-Encoding") && !strstr(inbox, "Content-Length") &&
            strstr(inbox, "Connection: close\r\n") && strstr(inbox, "\r\n\r\npart"),
        "no framing header, close: %s", inbox);
  CHECK(now(p.id).gone, "gone");
  http_req_free(r);
  close(p.client);
}

static void bodiless(void) {
  pair p = open_pair();
  send_all(p.client, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
  http_req *r = next_request();
  CHECK(r && r->is_head && respond(p.id, "200 OK", "", 0, 0, "", 1) == 0, "HEAD answered");
  http_req *r2 = next_request();
  states s = now(p.id);
  CHECK(r2 && !r2->is_head && s.conn == H_APP && s.resp == RESP_NONE,
        "then the pipelined GET, with a fresh response (conn %d resp %d)", s.conn, s.resp);
  CHECK(respond(p.id, "204 No Content", "", 0, 0, "ignored", 0) == 0, "204 head");
  s = now(p.id);
  CHECK(s.resp == RESP_HEAD_SENT && s.framing == OUT_NONE, "204: no framing");
  CHECK(http_finish(p.id) == 0, "complete");
  CHECK(read_until(p.client, "204 No Content") && !strstr(inbox, "ignored") &&
            !strstr(inbox, "chunked"),
        "no body on a 204: %s", inbox);
  http_req_free(r);
  http_req_free(r2);
  close(p.client);
  turns(2);
}

static void body_states(void) {
  pair p = open_pair();
  send_all(p.client, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab");
  turns(5);
  states s = now(p.id);
  CHECK(s.conn == H_BODY, "part of a body: BODY (conn %d)", s.conn);
  CHECK(dsp_next(0) == NULL, "not dispatched before the body is whole");
  send_all(p.client, "cde");
  http_req *r = next_request();
  CHECK(r && r->body_len == 5 && !memcmp(r->body, "abcde", 5), "the body, whole");
  CHECK(now(p.id).conn == H_APP, "then APP");
  http_req_free(r);
  close(p.client);
  turns(3);
}

static void pipelined_held(void) {
  pair p = open_pair();
  send_all(p.client, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  http_req *r = next_request();
  CHECK(r != NULL, "first");
  turns(5);
  CHECK(dsp_next(0) == NULL && now(p.id).conn == H_APP,
        "the second waits while the first is answered");
  CHECK(respond(p.id, "200 OK", "", 0, 0, "one", 1) == 0, "first answered");
  http_req *r2 = next_request();
  CHECK(r2 && memmem(r2->env, r2->env_len, "/2", 2), "then the second");
  CHECK(respond(p.id, "200 OK", "", 0, 0, "two", 1) == 0, "second answered");
  CHECK(read_until(p.client, "two"), "both arrive");
  char *one = strstr(inbox, "one");
  CHECK(one && one < strstr(inbox, "two"), "in order");
  http_req_free(r);
  http_req_free(r2);
  close(p.client);
  turns(2);
}

static void error_answer(void) {
  pair p = open_pair();
  send_all(p.client, "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(read_until(p.client, NULL), "closed after the answer");
  CHECK(!strncmp(inbox, "HTTP/1.1 400 Bad Request\r\n", 26), "400: %s", inbox);
  CHECK(now(p.id).gone, "gone");
  close(p.client);
}

static void expect_continue(void) {
  pair p = open_pair();
  send_all(p.client, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                     "Expect: 100-continue\r\n\r\n");
  CHECK(read_until(p.client, "100 Continue\r\n\r\n"), "100 Continue before the body");
  CHECK(now(p.id).conn == H_BODY, "then BODY, waiting for it");
  send_all(p.client, "abc");
  http_req *r = next_request();
  CHECK(r && r->body_len == 3 && now(p.id).conn == H_APP, "the body, then APP");
  http_req_free(r);
  close(p.client);
  turns(3);
}

static void upgrade_hands_over(void) {
  pair p = open_pair();
  send_all(p.client, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  http_req *r = next_request();
  CHECK(r && r->upgrade != 0, "an upgradeable request");
  CHECK(http_write(p.id, "x", 1) == -1, "no body before a head, upgrade or not");
  CHECK(http_upgrade(p.id, "", 0, 0) == 0, "switched");
  CHECK(now(p.id).gone, "the connection no longer speaks HTTP");
  CHECK(http_respond(p.id, "200 OK", 6, "", 0, 0, "", 0) == -1, "no HTTP answer after it");
  CHECK(read_until(p.client, "\r\n\r\n") && strstr(inbox, "HTTP/1.1 101 Switching Protocols\r\n") &&
            strstr(inbox, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "the 101 with RFC 6455's sample accept value: %s", inbox);
  http_req_free(r);
  close(p.client);
  for (int i = 0; i < 20; i++) { /* its close events, then nothing left */
    dsp_event *ev = dsp_next(0);
    if (ev) dsp_done(ev);
    turns(1);
  }
}

static void broken_handshake(void) {
  pair p = open_pair();
  send_all(p.client, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  CHECK(read_until(p.client, NULL), "answered and closed");
  CHECK(!strncmp(inbox, "HTTP/1.1 426 Upgrade Required\r\n", 31) &&
            strstr(inbox, "Sec-WebSocket-Version: 13\r\n"),
        "426 naming the version we speak: %s", inbox);
  CHECK(now(p.id).gone, "gone");
  close(p.client);
}

/* Static answers queue files: past 16 of them unread, the connection waits
 * (WAIT) until the peer reads, then parses on (HEAD). */
static void static_wait(void) {
  char dir[] = "/tmp/iodine-state-XXXXXX";
  if (!mkdtemp(dir)) return;
  char path[64], root[PATH_MAX];
  snprintf(path, sizeof path, "%s/f.txt", dir);
  FILE *f = fopen(path, "w"); /* 64 KiB: a few of them pass the 256 KiB mark */
  if (f) {
    for (int i = 0; i < 65536 - 4; i++) fputc('a', f);
    fputs("END\n", f);
    fclose(f);
  }
  if (!realpath(dir, root)) return;
  http_settings st = settings;
  st.public_root = root;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) return;
  int small = 4096; /* the kernel takes little: answers queue in the reactor */
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  rx_lock();
  rx_conn *c = http_attach(sv[0], &st, "127.0.0.1", 40001);
  uint64_t id = c ? c->id : 0;
  rx_unlock();
  /* 40 requests, written in one go; the answers stay unread at first */
  static char reqs[40 * 40];
  size_t n = 0;
  for (int i = 0; i < 40; i++)
    n += (size_t)snprintf(reqs + n, sizeof reqs - n, "GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  send_all(sv[1], reqs);
  int waited = 0;
  for (int i = 0; i < 50 && !waited; i++) {
    turns(1);
    waited = now(id).conn == H_WAIT;
  }
  CHECK(waited, "answers queued past the mark: WAIT (conn %d)", now(id).conn);
  CHECK(dsp_next(0) == NULL, "static answers never reach the application");
  /* read everything: the connection drains, parses on, answers the rest */
  size_t cap = 40 * 70000, got = 0, answers = 0;
  char *all = malloc(cap);
  for (int i = 0; all && i < 2000 && answers < 40; i++) {
    turns(1);
    ssize_t r;
    while (got < cap && (r = read(sv[1], all + got, cap - got)) > 0) got += (size_t)r;
    answers = 0;
    for (const char *p = all; (p = memmem(p, got - (size_t)(p - all), "END\n", 4)); p += 4)
      answers++;
  }
  free(all);
  states s = now(id);
  CHECK(answers == 40, "all 40 answered (%zu)", answers);
  CHECK(!s.gone && s.conn == H_HEAD, "drained: back to HEAD (conn %d)", s.conn);
  close(sv[1]);
  turns(3);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  /* what server.c's srv_init registers (server.c is not linked here) */
  http_upgrade_register(&ws_upgrader);
  http_upgrade_register(&sse_upgrader);
  if (rx_init()) {
    printf("rx_init failed\n");
    return 1;
  }
  tables();
  chunked_cycle();
  length_cycle();
  http10_eof();
  bodiless();
  body_states();
  pipelined_held();
  error_answer();
  expect_continue();
  upgrade_hands_over();
  broken_handshake();
  static_wait();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
