/* test_pubsub: pubsub.c alone against a fake protocol, on the real reactor
 * (connections over socketpairs) and the real dispatch queue, no Python.
 *
 * The fake protocol registers its own up_ops and records what pubsub.c
 * asked of it: which forms it made (so "each wire form is made once per
 * publish and shared by every subscriber that needs it" is counted, not
 * assumed), and which connection was handed which buffer, in order. Its
 * write queues the shared buffer for real, so the bytes are read back from
 * the peer sockets at the end. Nothing in pubsub.c knows this protocol
 * exists: that is the point of the operations table.
 *
 * Checked: subscribe / publish / unsubscribe, delivery order, one form per
 * (protocol, variant) per publish across N subscribers, the `as` choice
 * handed through, glob patterns, callback subscriptions (DSP_PUBSUB),
 * a connection closed in the middle of a fan-out, and a closed
 * connection's subscriptions dropped (and the channel notice posted). */
#define _GNU_SOURCE
#include "check.h"

#include <fcntl.h>
#include <sys/socket.h>

#include "dispatch.h"
#include "http.h"
#include "pubsub.h"
#include "reactor.h"
#include "upgrade.h"

/* --- the fake protocol ---------------------------------------------------- */

typedef struct fake_conn {
  up_conn up; /* first, as every upgraded protocol's state */
  rx_conn *c;
  int peer; /* the test's end of the socketpair */
} fake_conn;

#define LOG_MAX 256
static struct {
  int made;   /* forms made (frame calls that filled a slot) */
  int frames; /* frame calls */
  int writes; /* write calls */
  uint64_t write_conn[LOG_MAX];
  rx_buf *write_buf[LOG_MAX];
  int last_as;
  uint64_t close_on_write; /* write to this conn closes `victim` first */
  uint64_t victim;
  unsigned closed_code;
} fake;

static const up_ops fake_ops;

/* Variant = the `as` asked for: so a subscription with another `as` gets
 * (and shares) another form. Its bytes say which form they are. */
static rx_buf *fake_frame(rx_conn *c, ps_delivery *d, int as) {
  (void)c;
  fake.frames++;
  fake.last_as = as;
  rx_buf **slot = ps_form_slot(d, &fake_ops, (unsigned)as);
  if (slot && !*slot) {
    *slot = rx_buf_new(NULL, d->len + 3);
    if (*slot) {
      (*slot)->data[0] = (char)('0' + as);
      (*slot)->data[1] = ':';
      memcpy((*slot)->data + 2, d->msg, d->len);
      (*slot)->data[d->len + 2] = '|';
      fake.made++;
    }
  }
  return slot ? *slot : NULL;
}

static int fake_write(rx_conn *c, rx_buf *b, const ps_delivery *d) {
  (void)d;
  if (fake.close_on_write == c->id && fake.victim) {
    rx_conn *v = rx_find(fake.victim);
    if (v) rx_close_now(v);
  }
  if (fake.writes < LOG_MAX) {
    fake.write_conn[fake.writes] = c->id;
    fake.write_buf[fake.writes] = b;
  }
  fake.writes++;
  return rx_write_buf(c, b);
}

static void fake_close(rx_conn *c, unsigned code) {
  fake.closed_code = code;
  rx_close(c);
}

static const up_ops fake_ops = {
    .name = "fake",
    .frame = fake_frame,
    .write = fake_write,
    .close = fake_close,
};

/* The same protocol, but its write sends the bytes as they are: a run of
 * publishes may reach it as one joined buffer. */
static const up_ops fake_join_ops = {
    .name = "fake-join",
    .frame = fake_frame,
    .write = fake_write,
    .close = fake_close,
    .joinable = 1,
};
static const up_ops *open_ops = &fake_ops; /* what fake_open adopts with */

static void on_data(rx_conn *c) {
  char sink[256];
  while (rx_read(c, sink, sizeof sink) > 0) {
  }
}

