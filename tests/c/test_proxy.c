/* Unit tests for ext/proxy.c: the trust list and forwarded headers. */
#include <stdio.h>
#include <string.h>

#include "proxy.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    checks++;                                                                                      \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
      printf(__VA_ARGS__);                                                                         \
      printf("\n");                                                                                \
    }                                                                                              \
  } while (0)

static px_trust *parse_ok(const char *spec) {
  char err[128] = "";
  px_trust *t = px_parse(spec, err, sizeof err);
  CHECK(t != NULL, "parse %s: %s", spec, err);
  return t;
}

static int trusted(const px_trust *t, const char *a) { return px_trusted(t, a, strlen(a)); }

/* The client px_client picks, or "" when it keeps the peer. */
static const char *client(const px_trust *t, const char *xff) {
  static char out[80];
  const char *p;
  size_t n;
  if (!px_client(t, xff, strlen(xff), &p, &n)) return "";
  snprintf(out, sizeof out, "%.*s", (int)n, p);
  return out;
}

static void test_parse(void) {
  const char *bad[] = {"10.0.0.0/33", "::1/129", "10.0.0.1/",     "10.0.0.1/x",
                       "localhost",   "1.2.3",   "10.0.0.0/1234", "fe80::1::2"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char err[128] = "";
    px_trust *t = px_parse(bad[i], err, sizeof err);
    CHECK(t == NULL, "%s should not parse", bad[i]);
    CHECK(strstr(err, "not an address") != NULL, "message for %s: %s", bad[i], err);
    px_free(t);
  }
  px_trust *t = parse_ok("");
  CHECK(!trusted(t, "127.0.0.1"), "empty list trusts nobody");
  px_free(t);
  t = parse_ok(" , ,");
  CHECK(!trusted(t, "127.0.0.1"), "separators only trust nobody");
  px_free(t);
}

static void test_match(void) {
  px_trust *t = parse_ok("127.0.0.1, 10.0.0.0/8 192.168.1.128/25,::1,fd00::/8");
  CHECK(trusted(t, "127.0.0.1"), "exact v4");
  CHECK(!trusted(t, "127.0.0.2"), "exact v4 means /32");
  CHECK(trusted(t, "10.255.1.2"), "inside /8");
  CHECK(!trusted(t, "11.0.0.1"), "outside /8");
  CHECK(trusted(t, "192.168.1.200"), "inside /25");
  CHECK(!trusted(t, "192.168.1.127"), "below /25");
  CHECK(trusted(t, "::1"), "v6 loopback");
  CHECK(trusted(t, "fd12:3456::1"), "inside fd00::/8");
  CHECK(!trusted(t, "fe80::1"), "outside fd00::/8");
  CHECK(trusted(t, "::ffff:10.1.2.3"), "v4-mapped matches a v4 network");
  CHECK(!trusted(t, "::ffff:11.1.2.3"), "v4-mapped outside");
  CHECK(!trusted(t, ""), "empty address");
  CHECK(!trusted(t, "garbage"), "not an address");
  CHECK(!px_trusted(NULL, "127.0.0.1", 9), "no list");
  px_free(t);
  t = parse_ok("0.0.0.0/0");
  CHECK(trusted(t, "8.8.8.8"), "/0 v4 trusts every v4");
  CHECK(!trusted(t, "2001:db8::1"), "/0 v4 is not v6");
  px_free(t);
  t = parse_ok("*");
  CHECK(trusted(t, "8.8.8.8") && trusted(t, "2001:db8::1"), "* trusts all");
  px_free(t);
  t = parse_ok("10.0.0.0/9");
  CHECK(trusted(t, "10.127.255.255"), "/9 upper edge");
  CHECK(!trusted(t, "10.128.0.0"), "/9 past the edge");
  px_free(t);
}

static void test_client(void) {
  px_trust *t = parse_ok("127.0.0.1,10.0.0.0/8");
  CHECK(!strcmp(client(t, "203.0.113.7"), "203.0.113.7"), "single entry");
  CHECK(!strcmp(client(t, "203.0.113.7, 10.0.0.2"), "203.0.113.7"), "skips our hop");
  CHECK(!strcmp(client(t, "1.1.1.1, 203.0.113.7, 10.0.0.2"), "203.0.113.7"),
        "a spoofed left-most entry is not believed");
  CHECK(!strcmp(client(t, "10.0.0.9,10.0.0.2"), "10.0.0.9"), "all trusted: left-most");
  CHECK(!strcmp(client(t, "203.0.113.7:5555"), "203.0.113.7"), "v4 port dropped");
  CHECK(!strcmp(client(t, "[2001:db8::5]:443"), "2001:db8::5"), "v6 brackets and port");
  CHECK(!strcmp(client(t, "2001:db8::5"), "2001:db8::5"), "bare v6");
  CHECK(!strcmp(client(t, "  198.51.100.1  ,\t10.1.1.1 "), "198.51.100.1"), "spaces");
  CHECK(!strcmp(client(t, "unknown"), ""), "garbage only: keep the peer");
  CHECK(!strcmp(client(t, ""), ""), "empty header");
  CHECK(!strcmp(client(t, "unknown, 10.0.0.3"), "10.0.0.3"), "garbage stops the walk");
  CHECK(!strcmp(client(t, "198.51.100.1,"), ""), "empty right-most entry");
  CHECK(!strcmp(client(NULL, "198.51.100.1"), ""), "no list");
  px_free(t);
}

