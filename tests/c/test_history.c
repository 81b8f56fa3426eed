/* ext/history.c alone: the per-channel ring (N kept, oldest out), replay
 * after an id in order, the floor that reports a gap, and the bounds:
 * channel count and bytes (least recently published channel out first),
 * with the byte count never over the cap. */
#include "check.h"

#include <stdint.h>

#include "history.h"

typedef struct {
  ps_id ids[256];
  char first[64];
  size_t n;
} seen;

static void visit(void *ctx, ps_id id, const char *msg, size_t mlen, int text) {
  seen *s = ctx;
  (void)text;
  if (s->n < 256) s->ids[s->n] = id;
  if (s->n == 0) {
    size_t k = mlen < 63 ? mlen : 63;
    memcpy(s->first, msg, k);
    s->first[k] = 0;
  }
  s->n++;
}

static int since(const char *ch, ps_id after, seen *s) {
  size_t count;
  memset(s, 0, sizeof *s);
  int r = hist_since(ch, strlen(ch), after, visit, s, &count);
  CHECK(count == s->n, "count matches visits");
  return r;
}

static void add(const char *ch, uint64_t ms, uint64_t seq, const char *msg) {
  hist_add(ch, strlen(ch), (ps_id){ms, seq}, msg, strlen(msg), 1);
}

int main(void) {
  seen s;
  /* off: nothing kept, every resume a gap */
  CHECK(!hist_enabled(), "off by default");
  CHECK(hist_add("a", 1, (ps_id){1, 0}, "x", 1, 1) == -1, "off keeps nothing");
  CHECK(since("a", (ps_id){0, 0}, &s) == 0 && s.n == 0, "off: a gap");

  hist_configure(4, 100, 1 << 20, 1234, (ps_id){100, 0});
  CHECK(hist_enabled(), "on");
  /* a channel never seen: complete only from the start floor on */
  CHECK(since("a", (ps_id){100, 0}, &s) == 1 && s.n == 0, "unknown channel after start");
  CHECK(since("a", (ps_id){99, 0}, &s) == 0, "unknown channel before start: a gap");

  char m[16];
  for (int i = 1; i <= 6; i++) {
    snprintf(m, sizeof m, "m%d", i);
    add("a", 200, (uint64_t)i, m);
  }
  CHECK(hist_messages("a", 1) == 4, "N=4 kept, got %zu", hist_messages("a", 1));
  /* 200-1 and 200-2 went out: the floor is 200-2 */
  CHECK(since("a", (ps_id){200, 2}, &s) == 1 && s.n == 4, "after the floor: complete");
  CHECK(s.ids[0].seq == 3 && s.ids[3].seq == 6 && !strcmp(s.first, "m3"), "in order");
  CHECK(since("a", (ps_id){200, 1}, &s) == 0 && s.n == 4, "before the floor: a gap, all kept");
  CHECK(since("a", (ps_id){200, 4}, &s) == 1 && s.n == 2 && s.ids[0].seq == 5, "after 200-4");
  CHECK(since("a", (ps_id){200, 6}, &s) == 1 && s.n == 0, "up to date");
  CHECK(since("a", (ps_id){900, 0}, &s) == 1 && s.n == 0, "from the future");

  /* channel cap: 3 channels, the least recently published goes */
  hist_configure(4, 3, 1 << 20, 1234, (ps_id){100, 0});
  add("b", 300, 0, "b");
  add("c", 301, 0, "c");
  add("a", 302, 0, "a7"); /* a is now the newest */
  add("d", 303, 0, "d");  /* b goes */
  CHECK(hist_channels() == 3, "3 channels, got %zu", hist_channels());
  CHECK(hist_messages("b", 1) == 0 && hist_messages("a", 1) == 4, "b dropped, a kept");
  CHECK(since("b", (ps_id){299, 0}, &s) == 0, "dropped channel: a gap");
  CHECK(since("e", (ps_id){299, 9}, &s) == 0, "an unknown channel, before a drop: a gap");
  CHECK(since("e", (ps_id){300, 0}, &s) == 1, "from the dropped floor on: complete");

  /* byte cap: never exceeded, old channels out first */
  hist_clear();
  CHECK(hist_bytes() == 0 && hist_channels() == 0, "clear");
  size_t cap = 64 * 1024;
  hist_configure(8, 1000, cap, 1234, (ps_id){100, 0});
  char big[1000];
  memset(big, 'x', sizeof big);
  big[sizeof big - 1] = 0;
  size_t peak = 0;
  int within = 1;
  for (int i = 0; i < 5000; i++) {
    char name[32];
    snprintf(name, sizeof name, "ch%d", i % 300);
    add(name, 1000 + (uint64_t)i, 0, big);
    if (hist_bytes() > cap) within = 0;
    if (hist_bytes() > peak) peak = hist_bytes();
  }
  CHECK(within, "bytes never above the cap");
  CHECK(peak > cap / 2, "the cap is used (peak %zu)", peak);
  CHECK(hist_messages("ch199", 5) >= 1, "the newest channel is kept");
  CHECK(hist_messages("ch200", 5) == 0, "an old channel went");

  /* a message larger than the budget: not kept, the gap reported */
  char *huge = malloc(cap + 1);
  memset(huge, 'y', cap);
  huge[cap] = 0;
  add("ch199", 9000, 0, "small");
  CHECK(hist_add("ch199", 5, (ps_id){9001, 0}, huge, cap, 0) == -1, "too large refused");
  CHECK(since("ch199", (ps_id){9000, 0}, &s) == 0, "and the gap reported");
  add("ch199", 9002, 0, "after");
  CHECK(since("ch199", (ps_id){9001, 0}, &s) == 1 && s.n == 1 && !strcmp(s.first, "after"),
        "after the gap: complete");
  free(huge);

  /* a message that fits the budget alone but not with its channel's ring
   * and name: refused, the cap holds */
  hist_configure(1000, 10, 9000, 1234, (ps_id){100, 0});
  {
    char mid[1000];
    memset(mid, 'z', sizeof mid);
    CHECK(hist_add("r", 1, (ps_id){9100, 0}, mid, sizeof mid, 0) == -1,
          "ring (8000) + name + message over 9000: refused");
    CHECK(hist_bytes() <= 9000, "cap held: %zu", hist_bytes());
    CHECK(hist_add("r", 1, (ps_id){9101, 0}, mid, 100, 0) == 0, "a small one fits");
    CHECK(hist_bytes() <= 9000, "cap held: %zu", hist_bytes());
  }

  /* a forked process starts over: nothing kept, older ids are a gap */
  hist_configure(4, 100, 1 << 20, 1234, (ps_id){100, 0});
  add("f", 20000, 0, "f");
  hist_restart((ps_id){20001, 0});
  CHECK(hist_channels() == 0 && hist_bytes() == 0, "restart drops everything");
  CHECK(since("f", (ps_id){20000, 0}, &s) == 0 && s.n == 0, "from before the restart: a gap");
  CHECK(since("f", (ps_id){20001, 0}, &s) == 1, "from the restart on: complete");

  /* turning it off frees everything */
  hist_configure(0, 1000, cap, 1234, (ps_id){100, 0});
  CHECK(hist_bytes() == 0 && hist_channels() == 0, "off frees");
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