static void on_close(rx_conn *c) {
  fake_conn *f = c->udata;
  ps_drop_conn(&f->up);
  dsp_post(f->up.actor, DSP_CLOSE, c->id, NULL, 0);
  dsp_actor_release(f->up.actor);
  free(f);
}

static const rx_proto fake_proto = {.on_data = on_data, .on_close = on_close};

static http_settings set;

/* A fake upgraded connection; *peer gets the test's end. */
static uint64_t fake_open(int *peer) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) return 0;
  fake_conn *f = calloc(1, sizeof *f);
  rx_lock();
  rx_conn *c = rx_attach(sv[0], &fake_proto, NULL);
  uint64_t id = 0;
  if (c && f) {
    f->c = c;
    f->peer = sv[1];
    up_adopt(c, &f->up, open_ops, &set, dsp_actor_new(), &fake_proto, 0);
    id = c->id;
  }
  rx_unlock();
  *peer = sv[1];
  return id;
}

/* End the turn's run of held-back publishes (pubsub.c), as the end of a
 * loop turn or any write would: what it delivers is then on the log. */
static void settle(void) {
  rx_lock();
  rx_release(NULL);
  rx_unlock();
}

/* Run the loop until the queued output has left (bounded). */
static void flush(void) {
  for (int i = 0; i < 20; i++) rx_run_once(0);
}

/* Everything the peer can read now, NUL-terminated. */
static size_t peer_read(int fd, char *out, size_t cap) {
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, out + n, cap - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  out[n] = 0;
  return n;
}

/* Drain the dispatch queue: count events of `kind`, remembering the last
 * DSP_PUBSUB's message text and DSP_PS_CHANNEL's channel. */
static char last_msg[64], last_gone[64];
static int drain(int kind) {
  int n = 0;
  dsp_event *ev = NULL;
  while ((ev = dsp_done_next(ev, 0)) != NULL) {
    if (ev->kind == kind) n++;
    if (ev->kind == DSP_PUBSUB || ev->kind == DSP_PS_CHANNEL) {
      ps_msg *m = ev->ptr;
      if (ev->kind == DSP_PUBSUB)
        snprintf(last_msg, sizeof last_msg, "%s", m->message);
      else
        snprintf(last_gone, sizeof last_gone, "%s", m->channel);
      ps_msg_release(m);
    }
  }
  return n;
}

static void reset_log(void) {
  int keep_as = fake.last_as;
  memset(&fake, 0, sizeof fake);
  fake.last_as = keep_as;
}

/* --- the tests ---------------------------------------------------------------- */

enum { N = 5 };

