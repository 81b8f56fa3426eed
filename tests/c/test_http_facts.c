/* Build: make build/test_http_facts (ext/http_facts.c + the parser's
 * decimal reader). Dates in the HTTP forms are tested in test_static.c,
 * which uses them for Last-Modified and If-Modified-Since.
 *
 *  - reason phrases for every status the core sends, "Unknown" otherwise;
 *  - the access log's stamp at UTC and at positive and negative offsets,
 *    half hours included, and across a year boundary;
 *  - the Date line's shape;
 *  - the header-name hash folds ASCII case, and is seeded per process (two
 *    processes hash the same name differently). */
#define _GNU_SOURCE
#include "check.h"

#include <stdint.h>
#include <sys/wait.h>

#include "http_facts.h"

static void reasons(void) {
  static const struct {
    int code;
    const char *phrase;
  } want[] = {{100, "Continue"},
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
              {505, "HTTP Version Not Supported"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    CHECK(!strcmp(hf_reason(want[i].code), want[i].phrase), "%d: %s", want[i].code,
          hf_reason(want[i].code));
  CHECK(!strcmp(hf_reason(299), "Unknown") && !strcmp(hf_reason(-1), "Unknown"),
        "statuses we never send ourselves");
}

static void clf_stamps(void) {
  char out[32];
  hf_clf_stamp(out, 784111777, 0);
  CHECK(!strcmp(out, "06/Nov/1994:08:49:37 +0000"), "UTC: %s", out);
  hf_clf_stamp(out, 784111777, 3600);
  CHECK(!strcmp(out, "06/Nov/1994:09:49:37 +0100"), "+1 h: %s", out);
  hf_clf_stamp(out, 784111777, 5 * 3600 + 1800);
  CHECK(!strcmp(out, "06/Nov/1994:14:19:37 +0530"), "+5:30: %s", out);
  hf_clf_stamp(out, 784111777, -(3 * 3600 + 1800));
  CHECK(!strcmp(out, "06/Nov/1994:05:19:37 -0330"), "-3:30: %s", out);
  hf_clf_stamp(out, 946684799 + 1, -3600); /* 2000-01-01 00:00:00Z */
  CHECK(!strcmp(out, "31/Dec/1999:23:00:00 -0100"), "across the year: %s", out);
}

static void date_line(void) {
  size_t n;
  const char *l = hf_date_line(&n);
  CHECK(n == 37 && !strncmp(l, "Date: ", 6) && !strncmp(l + 31, " GMT\r\n", 6), "Date line %.*s",
        (int)n, l);
  int64_t t;
  CHECK(!hf_parse_date(l + 6, HF_DATE_LEN, &t) && t > 1700000000, "it is a date of now");
}

static uint32_t hash_in_child(const char *name) {
  int fds[2];
  uint32_t h = 0;
  if (pipe(fds)) return 0;
  pid_t pid = fork();
  if (pid == 0) {
    uint32_t x = hf_name_hash(name, strlen(name));
    ssize_t w = write(fds[1], &x, sizeof x);
    _exit(w == (ssize_t)sizeof x ? 0 : 1);
  }
  close(fds[1]);
  if (read(fds[0], &h, sizeof h) != (ssize_t)sizeof h) h = 0;
  close(fds[0]);
  waitpid(pid, NULL, 0);
  return h;
}

static void name_hash(void) {
  /* first, before this process makes its seed: each child makes its own */
  uint32_t a = hash_in_child("x-forwarded-for"), b = hash_in_child("x-forwarded-for");
  uint32_t c = hash_in_child("x-forwarded-for");
  CHECK(a && b && c && !(a == b && b == c), "seeded per process: %x %x %x", a, b, c);
  CHECK(hf_name_hash("Content-Type", 12) == hf_name_hash("content-type", 12) &&
            hf_name_hash("CONTENT-TYPE", 12) == hf_name_hash("cOnTeNt-TyPe", 12),
        "ASCII case folded");
  CHECK(hf_name_hash("host", 4) != hf_name_hash("hosu", 4), "different names");
}

int main(void) {
  reasons();
  clf_stamps();
  date_line();
  name_hash();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