static void test_scheme(void) {
  struct {
    const char *in, *want;
  } cases[] = {
      {"https", "https"},     {"HTTP", "http"}, {" https ", "https"}, {"http, https", "https"},
      {"https,http", "http"}, {"ftp", NULL},    {"", NULL},           {"httpss", NULL},
      {"wss", NULL}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *got = px_scheme(cases[i].in, strlen(cases[i].in));
    int ok = got == cases[i].want || (got && cases[i].want && !strcmp(got, cases[i].want));
    CHECK(ok, "scheme of '%s': %s", cases[i].in, got ? got : "NULL");
  }
}

/* px_forwarded as "addr|scheme" ("" when it keeps the peer). */
static const char *fwd(const px_trust *t, const char *v) {
  static char out[96];
  const char *a, *sch = NULL;
  size_t n;
  if (!px_forwarded(t, v, strlen(v), &a, &n, &sch)) return "";
  snprintf(out, sizeof out, "%.*s|%s", (int)n, a, sch ? sch : "-");
  return out;
}

#define FWD(t, in, want)                                                                           \
  do {                                                                                             \
    const char *got_ = fwd(t, in);                                                                 \
    CHECK(!strcmp(got_, want), "Forwarded: %s -> '%s', want '%s'", in, got_, want);                \
  } while (0)

/* RFC 7239 section 4 and 7 examples, and what a trusted-proxy walk makes of
 * them, then malformed input. */
static void test_forwarded(void) {
  px_trust *t = parse_ok("127.0.0.1,10.0.0.0/8,2001:db8:cafe::/48");
  FWD(t, "for=\"_gazonk\"", "");
  FWD(t, "For=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17|-");
  FWD(t, "for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60|http");
  FWD(t, "for=192.0.2.43, for=198.51.100.17", "198.51.100.17|-");
  FWD(t, "for=192.0.2.43;proto=https, for=10.0.0.5;proto=http", "192.0.2.43|https");
  FWD(t, "for=1.1.1.1, for=192.0.2.43;PROTO=HTTPS, for=10.0.0.5", "192.0.2.43|https");
  FWD(t, "for=10.0.0.9, for=10.0.0.5", "10.0.0.9|-"); /* all ours: left-most */
  FWD(t, "for=unknown, for=10.0.0.5;proto=https", "10.0.0.5|https");
  FWD(t, "for=192.0.2.1:8080", ""); /* a port needs quotes (RFC 7239 6) */
  FWD(t, "for=\"192.0.2.1:8080\"", "192.0.2.1|-");
  FWD(t, "for=\"192.0.2.1:_p0rt\"", "192.0.2.1|-");
  FWD(t, "for=\"192.0.2.1:80x\"", "");
  FWD(t, "for=\"[2001:db8::1]x\"", "");
  FWD(t, "  for = 192.0.2.1", ""); /* no spaces around '=' (RFC 7239 4) */
  FWD(t, "for=\"192.0.2.1\";proto=\"https\"", "192.0.2.1|https");
  FWD(t, "by=10.0.0.1;proto=https", "");     /* no for=: nothing about the client */
  FWD(t, "for=192.0.2.1;for=192.0.2.2", ""); /* a parameter twice: malformed */
  FWD(t, "for=\"192.0.2.1", "");             /* unterminated quoted-string */
  FWD(t, "for=\"1\\92.0.2.1\"", "");         /* an escape: not an address */
  FWD(t, "for=192.0.2.9, for=\"[::1],\";x=\"a;b,c\", for=10.0.0.1", "10.0.0.1|-");
  FWD(t, "for=192.0.2.7,,, for=10.0.0.1 ,", "192.0.2.7|-"); /* empty elements */
  FWD(t, "for=192.0.2.7;proto=ftp", "192.0.2.7|-");
  FWD(t, "", "");
  FWD(t, ";;;,,,===\"\"\"", "");
  FWD(NULL, "for=192.0.2.60", "");
  /* a chain longer than the ring: only the last 64 elements count */
  char big[64 * 16 + 64] = "for=192.0.2.99";
  for (int i = 0; i < 64; i++) strcat(big, ", for=10.0.0.1");
  FWD(t, big, "10.0.0.1|-");
  px_free(t);
}

int main(void) {
  test_parse();
  test_match();
  test_client();
  test_scheme();
  test_forwarded();
  printf("%d checks, %d failures\n", checks, failures);
  return failures != 0;
}