static void test_fan_out_shares_one_form(void) {
  int peer[N];
  uint64_t id[N];
  for (int i = 0; i < N; i++) id[i] = fake_open(&peer[i]);
  CHECK(id[N - 1] != 0, "connections attached");
  for (int i = 0; i < N; i++) {
    int r = ps_subscribe(id[i], "news", 4, 0, 0);
    CHECK(r == (i == 0 ? 1 : 0), "subscribe %d: %d (1 only for the first)", i, r);
  }
  CHECK(ps_exists("news", 4, 0), "the channel exists");
  reset_log();
  long n = ps_publish("news", 4, "hello", 5, 1);
  CHECK(n == N, "publish reached %ld of %d", n, N);
  CHECK(fake.writes == 0, "held back in the turn's run (%d writes)", fake.writes);
  settle();
  CHECK(fake.made == 1, "one form made for %d subscribers (made %d)", N, fake.made);
  CHECK(fake.frames == N, "asked to frame once per subscriber (%d)", fake.frames);
  CHECK(fake.writes == N, "one write each (%d)", fake.writes);
  int shared = 1;
  for (int i = 1; i < N && i < fake.writes; i++) shared &= fake.write_buf[i] == fake.write_buf[0];
  CHECK(shared, "every subscriber was handed the same buffer");
  /* a second publish makes its own form: forms live for one publish */
  n = ps_publish("news", 4, "again", 5, 1);
  settle();
  CHECK(n == N && fake.made == 2, "second publish: reached %ld, made %d", n, fake.made);
  flush();
  char buf[256];
  for (int i = 0; i < N; i++) {
    peer_read(peer[i], buf, sizeof buf);
    CHECK(!strcmp(buf, "0:hello|0:again|"), "peer %d read '%s' (in order)", i, buf);
  }
  /* unsubscribe one: it gets nothing more, the others still do */
  int64_t cb = ps_unsubscribe(id[0], "news", 4, 0);
  CHECK(cb == 0, "unsubscribe returned callback %lld", (long long)cb);
  CHECK(ps_unsubscribe(id[0], "news", 4, 0) == -1, "a second unsubscribe finds nothing");
  n = ps_publish("news", 4, "third", 5, 0);
  CHECK(n == N - 1, "after unsubscribe: reached %ld", n);
  flush();
  peer_read(peer[0], buf, sizeof buf);
  CHECK(buf[0] == 0, "the unsubscribed peer read nothing ('%s')", buf);
  peer_read(peer[1], buf, sizeof buf);
  CHECK(!strcmp(buf, "0:third|"), "a subscribed peer read '%s'", buf);
  for (int i = 0; i < N; i++) {
    CHECK(up_close(id[i], 1000) == 0, "up_close %d through the ops", i);
    CHECK(fake.closed_code == 1000, "ops.close got code %u", fake.closed_code);
  }
  flush();
  for (int i = 0; i < N; i++) close(peer[i]);
  drain(0);
  CHECK(!ps_exists("news", 4, 0), "the channel went with its last subscriber");
  CHECK(!strcmp(last_gone, "news"), "its gone notice was posted ('%s')", last_gone);
}

static void test_as_variants(void) {
  int pa, pb, pc;
  uint64_t a = fake_open(&pa), b = fake_open(&pb), c = fake_open(&pc);
  ps_subscribe_as(a, "v", 1, 0, 0, PS_AS_TEXT, NULL, NULL);
  ps_subscribe_as(b, "v", 1, 0, 0, PS_AS_BINARY, NULL, NULL);
  ps_subscribe_as(c, "v", 1, 0, 0, PS_AS_TEXT, NULL, NULL);
  reset_log();
  long n = ps_publish("v", 1, "x", 1, 0);
  CHECK(n == 3, "reached %ld", n);
  settle();
  CHECK(fake.made == 2, "two variants, two forms (made %d)", fake.made);
  flush();
  char buf[64];
  peer_read(pa, buf, sizeof buf);
  CHECK(!strcmp(buf, "1:x|"), "PS_AS_TEXT form: '%s'", buf);
  peer_read(pb, buf, sizeof buf);
  CHECK(!strcmp(buf, "2:x|"), "PS_AS_BINARY form: '%s'", buf);
  peer_read(pc, buf, sizeof buf);
  CHECK(!strcmp(buf, "1:x|"), "PS_AS_TEXT form shared: '%s'", buf);
  /* subscribing again replaces: same subscription, new `as` */
  ps_subscribe_as(c, "v", 1, 0, 0, PS_AS_BINARY, NULL, NULL);
  CHECK(ps_sub_count() == 3, "a replace adds no subscription (%zu)", ps_sub_count());
  reset_log();
  ps_publish("v", 1, "y", 1, 0);
  flush();
  peer_read(pc, buf, sizeof buf);
  CHECK(!strcmp(buf, "2:y|"), "the replaced subscription's form: '%s'", buf);
  CHECK(fake.made == 2, "still two forms (made %d)", fake.made);
  up_close(a, 1000);
  up_close(b, 1000);
  up_close(c, 1000);
  flush();
  close(pa);
  close(pb);
  close(pc);
  drain(0);
}

