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

enum { DSP_LOG = 14 }; /* ptr: the line (free with al_free), arg: its length */

void al_enable(int on);
int al_on(void);

/* A monotonic clock in microseconds, for the response time. */
uint64_t al_now_us(void);

/* Log one answer. method/target may be NULL (the request line was not
 * understood): they show as "-". */
void al_log(const char *peer, const char *method, size_t mlen, const char *target,
            size_t tlen, int minor, int status, uint64_t bytes, uint64_t started_us);

void al_free(char *line);

#endif
