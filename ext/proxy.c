/* proxy: see proxy.h for what this file owns. */
#define _GNU_SOURCE
#include "proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every address is kept as 16 bytes: IPv4 as the IPv4-mapped IPv6 form
 * (::ffff:a.b.c.d), so a dual-stack listener's "::ffff:10.0.0.1" and a
 * setting's "10.0.0.0/8" compare as the same thing. */
typedef struct px_net {
  uint8_t addr[16];
  unsigned bits; /* prefix length over the 128-bit form */
} px_net;

struct px_trust {
  int any;
  size_t n;
  px_net nets[];
};

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Text (not NUL-terminated) to 16 bytes; 1 when it is an address. */
static int to_addr(const char *s, size_t n, uint8_t out[16], int *is_v4) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (!n || n >= sizeof buf) return 0;
  memcpy(buf, s, n);
  buf[n] = 0;
  uint8_t v4[4];
  if (inet_pton(AF_INET, buf, v4) == 1) {
    memcpy(out, v4_mapped, 12);
    memcpy(out + 12, v4, 4);
    if (is_v4) *is_v4 = 1;
    return 1;
  }
  if (is_v4) *is_v4 = 0;
  return inet_pton(AF_INET6, buf, out) == 1;
}

static int in_net(const px_net *net, const uint8_t a[16]) {
  unsigned full = net->bits / 8, rest = net->bits % 8;
  if (memcmp(net->addr, a, full)) return 0;
  if (!rest) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (net->addr[full] & mask) == (a[full] & mask);
}

static int is_sep(char ch) { return ch == ',' || ch == ' ' || ch == '\t'; }

px_trust *px_parse(const char *spec, char *err, size_t errlen) {
  size_t cap = 1;
  for (const char *p = spec; *p; p++) cap += *p == ',' || *p == ' ';
  px_trust *t = calloc(1, sizeof *t + cap * sizeof(px_net));
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  const char *p = spec;
  for (;;) {
    while (*p && is_sep(*p)) p++;
    if (!*p) break;
    const char *start = p;
    while (*p && !is_sep(*p)) p++;
    size_t n = (size_t)(p - start);
    if (n == 1 && *start == '*') {
      t->any = 1;
      continue;
    }
    const char *slash = memchr(start, '/', n);
    size_t alen = slash ? (size_t)(slash - start) : n;
    px_net *net = &t->nets[t->n];
    int v4 = 0;
    if (!to_addr(start, alen, net->addr, &v4)) goto bad;
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash) {
      const char *d = slash + 1;
      if (d == p || p - d > 3) goto bad;
      bits = 0;
      for (; d < p; d++) {
        if (*d < '0' || *d > '9') goto bad;
        bits = bits * 10 + (unsigned)(*d - '0');
      }
      if (bits > max) goto bad;
    }
    net->bits = bits + (v4 ? 96 : 0);
    t->n++;
    continue;
  bad:
    snprintf(err, errlen, "not an address or network: %.*s", (int)(n > 60 ? 60 : n), start);
    free(t);
    return NULL;
  }
  return t;
}

void px_free(px_trust *t) { free(t); }

static int trusted_bytes(const px_trust *t, const uint8_t a[16]) {
  if (t->any) return 1;
  for (size_t i = 0; i < t->n; i++)
    if (in_net(&t->nets[i], a)) return 1;
  return 0;
}

int px_trusted(const px_trust *t, const char *addr, size_t len) {
  uint8_t a[16];
  if (!t || !to_addr(addr, len, a, NULL)) return 0;
  return trusted_bytes(t, a);
}

