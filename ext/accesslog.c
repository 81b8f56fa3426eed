/* accesslog: see accesslog.h for what this file owns. */
#define _GNU_SOURCE
#include "accesslog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"

static int enabled;

void al_enable(int on) { enabled = on; }
int al_on(void) { return enabled; }

uint64_t al_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* "23/Nov/2026:18:42:18 +0000", made once a second. Only the loop thread
 * logs (static answers and error answers happen there). */
static const char *stamp(void) {
  static char buf[40];
  static time_t last = -1;
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    localtime_r(&now, &tm);
    if (!strftime(buf, sizeof buf, "%d/%b/%Y:%H:%M:%S %z", &tm)) buf[0] = 0;
    last = now;
  }
  return buf;
}

void al_log(const char *peer, const char *method, size_t mlen, const char *target,
            size_t tlen, int minor, int status, uint64_t bytes, uint64_t started_us) {
  if (!enabled) return;
  uint64_t took = al_now_us() - started_us;
  if (!method) method = "-", mlen = 1;
  if (!target) target = "-", tlen = 1;
  if (tlen > 2048) tlen = 2048; /* a log line, not a copy of the request */
  size_t cap = tlen + mlen + 160;
  char *line = malloc(cap);
  if (!line) return;
  int n = snprintf(line, cap, "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu %llu.%03llums\n",
                   peer && *peer ? peer : "-", stamp(), (int)mlen, method, (int)tlen, target,
                   minor, status, (unsigned long long)bytes, (unsigned long long)(took / 1000),
                   (unsigned long long)(took % 1000));
  if (n < 0 || (size_t)n >= cap || dsp_post(NULL, DSP_LOG, 0, line, (uint64_t)n)) free(line);
}

void al_free(char *line) { free(line); }
