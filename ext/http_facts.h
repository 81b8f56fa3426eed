/* http_facts: the one home of the HTTP protocol facts several files need:
 * reason phrases, HTTP dates (the IMF-fixdate a Date or Last-Modified
 * field carries, the three forms RFC 9110 5.6.7 says to read, and the
 * Common Log Format stamp of the access log), and the seeded hash of a
 * header name. The token check and decimal parsing live with the parser
 * (http1_is_token, http1_parse_decimal in http1_parser.h): they are syntax.
 *
 * Must never: allocate, touch a socket, or depend on the locale (month and
 * day names are ASCII tables, never strftime's %a / %b).
 *
 * Threads: every function is pure except hf_date_line (a once-a-second
 * cache: callers hold the reactor's big lock) and hf_name_hash (its seed is
 * made once, thread-safely, on first use). */
#ifndef IODINE_HTTP_FACTS_H
#define IODINE_HTTP_FACTS_H

#include <stddef.h>
#include <stdint.h>

/* The reason phrase of a status code we send ("Not Found"), or "Unknown"
 * for one we never send by ourselves. */
const char *hf_reason(int code);

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 bytes + NUL) of a Unix
 * time, clamped to years 1970..9999. out needs 30 bytes. */
#define HF_DATE_LEN 29
void hf_date(char out[30], int64_t t);

/* Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime form, RFC 9110
 * 5.6.7), optional whitespace around it allowed. Returns 0 and the Unix
 * time, or -1 when malformed. */
int hf_parse_date(const char *s, size_t n, int64_t *t);

/* "Date: <IMF-fixdate of now>\r\n", rebuilt at most once a second.
 * Callers hold the big lock. */
const char *hf_date_line(size_t *len);

/* The access log's stamp, "06/Nov/1994:08:49:37 +0100" (26 bytes + NUL):
 * local time `t` whose offset from UTC is gmtoff seconds. */
void hf_clf_stamp(char out[32], int64_t t, long gmtoff);

/* A hash of a header name, ASCII case folded (FNV-1a), over a per-process
 * random seed so that names a client chooses cannot be made to collide. */
uint32_t hf_name_hash(const char *p, size_t n);

#endif