static void test_patterns_and_callbacks(void) {
  int pa, pb;
  uint64_t a = fake_open(&pa), b = fake_open(&pb);
  CHECK(ps_subscribe(a, "room.*", 6, 1, 0) == 1, "pattern subscription created");
  CHECK(ps_subscribe(b, "room.1", 6, 0, 0) == 1, "channel subscription created");
  CHECK(ps_subscribe(0, "room.?", 6, 1, 77) == 1, "a global callback on a pattern");
  CHECK(ps_subscribe(0, "x", 1, 0, 0) == -2, "a global subscription needs a callback");
  drain(0);
  reset_log();
  long n = ps_publish("room.1", 6, "m1", 2, 1);
  CHECK(n == 3, "room.1: channel + two patterns reached (%ld)", n);
  CHECK(fake.made == 1, "one form for the channel and the pattern (made %d)", fake.made);
  n = ps_publish("room.22", 7, "m2", 2, 1);
  CHECK(n == 1, "room.22: only room.* matches (%ld)", n);
  n = ps_publish("hall", 4, "m3", 2, 1);
  CHECK(n == 0, "hall: nobody (%ld)", n);
  CHECK(drain(DSP_PUBSUB) == 1, "one callback event");
  CHECK(!strcmp(last_msg, "m1"), "the callback got '%s'", last_msg);
  flush();
  char buf[64];
  peer_read(pa, buf, sizeof buf);
  CHECK(!strcmp(buf, "0:m1|0:m2|"), "pattern subscriber read '%s'", buf);
  peer_read(pb, buf, sizeof buf);
  CHECK(!strcmp(buf, "0:m1|"), "channel subscriber read '%s'", buf);
  CHECK(ps_unsubscribe(0, "room.?", 6, 1) == 77, "the global unsubscribe returns its callback");
  up_close(a, 1000);
  up_close(b, 1000);
  flush();
  close(pa);
  close(pb);
  drain(0);
}

/* A subscriber closed by another's write in the middle of a fan-out is not
 * reached (its subscription stays on the list until on_close, which runs
 * after the publish), and the publish goes on to the rest. */
static void test_close_during_fan_out(void) {
  int peer[N];
  uint64_t id[N];
  for (int i = 0; i < N; i++) id[i] = fake_open(&peer[i]);
  /* subscriptions go to the head of the channel's list: the last
   * subscribed is reached first */
  for (int i = 0; i < N; i++) ps_subscribe(id[i], "c", 1, 0, 0);
  reset_log();
  fake.close_on_write = id[N - 1]; /* the first one written to ... */
  fake.victim = id[N - 2];         /* ... closes the next one */
  long n = ps_publish("c", 1, "z", 1, 1);
  /* held in the run: counted then, every direct subscription included */
  CHECK(n == N, "held: reached %ld", n);
  settle();
  CHECK(fake.writes >= 1 && fake.write_conn[0] == id[N - 1], "the first write went to %llu",
        (unsigned long long)fake.write_conn[0]);
  int victim_written = 0;
  for (int i = 0; i < fake.writes && i < LOG_MAX; i++)
    victim_written |= fake.write_conn[i] == id[N - 2];
  CHECK(!victim_written, "nothing was written to the closed connection");
  fake.close_on_write = 0;
  flush(); /* its on_close drops its subscription */
  CHECK(ps_sub_count() == N - 1, "the closed connection's subscription is gone (%zu)",
        ps_sub_count());
  CHECK(ps_subscribe(id[N - 2], "c", 1, 0, 0) == -1, "a closed connection cannot subscribe");
  n = ps_publish("c", 1, "after", 5, 1);
  CHECK(n == N - 1, "the next publish reaches the rest (%ld)", n);
  for (int i = 0; i < N; i++) up_close(id[i], 1000);
  flush();
  for (int i = 0; i < N; i++) close(peer[i]);
  drain(0);
  CHECK(ps_channel_count() == 0 && ps_sub_count() == 0, "nothing left: %zu channels, %zu subs",
        ps_channel_count(), ps_sub_count());
}

