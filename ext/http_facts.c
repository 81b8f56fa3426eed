/* http_facts: see http_facts.h for what this file owns. */
#define _GNU_SOURCE
#include "http_facts.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ascii.h"
#include "http1_parser.h"

/* --- reason phrases ---------------------------------------------------------- */

/* Every status the core answers by itself (errors, static files, upgrades):
 * RFC 9110 15's phrases. A table, so a new status is one line. */
static const struct {
  int code;
  const char *phrase;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {416, "Range Not Satisfiable"},
    {426, "Upgrade Required"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {503, "Service Unavailable"},
    {505, "HTTP Version Not Supported"},
};

const char *hf_reason(int code) {
  for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
    if (reasons[i].code == code) return reasons[i].phrase;
  return "Unknown";
}

/* --- dates -------------------------------------------------------------------- */

static const char wday_names[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (the
 * era-based arithmetic: exact for every year, no tables). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Unix time to calendar fields; t clamped to 1970..9999. */
static void split_time(int64_t t, int64_t *days, int64_t *y, unsigned *m, unsigned *d,
                       int64_t *secs) {
  const int64_t max = 253402300799; /* 9999-12-31T23:59:59Z */
  if (t < 0) t = 0;
  if (t > max) t = max;
  *days = t / 86400;
  *secs = t % 86400;
  civil_from_days(*days, y, m, d);
}

void hf_date(char out[30], int64_t t) {
  int64_t days, y, secs;
  unsigned m, d;
  split_time(t, &days, &y, &m, &d, &secs);
  snprintf(out, 30, "%s, %02u %s %04d %02d:%02d:%02d GMT", wday_names[days % 7], d,
           month_names[m - 1], (int)y, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}

void hf_clf_stamp(char out[32], int64_t t, long gmtoff) {
  int64_t days, y, secs;
  unsigned m, d;
  split_time(t + gmtoff, &days, &y, &m, &d, &secs);
  long off = gmtoff < 0 ? -gmtoff : gmtoff;
  snprintf(out, 32, "%02u/%s/%04d:%02d:%02d:%02d %c%02ld%02ld", d, month_names[m - 1], (int)y,
           (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), gmtoff < 0 ? '-' : '+',
           off / 3600 % 100, off / 60 % 60);
}

const char *hf_date_line(size_t *len) {
  static char line[6 + HF_DATE_LEN + 3] = "Date: ";
  static time_t last = -1;
  time_t now = time(NULL);
  if (now != last) {
    hf_date(line + 6, (int64_t)now);
    memcpy(line + 6 + HF_DATE_LEN, "\r\n", 3);
    last = now;
  }
  *len = 6 + HF_DATE_LEN + 2;
  return line;
}

/* n digits exactly (the parser's overflow-checked decimal reader). */
static int num(const char *s, size_t n, int *out) {
  uint64_t v;
  if (http1_parse_decimal(s, n, &v)) return -1;
  *out = (int)v;
  return 0;
}

static int month_of(const char *s) {
  for (int i = 0; i < 12; i++)
    if (!memcmp(s, month_names[i], 3)) return i + 1;
  return 0;
}

static int wday_ok(const char *s, size_t n) {
  static const char *const long_names[7] = {"Thursday", "Friday",  "Saturday", "Sunday",
                                            "Monday",   "Tuesday", "Wednesday"};
  for (int i = 0; i < 7; i++)
    if ((n == 3 && !memcmp(s, wday_names[i], 3)) ||
        (n == strlen(long_names[i]) && !memcmp(s, long_names[i], n)))
      return 1;
  return 0;
}

/* "hh:mm:ss" */
static int clock_of(const char *s, int *h, int *mi, int *sec) {
  if (s[2] != ':' || s[5] != ':') return -1;
  return num(s, 2, h) || num(s + 3, 2, mi) || num(s + 6, 2, sec) ? -1 : 0;
}

typedef struct {
  int d, m, y, h, mi, sec;
} civil;

static int parse_fixdate(const char *s, civil *c) { /* Sun, 06 Nov 1994 08:49:37 GMT */
  return !wday_ok(s, 3) || s[4] != ' ' || num(s + 5, 2, &c->d) || s[7] != ' ' ||
                 !(c->m = month_of(s + 8)) || s[11] != ' ' || num(s + 12, 4, &c->y) ||
                 s[16] != ' ' || clock_of(s + 17, &c->h, &c->mi, &c->sec) || s[25] != ' ' ||
                 memcmp(s + 26, "GMT", 3)
             ? -1
             : 0;
}

static int parse_asctime(const char *s, civil *c) { /* Sun Nov  6 08:49:37 1994 */
  return !wday_ok(s, 3) || !(c->m = month_of(s + 4)) || s[7] != ' ' ||
                 (s[8] == ' ' ? num(s + 9, 1, &c->d) : num(s + 8, 2, &c->d)) || s[10] != ' ' ||
                 clock_of(s + 11, &c->h, &c->mi, &c->sec) || s[19] != ' ' || num(s + 20, 4, &c->y)
             ? -1
             : 0;
}

static int parse_rfc850(const char *s, size_t n, civil *c) { /* Sunday, 06-Nov-94 08:49:37 GMT */
  const char *comma = memchr(s, ',', n);
  if (!comma || !wday_ok(s, (size_t)(comma - s)) || n - (size_t)(comma - s) != 24) return -1;
  const char *r = comma + 1;
  int yy;
  if (r[0] != ' ' || num(r + 1, 2, &c->d) || r[3] != '-' || !(c->m = month_of(r + 4)) ||
      r[7] != '-' || num(r + 8, 2, &yy) || r[10] != ' ' ||
      clock_of(r + 11, &c->h, &c->mi, &c->sec) || r[19] != ' ' || memcmp(r + 20, "GMT", 3))
    return -1;
  c->y = yy < 70 ? 2000 + yy : 1900 + yy; /* RFC 9110 5.6.7's 50-year rule, near enough */
  return 0;
}

int hf_parse_date(const char *s, size_t n, int64_t *t) {
  civil c;
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  int r = n == 29 && s[3] == ','   ? parse_fixdate(s, &c)
          : n == 24 && s[3] == ' ' ? parse_asctime(s, &c)
                                   : parse_rfc850(s, n, &c);
  if (r) return -1;
  static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (c.y % 4 == 0 && c.y % 100 != 0) || c.y % 400 == 0;
  if (c.d < 1 || c.d > mdays[c.m - 1] || (c.m == 2 && c.d == 29 && !leap) || c.h > 23 ||
      c.mi > 59 || c.sec > 60)
    return -1;
  *t = days_from_civil(c.y, (unsigned)c.m, (unsigned)c.d) * 86400 + c.h * 3600 + c.mi * 60 + c.sec;
  return 0;
}

/* --- the header-name hash ------------------------------------------------------ */

static uint32_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void make_seed(void) {
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
    seed = (uint32_t)time(NULL) * 2654435761u;
}

uint32_t hf_name_hash(const char *p, size_t n) {
  pthread_once(&seed_once, make_seed);
  uint32_t x = 2166136261u ^ seed; /* FNV-1a over the lower-cased name */
  for (size_t i = 0; i < n; i++) x = (x ^ (uint32_t)ascii_lower((unsigned char)p[i])) * 16777619u;
  return x;
}