static void trim(const char **s, size_t *n) {
  while (*n && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
  while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

/* One X-Forwarded-For entry without its port: "[v6]:port", "v6",
 * "v4:port" or "v4". */
static void strip_port(const char **s, size_t *n) {
  const char *p = *s;
  if (*n && p[0] == '[') {
    const char *close = memchr(p, ']', *n);
    if (close) {
      *s = p + 1;
      *n = (size_t)(close - p - 1);
    }
    return;
  }
  const char *colon = memchr(p, ':', *n);
  if (colon && !memchr(colon + 1, ':', *n - (size_t)(colon - p) - 1))
    *n = (size_t)(colon - p); /* exactly one colon: IPv4 with a port */
}

int px_client(const px_trust *t, const char *v, size_t len, const char **out, size_t *outlen) {
  if (!t) return 0;
  size_t end = len;
  int found = 0;
  while (end > 0) {
    size_t start = end;
    while (start > 0 && v[start - 1] != ',') start--;
    const char *e = v + start;
    size_t n = end - start;
    trim(&e, &n);
    strip_port(&e, &n);
    uint8_t a[16];
    if (!to_addr(e, n, a, NULL)) break; /* garbage: trust stops here */
    *out = e;
    *outlen = n;
    found = 1;
    if (!trusted_bytes(t, a)) break; /* the first hop we do not run */
    if (!start) break;
    end = start - 1;
  }
  return found;
}

const char *px_scheme(const char *v, size_t len) {
  size_t start = len;
  while (start > 0 && v[start - 1] != ',') start--;
  const char *e = v + start;
  size_t n = len - start;
  trim(&e, &n);
  if (n == 5 && !strncasecmp(e, "https", 5)) return "https";
  if (n == 4 && !strncasecmp(e, "http", 4)) return "http";
  return NULL;
}

/* --- RFC 7239 Forwarded ------------------------------------------------------
 * Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::17]:4711"
 * A list of elements (one per proxy, in the order they were added), each a
 * ';'-list of name=value pairs, a value a token or a quoted-string (which may
 * hold ',', ';' and backslash escapes). One pass, left to right, remembering
 * the last PX_FWD_MAX elements in a ring (no allocation); then the same walk
 * from the right as for X-Forwarded-For. */
#define PX_FWD_MAX 64

typedef struct fwd_el {
  const char *for_v; /* the for= address without quotes, brackets or port */
  size_t for_n;
  const char *proto; /* "http", "https" or NULL */
  int bad;           /* malformed, or no usable for= */
} fwd_el;

static int is_tchar(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return 1;
  return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* A token or quoted-string at v[*i]; sets the slice (inside the quotes) and
 * whether it held an escape. 0 when neither is there. */
static int fwd_value(const char *v, size_t len, size_t *i, const char **out, size_t *n,
                     int *escaped) {
  *escaped = 0;
  if (*i < len && v[*i] == '"') {
    size_t j = *i + 1;
    while (j < len && v[j] != '"') {
      if (v[j] == '\\') {
        *escaped = 1;
        if (++j == len) return 0;
      }
      j++;
    }
    if (j == len) return 0; /* unterminated */
    *out = v + *i + 1;
    *n = j - *i - 1;
    *i = j + 1;
    return 1;
  }
  size_t j = *i;
  while (j < len && is_tchar((unsigned char)v[j])) j++;
  if (j == *i) return 0;
  *out = v + *i;
  *n = j - *i;
  *i = j;
  return 1;
}

/* A node (RFC 7239 6): "v4", "v4:port", "[v6]", "[v6]:port", or an
 * obfuscated or unknown name; narrowed to the address part. 0 when what
 * follows the address is not a port. */
static int fwd_node(const char **s, size_t *n) {
  const char *p = *s, *end = p + *n, *port = NULL;
  if (*n && p[0] == '[') {
    const char *close = memchr(p, ']', *n);
    if (!close) return 0;
    *s = p + 1;
    *n = (size_t)(close - p - 1);
    if (close + 1 < end) {
      if (close[1] != ':') return 0;
      port = close + 2;
    }
  } else {
    const char *colon = memchr(p, ':', *n);
    if (colon) {
      *n = (size_t)(colon - p);
      port = colon + 1;
    }
  }
  if (port) { /* digits, or an obfuscated "_name" */
    if (port == end) return 0;
    int obf = *port == '_';
    for (const char *q = port + obf; q < end; q++)
      if (!(obf ? is_tchar((unsigned char)*q) : (*q >= '0' && *q <= '9'))) return 0;
  }
  return 1;
}

static void skip_ows(const char *v, size_t len, size_t *i) {
  while (*i < len && (v[*i] == ' ' || v[*i] == '\t')) (*i)++;
}

/* One element from v[*i] up to its ',' (or the end); *i ends after it. */
static void fwd_element(const char *v, size_t len, size_t *i, fwd_el *el) {
  memset(el, 0, sizeof *el);
  int have_for = 0;
  for (;;) {
    skip_ows(v, len, i);
    size_t name = *i;
    while (*i < len && is_tchar((unsigned char)v[*i])) (*i)++;
    size_t name_n = *i - name;
    const char *val;
    size_t val_n;
    int esc;
    if (!name_n || *i >= len || v[*i] != '=') goto bad;
    (*i)++;
    if (!fwd_value(v, len, i, &val, &val_n, &esc)) goto bad;
    if (name_n == 3 && !strncasecmp(v + name, "for", 3)) {
      if (have_for++) goto bad; /* a parameter may appear once (RFC 7239 4) */
      if (esc || !fwd_node(&val, &val_n)) {
        el->bad = 1; /* not an address we can use (none needs an escape) */
      } else {
        el->for_v = val;
        el->for_n = val_n;
      }
    } else if (name_n == 5 && !strncasecmp(v + name, "proto", 5)) {
      el->proto = val_n == 5 && !strncasecmp(val, "https", 5)  ? "https"
                  : val_n == 4 && !strncasecmp(val, "http", 4) ? "http"
                                                               : NULL;
    }
    skip_ows(v, len, i);
    if (*i < len && v[*i] == ';') {
      (*i)++;
      continue;
    }
    if (*i < len && v[*i] != ',') goto bad;
    break;
  }
  if (*i < len) (*i)++; /* the ',' */
  if (!have_for) el->bad = 1;
  return;
bad:
  el->bad = 1;
  /* on to the next ',' that is not inside a quoted-string */
  int quoted = 0;
  while (*i < len && (quoted || v[*i] != ',')) {
    if (v[*i] == '\\' && quoted && *i + 1 < len)
      (*i)++;
    else if (v[*i] == '"')
      quoted = !quoted;
    (*i)++;
  }
  if (*i < len) (*i)++;
}

int px_forwarded(const px_trust *t, const char *v, size_t len, const char **addr, size_t *alen,
                 const char **scheme) {
  if (!t) return 0;
  fwd_el ring[PX_FWD_MAX];
  size_t count = 0;
  size_t i = 0;
  while (i < len) {
    skip_ows(v, len, &i);
    if (i < len && v[i] == ',') { /* an empty list element */
      i++;
      continue;
    }
    if (i >= len) break;
    fwd_element(v, len, &i, &ring[count % PX_FWD_MAX]);
    count++;
  }
  size_t kept = count < PX_FWD_MAX ? count : PX_FWD_MAX;
  int found = 0;
  for (size_t k = 0; k < kept; k++) {
    const fwd_el *el = &ring[(count - 1 - k) % PX_FWD_MAX];
    uint8_t a[16];
    if (el->bad || !to_addr(el->for_v, el->for_n, a, NULL)) break; /* trust stops here */
    *addr = el->for_v;
    *alen = el->for_n;
    *scheme = el->proto;
    found = 1;
    if (!trusted_bytes(t, a)) break; /* the first hop we do not run: the client */
  }
  return found;
}
