/* accesslog: access log lines for the answers the C core gives by itself
 * (static files, error answers such as 400/413/431), so `-v` shows every
 * response and not only the application's.
 *
 * Owns: formatting a line (Common Log Format plus the response time, the
 * same shape the Python layer writes for application responses) and handing
 * it to the application side as a DSP_LOG event, whose writer thread puts
 * it on stderr.
 *
 * Must never: write to a file descriptor itself (a slow stderr must not
 * stall the loop), or cost anything when the log is off (al_on() is one
 * load). */
#ifndef IODINE_ACCESSLOG_H
#define IODINE_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "events.h" /* DSP_LOG */

void al_enable(int on);
int al_on(void);

/* A monotonic clock in microseconds, for the response time. */
uint64_t al_now_us(void);

/* One answer, as the log line shows it. method/target may be NULL (the
 * request line was not understood): they show as "-". */
typedef struct {
  const char *peer;
  const char *method;
  size_t mlen;
  const char *target;
  size_t tlen;
  int minor; /* HTTP/1.<minor> */
  int status;
  uint64_t bytes;      /* body bytes sent */
  uint64_t started_us; /* al_now_us() when the request was taken */
} al_entry;

void al_log(const al_entry *e);

void al_free(char *line);

#endif
