/* accesslog: see accesslog.h for what this file owns. */
#define _GNU_SOURCE
#include "accesslog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "http_facts.h"

static int enabled;

void al_enable(int on) { enabled = on; }
int al_on(void) { return enabled; }

uint64_t al_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* "23/Nov/2026:18:42:18 +0000" (http_facts.h's stamp), made once a
 * second. Only the loop thread logs (static answers and error answers
 * happen there). */
static const char *stamp(void) {
  static char buf[32];
  static time_t last = -1;
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    localtime_r(&now, &tm); /* for the offset only: the fields are ours */
    hf_clf_stamp(buf, (int64_t)now, tm.tm_gmtoff);
    last = now;
  }
  return buf;
}

void al_log(const al_entry *e) {
  if (!enabled) return;
  uint64_t took = al_now_us() - e->started_us;
  const char *method = e->method ? e->method : "-", *target = e->target ? e->target : "-";
  size_t mlen = e->method ? e->mlen : 1, tlen = e->target ? e->tlen : 1;
  if (tlen > 2048) tlen = 2048; /* a log line, not a copy of the request */
  size_t cap = tlen + mlen + 160;
  char *line = malloc(cap);
  if (!line) return;
  int n = snprintf(line, cap, "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu %llu.%03llums\n",
                   e->peer && *e->peer ? e->peer : "-", stamp(), (int)mlen, method, (int)tlen,
                   target, e->minor, e->status, (unsigned long long)e->bytes,
                   (unsigned long long)(took / 1000), (unsigned long long)(took % 1000));
  if (n < 0 || (size_t)n >= cap || dsp_post(NULL, DSP_LOG, 0, line, (uint64_t)n)) free(line);
}

void al_free(char *line) { free(line); }