/* A run: publishes to one channel with nothing between are held, then
 * reach each subscriber in one write of one joined buffer per form; a write to any connection, or a publish to
 * another channel, ends the run first, so it cannot overtake it. */
static void test_runs(void) {
  int pa, pb, pc;
  open_ops = &fake_join_ops;
  uint64_t a = fake_open(&pa), b = fake_open(&pb);
  open_ops = &fake_ops;
  uint64_t c = fake_open(&pc); /* not joinable: one write per message */
  ps_subscribe(a, "r", 1, 0, 0);
  ps_subscribe(b, "r", 1, 0, 0);
  ps_subscribe(c, "r", 1, 0, 0);
  ps_subscribe(a, "s", 1, 0, 0);
  reset_log();
  ps_publish("r", 1, "m1", 2, 1);
  ps_publish("r", 1, "m2", 2, 1);
  ps_publish("r", 1, "m3", 2, 1);
  CHECK(fake.writes == 0, "a run of three is held (%d writes)", fake.writes);
  /* pending() ends the run first: what it reports includes the run */
  CHECK(up_pending(a) >= 0 && fake.writes == 5,
        "one joined write each for a and b, three for c (%d)", fake.writes);
  CHECK(fake.made == 3, "each message framed once (made %d)", fake.made);
  /* a direct write to b ends the next run before it lands */
  ps_publish("r", 1, "m4", 2, 1);
  rx_lock();
  rx_conn *cb = rx_find(b);
  rx_write(cb, "W|", 2);
  rx_unlock();
  /* another channel's publish ends the run too: a gets r's m5, then s's */
  ps_publish("r", 1, "m5", 2, 1);
  ps_publish("s", 1, "s1", 2, 1);
  settle();
  flush();
  char buf[128];
  peer_read(pa, buf, sizeof buf);
  CHECK(!strcmp(buf, "0:m1|0:m2|0:m3|0:m4|0:m5|0:s1|"), "a read '%s'", buf);
  peer_read(pb, buf, sizeof buf);
  CHECK(!strcmp(buf, "0:m1|0:m2|0:m3|0:m4|W|0:m5|"), "b read '%s'", buf);
  peer_read(pc, buf, sizeof buf);
  CHECK(!strcmp(buf, "0:m1|0:m2|0:m3|0:m4|0:m5|"), "c read '%s'", buf);
  up_close(a, 1000);
  up_close(b, 1000);
  up_close(c, 1000);
  flush();
  close(pa);
  close(pb);
  close(pc);
  drain(0);
}

/* Many forms in one publish: each distinct variant is made once, and a
 * delivery has room for every form the built-in protocols can need. */
static void test_form_slots(void) {
  ps_delivery d = {.msg = "m", .len = 1, .text = 1, .utf8 = 1};
  static const char a = 0, b = 0; /* two owners: only their addresses matter */
  rx_buf **s1 = ps_form_slot(&d, &a, 0), **s2 = ps_form_slot(&d, &b, 0);
  CHECK(s1 && s2 && s1 != s2, "owners are kept apart");
  CHECK(ps_form_slot(&d, &a, 0) == s1, "the same key finds the same slot");
  CHECK(*s1 == NULL, "a new slot is empty");
  for (unsigned v = 1; d.nforms < PS_FORMS_MAX; v++) CHECK(ps_form_slot(&d, &a, v), "slot %u", v);
  CHECK(ps_form_slot(&d, &a, 999) == NULL, "no slot past PS_FORMS_MAX");
  CHECK(ps_form_slot(&d, &b, 0) == s2, "existing slots are still found when full");
}

int main(void) {
  set.ping_ms = 60000;
  set.max_pending = 1 << 20;
  set.ws_max_msg = 1 << 16;
  if (rx_init()) {
    printf("rx_init failed\n");
    return 1;
  }
  test_fan_out_shares_one_form();
  test_as_variants();
  test_patterns_and_callbacks();
  test_close_during_fan_out();
  test_runs();
  test_form_slots();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
