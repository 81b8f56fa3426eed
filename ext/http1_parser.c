/* http1_parser.c: bytes in, a validated HTTP/1.x request out.
 *
 * Owns: request-line and header-field syntax (RFC 9112 sections 2-5), the
 * framing verdict (Content-Length / Transfer-Encoding, RFC 9112 section 6)
 * with its smuggling defences, and the in-place chunked decoder (RFC 9112
 * section 7.1).
 *
 * Must never: allocate, perform I/O, write into a head buffer, read outside
 * [buf, buf + len), or remember anything between calls beyond what the
 * caller hands back (`scanned`, the http1_chunked struct). Every verdict is
 * a plain return value; nothing here logs or aborts.
 *
 * Policy, in one place (RFC 9112 lets a recipient be lenient in several
 * spots; a server behind unknown proxies is safest when it is not, because
 * smuggling lives in the gap between a lenient and a strict parser):
 *   - lines end in CRLF only; a bare LF or a bare CR anywhere is a 400;
 *   - obs-fold, whitespace before the colon, and CTLs other than HTAB are
 *     rejected, never repaired;
 *   - raw non-ASCII bytes in the request target are tolerated only as
 *     well-formed UTF-8 (real clients send it; random high bytes are junk);
 *   - exactly one Content-Length field holding one decimal number;
 *   - Transfer-Encoding must end in a single "chunked"; "identity" is a
 *     no-op; any other coding before it is a 501;
 *   - one Host, shaped like uri-host[:port]; one Content-Type; a target
 *     whose form fits the method;
 *   - trailers are checked and dropped; one naming Content-Length,
 *     Transfer-Encoding or Host is refused. */
#include "http1_parser.h"

#include <limits.h>
#include <string.h>

#define DEFAULT_MAX_LINE 8192
#define DEFAULT_MAX_HEADERS 100
#define DEFAULT_MAX_TRAILER 8192

/* Character classes, one bit each, so every per-byte test is one load. */
enum {
  C_TCHAR = 0x01, /* token (RFC 9110 5.6.2) */
  C_VALUE = 0x02, /* field-vchar, obs-text, SP, HTAB: legal in a value */
  C_VCHAR = 0x04, /* visible ASCII: legal in a request target */
  C_HEX = 0x08,
  C_CTL = 0x10,     /* CTL other than HTAB/CR/LF, and DEL: never legal */
  C_QDTEXT = 0x20,  /* inside a quoted-string (backslash and DQUOTE aside) */
  C_REGNAME = 0x40, /* unreserved and sub-delims (RFC 3986), '%' aside */
  C_WS = 0x80,      /* SP, HTAB */
};

static const unsigned char ctab[256] = {
    0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0xa2, 0x00, 0x10, 0x10, 0x00, 0x10, 0x10,
    0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
    0xa2, 0x67, 0x06, 0x27, 0x67, 0x27, 0x67, 0x67, 0x66, 0x66, 0x67, 0x67, 0x66, 0x67, 0x67, 0x26,
    0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x26, 0x66, 0x26, 0x66, 0x26, 0x26,
    0x26, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
    0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x26, 0x06, 0x26, 0x27, 0x67,
    0x27, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
    0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x26, 0x27, 0x26, 0x67, 0x10,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
};

#define IS(c, cls) (ctab[(unsigned char)(c)] & (cls))

static unsigned char lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* `s` (n bytes) equals the lowercase literal `lit` ignoring ASCII case. */
static int ci_eq(const char *s, size_t n, const char *lit, size_t lit_len) {
  size_t i;
  if (n != lit_len) return 0;
  for (i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != (unsigned char)lit[i]) return 0;
  return 1;
}

int http1_name_is(const http1_header *h, const char *lower_name, size_t lower_len) {
  return ci_eq(h->name, h->name_len, lower_name, lower_len);
}

/* ------------------------------------------------------------------------ */
/* Request head                                                             */
/* ------------------------------------------------------------------------ */

/* Length of one well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned char c = p[0], lo = 0x80, hi = 0xBF;
  size_t n, i;
  if (c < 0xC2) return 0;
  if (c < 0xE0) {
    n = 2;
  } else if (c < 0xF0) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c < 0xF5) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if ((size_t)(end - p) < n) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (i = 2; i < n; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return n;
}

/* Looks for the blank line that ends the head, rejecting on the way the
 * bytes no head may contain, so that garbage is refused as it arrives rather
 * than when the caller's size cap runs out. Only looks one to three bytes
 * behind `from`, which is what makes resuming cheap. Returns 0 with *end set
 * (just past the blank line), HTTP1_INCOMPLETE, or -400. */
static int find_end(const unsigned char *b, size_t len, size_t skip, size_t from, size_t *end) {
  size_t i;
  for (i = from; i < len; i++) {
    unsigned char c = b[i];
    if (IS(c, C_VCHAR) || c >= 0x80) continue;
    if (c == '\n') {
      if (i == 0 || b[i - 1] != '\r') return -400; /* bare LF: see the policy at the top */
      if (i >= skip + 3 && b[i - 2] == '\n' && b[i - 3] == '\r') {
        *end = i + 1;
        return 0;
      }
    } else if (c == '\r') {
      if (i + 1 < len && b[i + 1] != '\n') return -400; /* bare CR */
    } else if (IS(c, C_CTL)) {
      return -400;
    } else if (i > 0 && b[i - 1] == '\n') {
      /* SP/HTAB opening a line: obs-fold, or space before the first field.
       * Both are refused (RFC 9112 2.2 and 5.2). */
      return -400;
    }
  }
  return HTTP1_INCOMPLETE;
}

/* method SP request-target SP HTTP-version, with eol at the CR. */
static int parse_request_line(const unsigned char *p, const unsigned char *eol,
                              http1_request *req) {
  const unsigned char *m = p, *t;
  size_t n;

  while (p < eol && IS(*p, C_TCHAR)) p++;
  if (p == m || p == eol || *p != ' ') return -400;
  req->method = (const char *)m;
  req->method_len = (size_t)(p - m);

  t = ++p;
  while (p < eol && *p != ' ') {
    if (IS(*p, C_VCHAR))
      p++;
    else if (*p >= 0x80 && (n = utf8_len(p, eol)) != 0)
      p += n;
    else
      return -400;
  }
  if (p == t || p == eol) return -400;
  req->target = (const char *)t;
  req->target_len = (size_t)(p - t);

  /* Exactly "HTTP/" DIGIT "." DIGIT; HTTP-name is case-sensitive. A major
   * version other than 1 is 505, anything malformed is junk. A later 1.x
   * is answered as the highest minor we speak, 1.1 (RFC 9110 6.2: minor
   * versions are compatible within a major one). */
  p++;
  if (eol - p != 8 || memcmp(p, "HTTP/", 5) != 0 || !is_digit(p[5]) || p[6] != '.' ||
      !is_digit(p[7]))
    return -400;
  if (p[5] != '1') return -505;
  req->version_minor = p[7] > '1' ? 1 : p[7] - '0';
  return 0;
}

/* Parses the complete head [p, e); e is just past the blank line. Each line
 * is located before it is read, so no check below can run past it. */
static int parse_head(const unsigned char *p, const unsigned char *e, size_t max_line,
                      size_t max_headers, http1_request *req) {
  const unsigned char *eol;
  size_t n = 0;
  int rc;

  req->num_headers = 0;
  eol = memchr(p, '\r', (size_t)(e - p));
  if (!eol || eol + 1 >= e || eol[1] != '\n') return -400;
  if ((size_t)(eol - p) > max_line) return -431;
  if ((rc = parse_request_line(p, eol, req)) != 0) return rc;
  if (!req->headers) max_headers = 0;

  for (p = eol + 2;; p = eol + 2) {
    const unsigned char *name = p, *v, *ve;
    eol = memchr(p, '\r', (size_t)(e - p));
    if (!eol || eol + 1 >= e || eol[1] != '\n') return -400;
    if (eol == p) break;
    if ((size_t)(eol - p) > max_line) return -431;
    if (n == max_headers) return -431;
    while (p < eol && IS(*p, C_TCHAR)) p++;
    if (p == name || p == eol || *p != ':')
      return -400; /* empty name, or space/CTL/non-token before the colon */
    req->headers[n].name = (const char *)name;
    req->headers[n].name_len = (size_t)(p - name);
    for (v = ++p; p < eol; p++)
      if (!IS(*p, C_VALUE)) return -400;
    while (v < eol && IS(*v, C_WS)) v++;
    for (ve = eol; ve > v && IS(ve[-1], C_WS);) ve--;
    req->headers[n].value = (const char *)v;
    req->headers[n].value_len = (size_t)(ve - v);
    req->num_headers = ++n;
  }
  if (eol + 2 != e) return -400;
  return 0;
}

int http1_parse_request(const char *buf, size_t len, size_t *scanned, const http1_limits *limits,
                        http1_request *req) {
  const unsigned char *b = (const unsigned char *)buf;
  size_t max_line = limits ? limits->max_line : DEFAULT_MAX_LINE;
  size_t max_headers = limits ? limits->max_headers : DEFAULT_MAX_HEADERS;
  size_t skip = 0, from = 0, end = 0;
  int rc;

  /* Empty lines before the request line are skipped (RFC 9112 2.2), e.g.
   * the stray CRLF some clients send after a POST body. They count against
   * max_line so the skip, redone on every call, stays cheap. */
  while (skip + 1 < len && b[skip] == '\r' && b[skip + 1] == '\n') skip += 2;
  if (skip > max_line) {
    rc = -400;
    goto done;
  }

  /* Resume three bytes back: a CRLFCRLF or a CR-then-junk pair may straddle
   * the old end of the buffer. */
  if (scanned && *scanned <= len && *scanned > 3) from = *scanned - 3;
  if (from < skip) from = skip;
  rc = find_end(b, len, skip, from, &end);
  if (rc == HTTP1_INCOMPLETE) {
    if (scanned) *scanned = len;
    return rc;
  }
  if (rc == 0) {
    if (end > INT_MAX)
      rc = -431;
    else if ((rc = parse_head(b + skip, b + end, max_line, max_headers, req)) == 0)
      rc = (int)end;
  }
done:
  if (scanned) *scanned = 0;
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

/* Next element of a comma-separated list, OWS-trimmed. Empty elements are
 * returned too (callers decide whether they matter); *p becomes NULL after
 * the last one. */
static int next_item(const char **p, const char *e, const char **s, size_t *n) {
  const char *a = *p, *c = NULL, *z;
  if (!a) return 0;
  if (a < e) c = memchr(a, ',', (size_t)(e - a));
  z = c ? c : e;
  *p = c ? c + 1 : NULL;
  while (a < z && IS(*a, C_WS)) a++;
  while (z > a && IS(z[-1], C_WS)) z--;
  *s = a;
  *n = (size_t)(z - a);
  return 1;
}

int http1_is_token(const char *s, size_t n) {
  size_t i;
  if (!n) return 0;
  for (i = 0; i < n; i++)
    if (!IS(s[i], C_TCHAR)) return 0;
  return 1;
}

/* 1*DIGIT, nothing else: no sign, no space, no list, no overflow. */
int http1_parse_decimal(const char *s, size_t n, uint64_t *out) {
  uint64_t v = 0;
  size_t i;
  if (!n) return -1;
  for (i = 0; i < n; i++) {
    unsigned d = (unsigned)((unsigned char)s[i] - '0');
    if (d > 9 || v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

enum { NEED_HOST = 1, NEED_PORT = 2 };

/* uri-host [ ":" port ] (RFC 3986 3.2.2-3.2.3). Permissive inside brackets
 * (IPv6 and IPvFuture share one alphabet here) but never lets through the
 * delimiters that would change where a URL's authority ends. */
static int valid_hostport(const unsigned char *p, const unsigned char *e, int need) {
  const unsigned char *h = p;
  if (p < e && *p == '[') {
    for (h = ++p; p < e && *p != ']'; p++)
      if (!IS(*p, C_REGNAME) && *p != ':') return 0;
    if (p == e || p == h) return 0;
    p++;
  } else {
    while (p < e && *p != ':') {
      if (*p == '%') {
        if (e - p < 3 || !IS(p[1], C_HEX) || !IS(p[2], C_HEX)) return 0;
        p += 3;
      } else if (IS(*p, C_REGNAME)) {
        p++;
      } else {
        return 0;
      }
    }
    if ((need & NEED_HOST) && p == h) return 0;
  }
  if (p == e) return !(need & NEED_PORT);
  if (*p++ != ':') return 0;
  if ((need & NEED_PORT) && p == e) return 0;
  for (; p < e; p++)
    if (!is_digit(*p)) return 0;
  return 1;
}

/* Methods whose semantics (RFC 9110, RFC 5789) give "*" no meaning. Other
 * extension methods define their own targets (SSDP's M-SEARCH uses "*"), so
 * they are left to the application. */
static int star_forbidden(const char *m, size_t n) {
  static const char *const names[] = {"GET",    "HEAD",    "POST",  "PUT",
                                      "DELETE", "CONNECT", "TRACE", "PATCH"};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i]) == n && memcmp(names[i], m, n) == 0) return 1;
  return 0;
}

/* RFC 9112 3.2: origin-form, absolute-form, authority-form (CONNECT only,
 * and CONNECT only with it), asterisk-form. */
static int check_target(const http1_request *req) {
  const unsigned char *t = (const unsigned char *)req->target;
  const unsigned char *e = t + req->target_len, *p = t, *a, *at;

  if (req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0)
    return valid_hostport(t, e, NEED_HOST | NEED_PORT) ? 0 : -400;
  if (t == e) return -400;
  if (*t == '/') return 0;
  if (e - t == 1 && *t == '*') return star_forbidden(req->method, req->method_len) ? -400 : 0;

  /* absolute-form, with an authority: an origin server has no use for
   * scheme-only URIs, and "host:port" would otherwise pass as a scheme. */
  if ((unsigned)(lower(*p) - 'a') >= 26) return -400; /* a scheme starts with a letter */
  while (p < e &&
         ((unsigned)(lower(*p) - 'a') < 26 || is_digit(*p) || *p == '+' || *p == '-' || *p == '.'))
    p++;
  if (e - p < 3 || p[0] != ':' || p[1] != '/' || p[2] != '/') return -400;
  a = p += 3;
  while (p < e && *p != '/' && *p != '?' && *p != '#') p++;
  at = memchr(a, '@', (size_t)(p - a));
  if (at) {
    const unsigned char *u;
    for (u = a; u < at; u++) {
      if (*u == '%') {
        if (at - u < 3 || !IS(u[1], C_HEX) || !IS(u[2], C_HEX)) return -400;
        u += 2;
      } else if (!IS(*u, C_REGNAME) && *u != ':') {
        return -400;
      }
    }
    a = at + 1;
  }
  return valid_hostport(a, p, NEED_HOST) ? 0 : -400;
}

/* What the header fields said, gathered one field at a time. */
typedef struct {
  unsigned hosts, lengths, types;
  int te, te_chunked, te_last_chunked, te_unknown;
  int close, keep, conn_upgrade, up_ws, expect, sse;
  uint64_t length;
} framing_facts;

/* One handler per header name that matters: 0, or a negated status. */
typedef int (*field_fn)(framing_facts *f, const char *v, const char *ve);

static int on_host(framing_facts *f, const char *v, const char *ve) {
  /* RFC 9112 3.2: one Host, and a valid one. */
  if (f->hosts++ || !valid_hostport((const unsigned char *)v, (const unsigned char *)ve, 0))
    return -400;
  return 0;
}

static int on_expect(framing_facts *f, const char *v, const char *ve) {
  const char *s;
  size_t n;
  while (next_item(&v, ve, &s, &n)) f->expect |= ci_eq(s, n, "100-continue", 12);
  return 0;
}

static int on_accept(framing_facts *f, const char *v, const char *ve) {
  const char *s;
  size_t n;
  while (next_item(&v, ve, &s, &n)) {
    const char *semi = n ? memchr(s, ';', n) : NULL;
    if (semi)
      for (n = (size_t)(semi - s); n && IS(s[n - 1], C_WS);) n--;
    f->sse |= ci_eq(s, n, "text/event-stream", 17);
  }
  return 0;
}

static int on_upgrade(framing_facts *f, const char *v, const char *ve) {
  const char *s;
  size_t n;
  while (next_item(&v, ve, &s, &n)) {
    const char *slash = n ? memchr(s, '/', n) : NULL;
    f->up_ws |= ci_eq(s, slash ? (size_t)(slash - s) : n, "websocket", 9);
  }
  return 0;
}

static int on_connection(framing_facts *f, const char *v, const char *ve) {
  const char *s;
  size_t n;
  while (next_item(&v, ve, &s, &n)) {
    f->close |= ci_eq(s, n, "close", 5);
    f->keep |= ci_eq(s, n, "keep-alive", 10);
    f->conn_upgrade |= ci_eq(s, n, "upgrade", 7);
  }
  return 0;
}

static int on_content_type(framing_facts *f, const char *v, const char *ve) {
  (void)v;
  (void)ve;
  /* A singleton that decides how the body is read: two of them let a
   * filter in front and the application disagree about the content. */
  return f->types++ ? -400 : 0;
}

static int on_content_length(framing_facts *f, const char *v, const char *ve) {
  /* RFC 9110 8.6 allows either rejecting or collapsing "5, 5" and
   * repeats; rejecting leaves no room for two readings. */
  if (f->lengths++ || http1_parse_decimal(v, (size_t)(ve - v), &f->length)) return -400;
  return 0;
}

static int on_transfer_encoding(framing_facts *f, const char *v, const char *ve) {
  const char *s;
  size_t n;
  f->te = 1;
  while (next_item(&v, ve, &s, &n)) {
    /* Empty elements and parameters are legal list syntax, but other
     * parsers disagree on them; refusing is cheaper than guessing. */
    if (!http1_is_token(s, n)) return -400;
    if (ci_eq(s, n, "chunked", 7)) {
      if (f->te_chunked++) return -400; /* RFC 9112 6.1: chunked at most once */
      f->te_last_chunked = 1;
    } else {
      f->te_last_chunked = 0;
      if (!ci_eq(s, n, "identity", 8)) f->te_unknown = 1;
    }
  }
  return 0;
}

static const struct {
  const char *name; /* lower case */
  size_t len;
  field_fn fn;
} framing_fields[] = {
    {"host", 4, on_host},
    {"expect", 6, on_expect},
    {"accept", 6, on_accept},
    {"upgrade", 7, on_upgrade},
    {"connection", 10, on_connection},
    {"content-type", 12, on_content_type},
    {"content-length", 14, on_content_length},
    {"transfer-encoding", 17, on_transfer_encoding},
};

/* The body's framing, once every field is in (RFC 9112 6.1 and 6.3): TE in
 * 1.0 is faulty framing, TE with CL is a smuggling attempt, and a request
 * whose last coding is not chunked has no knowable length. Only then is an
 * unknown coding a 501. */
static int decide_body(const framing_facts *f, int v11, http1_framing *out) {
  if (f->te) {
    if (!v11 || f->lengths || !f->te_last_chunked) return -400;
    if (f->te_unknown) return -501;
    out->body = HTTP1_BODY_CHUNKED;
  } else if (f->lengths) {
    out->body = HTTP1_BODY_LENGTH;
    out->content_length = f->length;
  }
  return 0;
}

int http1_request_framing(const http1_request *req, http1_framing *out) {
  const int v11 = req->version_minor == 1;
  framing_facts f;
  size_t i, k;
  int rc;

  memset(out, 0, sizeof *out);
  memset(&f, 0, sizeof f);
  for (i = 0; i < req->num_headers; i++) {
    const http1_header *h = &req->headers[i];
    const char *v = h->value ? h->value : "";
    for (k = 0; k < sizeof framing_fields / sizeof framing_fields[0]; k++) {
      if (framing_fields[k].len != h->name_len ||
          !http1_name_is(h, framing_fields[k].name, framing_fields[k].len))
        continue;
      if ((rc = framing_fields[k].fn(&f, v, v + h->value_len)) != 0) return rc;
      break;
    }
  }

  if ((rc = check_target(req)) != 0) return rc;
  if (v11 && !f.hosts) return -400;
  if ((rc = decide_body(&f, v11, out)) != 0) return rc;
  out->keep_alive = v11 ? !f.close : (f.keep && !f.close);
  out->expect_continue = v11 && f.expect; /* RFC 9110 10.1.1: 1.0 ignores it */
  out->has_host = f.hosts != 0;
  out->upgrade_websocket = v11 && f.up_ws && f.conn_upgrade;
  out->accept_event_stream = f.sse != 0;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Chunked decoder                                                          */
/* ------------------------------------------------------------------------ */

/* One state per position in the grammar (RFC 9112 7.1):
 *   chunk-size [ chunk-ext ] CRLF chunk-data CRLF ... last-chunk
 *   trailer-section CRLF
 *   chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 * Zero must be the first state: the caller starts from a zeroed struct. */
enum {
  CH_SIZE_FIRST = 0, /* first hex digit of a size */
  CH_SIZE,           /* more hex digits */
  CH_SIZE_BWS,       /* blanks after the size: only ";" may follow */
  CH_EXT_NAME_FIRST, /* after ";": blanks, then a token */
  CH_EXT_NAME,
  CH_EXT_NAME_BWS,  /* blanks after a name: "=" or ";" */
  CH_EXT_VAL_FIRST, /* after "=": blanks, then token or quoted-string */
  CH_EXT_TOKEN,
  CH_EXT_QUOTED,
  CH_EXT_QUOTED_ESC,
  CH_EXT_QUOTED_END, /* just past the closing quote */
  CH_EXT_VAL_BWS,    /* blanks after a value: only ";" may follow */
  CH_SIZE_LF,        /* CR of the size line seen */
  CH_DATA,
  CH_DATA_CR,
  CH_DATA_LF,
  CH_TR_LINE, /* start of a trailer line or of the final CRLF */
  CH_TR_NAME,
  CH_TR_VALUE,
  CH_TR_LF,
  CH_END_LF,
  CH_DONE,
  CH_FAIL_400,
  CH_FAIL_431
};

/* Trailer fields that would change framing or routing if anything
 * downstream merged them into the header section (RFC 9110 6.5.1); we drop
 * trailers, but their presence is an attack, so the request is refused. The
 * matcher keeps one bit per candidate in `hex_digits`, which holds digit
 * counts only while a size is being read. */
static const struct {
  const char *name;
  size_t len;
} forbidden_trailers[] = {
    {"content-length", 14},
    {"transfer-encoding", 17},
    {"host", 4},
};
#define N_FORBIDDEN (sizeof forbidden_trailers / sizeof forbidden_trailers[0])
#define FORBIDDEN_ALL ((uint8_t)((1u << N_FORBIDDEN) - 1))

/* Feeds name byte c, at position line_len, to the forbidden-name matcher. */
static void trailer_match(http1_chunked *d, unsigned char c) {
  size_t k;
  for (k = 0; k < N_FORBIDDEN; k++)
    if (d->line_len >= forbidden_trailers[k].len ||
        (unsigned char)forbidden_trailers[k].name[d->line_len] != lower(c))
      d->hex_digits &= (uint8_t) ~(1u << k);
  d->line_len++;
}

static int hexval(unsigned char c) { return c <= '9' ? c - '0' : lower(c) - 'a' + 10; }

/* The decoder's byte classes: what the chunk-ext, CRLF and trailer grammar
 * tells apart. K_QD is qdtext that is neither a token character, a blank
 * nor one of the delimiters named here (":" "(" "," obs-text...). */
enum { K_BAD, K_CR, K_LF, K_SEMI, K_EQ, K_DQ, K_BSL, K_WS, K_TCHAR, K_QD, K_N };

static unsigned byte_class(unsigned char c) {
  switch (c) {
  case '\r': return K_CR;
  case '\n': return K_LF;
  case ';': return K_SEMI;
  case '=': return K_EQ;
  case '"': return K_DQ;
  case '\\': return K_BSL;
  default: return IS(c, C_WS) ? K_WS : IS(c, C_TCHAR) ? K_TCHAR : IS(c, C_QDTEXT) ? K_QD : K_BAD;
  }
}

/* The moves that only depend on the byte's class: next state + 1, 0 for
 * "malformed" (400). States with more to do than moving (size digits, the
 * end of the size line, trailer names) are handled before this table. */
#define TO(s) ((uint8_t)((s) + 1))
#define QDTEXT_TO(s)                                                                               \
  [K_TCHAR] = TO(s), [K_WS] = TO(s), [K_QD] = TO(s), [K_SEMI] = TO(s), [K_EQ] = TO(s)
static const uint8_t ch_moves[CH_FAIL_431 + 1][K_N] = {
    /* after the size's digits: CR, an extension, or blanks before one */
    [CH_SIZE] =
        {[K_CR] = TO(CH_SIZE_LF), [K_SEMI] = TO(CH_EXT_NAME_FIRST), [K_WS] = TO(CH_SIZE_BWS)},
    [CH_SIZE_BWS] = {[K_SEMI] = TO(CH_EXT_NAME_FIRST), [K_WS] = TO(CH_SIZE_BWS)},
    [CH_EXT_NAME_FIRST] = {[K_TCHAR] = TO(CH_EXT_NAME), [K_WS] = TO(CH_EXT_NAME_FIRST)},
    [CH_EXT_NAME] = {[K_CR] = TO(CH_SIZE_LF),
                     [K_SEMI] = TO(CH_EXT_NAME_FIRST),
                     [K_EQ] = TO(CH_EXT_VAL_FIRST),
                     [K_WS] = TO(CH_EXT_NAME_BWS),
                     [K_TCHAR] = TO(CH_EXT_NAME)},
    [CH_EXT_NAME_BWS] = {[K_SEMI] = TO(CH_EXT_NAME_FIRST),
                         [K_EQ] = TO(CH_EXT_VAL_FIRST),
                         [K_WS] = TO(CH_EXT_NAME_BWS)},
    [CH_EXT_VAL_FIRST] =
        {[K_DQ] = TO(CH_EXT_QUOTED), [K_TCHAR] = TO(CH_EXT_TOKEN), [K_WS] = TO(CH_EXT_VAL_FIRST)},
    [CH_EXT_TOKEN] = {[K_CR] = TO(CH_SIZE_LF),
                      [K_SEMI] = TO(CH_EXT_NAME_FIRST),
                      [K_WS] = TO(CH_EXT_VAL_BWS),
                      [K_TCHAR] = TO(CH_EXT_TOKEN)},
    /* CR inside quotes is an unbalanced quote: no entry */
    [CH_EXT_QUOTED] =
        {QDTEXT_TO(CH_EXT_QUOTED), [K_DQ] = TO(CH_EXT_QUOTED_END), [K_BSL] = TO(CH_EXT_QUOTED_ESC)},
    [CH_EXT_QUOTED_ESC] =
        {QDTEXT_TO(CH_EXT_QUOTED), [K_DQ] = TO(CH_EXT_QUOTED), [K_BSL] = TO(CH_EXT_QUOTED)},
    [CH_EXT_QUOTED_END] =
        {[K_CR] = TO(CH_SIZE_LF), [K_SEMI] = TO(CH_EXT_NAME_FIRST), [K_WS] = TO(CH_EXT_VAL_BWS)},
    /* blanks after a value may only precede ";" */
    [CH_EXT_VAL_BWS] = {[K_SEMI] = TO(CH_EXT_NAME_FIRST), [K_WS] = TO(CH_EXT_VAL_BWS)},
    [CH_DATA_CR] = {[K_CR] = TO(CH_DATA_LF)}, /* anything else: data over its size */
    [CH_DATA_LF] = {[K_LF] = TO(CH_SIZE_FIRST)},
    [CH_TR_LINE] = {[K_CR] = TO(CH_END_LF)}, /* a name is handled before */
    [CH_TR_VALUE] = {QDTEXT_TO(CH_TR_VALUE), [K_DQ] = TO(CH_TR_VALUE), [K_BSL] = TO(CH_TR_VALUE),
                     [K_CR] = TO(CH_TR_LF)},
    [CH_TR_LF] = {[K_LF] = TO(CH_TR_LINE)},
    [CH_END_LF] = {[K_LF] = TO(CH_DONE)},
};
#undef QDTEXT_TO
#undef TO

/* A size digit. Returns 1 when c was one, 0 when it is not (the table
 * decides), -1 on overflow. */
static int size_digit(http1_chunked *d, unsigned char c) {
  if (!IS(c, C_HEX)) return 0;
  /* Leading zeros are free; a 17th significant digit overflows. */
  if ((d->chunk_left || c != '0') && ++d->hex_digits > 16) return -1;
  d->chunk_left = (d->chunk_left << 4) | (uint64_t)hexval(c);
  d->state = CH_SIZE;
  return 1;
}

/* A byte of a trailer name (or the first of a trailer line). Returns 1
 * when taken, 0 when the table decides, -1 malformed or forbidden. */
static int trailer_name_byte(http1_chunked *d, unsigned char c) {
  size_t k;
  if (d->state == CH_TR_LINE) {
    if (!IS(c, C_TCHAR)) return 0; /* CR ends the trailers; obs-fold, a blank name, bare LF: 400 */
    d->hex_digits = FORBIDDEN_ALL;
    d->line_len = 0;
    trailer_match(d, c);
    d->state = CH_TR_NAME;
    return 1;
  }
  if (IS(c, C_TCHAR)) {
    trailer_match(d, c);
    return 1;
  }
  if (c != ':') return -1;
  for (k = 0; k < N_FORBIDDEN; k++)
    if ((d->hex_digits >> k & 1) && forbidden_trailers[k].len == d->line_len) return -1;
  d->state = CH_TR_VALUE;
  return 1;
}

/* One byte of everything but chunk data. Returns 0, or -1 malformed. */
static int chunk_byte(http1_chunked *d, unsigned char c) {
  int taken = 0;
  switch (d->state) {
  case CH_SIZE_FIRST:
    taken = size_digit(d, c);
    if (!taken) return -1; /* no digit: "+5", "-5", " 5", ";x", empty line */
    break;
  case CH_SIZE: taken = size_digit(d, c); break;
  case CH_SIZE_LF: /* the size line ends: data, or the last chunk's trailers */
    if (c != '\n') return -1;
    d->line_len = 0;
    d->hex_digits = 0;
    d->state = d->chunk_left ? CH_DATA : CH_TR_LINE;
    return 0;
  case CH_TR_LINE:
  case CH_TR_NAME: taken = trailer_name_byte(d, c); break;
  default: break;
  }
  if (taken) return taken < 0 ? -1 : 0;
  if (d->state > CH_FAIL_431) return -1;
  uint8_t to = ch_moves[d->state][byte_class(c)];
  if (!to) return -1;
  d->state = (uint8_t)(to - 1);
  return 0;
}

ssize_t http1_decode_chunked(http1_chunked *d, char *buf, size_t *len) {
  const size_t in = *len;
  const size_t max_trailer = d->max_trailer ? d->max_trailer : DEFAULT_MAX_TRAILER;
  size_t r = 0, w = 0;

  *len = 0;
  if (d->state == CH_FAIL_400) return -400;
  if (d->state == CH_FAIL_431) return -431;

  while (r < in && d->state != CH_DONE) {
    unsigned char c;
    if (d->state == CH_DATA) {
      size_t n = in - r;
      if ((uint64_t)n > d->chunk_left) n = (size_t)d->chunk_left;
      if (w != r) memmove(buf + w, buf + r, n);
      w += n;
      r += n;
      d->chunk_left -= n;
      d->total += n;
      if (!d->chunk_left) d->state = CH_DATA_CR;
      continue;
    }

    c = (unsigned char)buf[r++];
    if (d->state < CH_SIZE_LF && c != '\r' && ++d->line_len > HTTP1_CHUNK_LINE_MAX) goto bad;
    if (d->state >= CH_TR_LINE && ++d->trailer_bytes > max_trailer) {
      d->state = CH_FAIL_431;
      *len = w;
      return -431;
    }
    if (chunk_byte(d, c)) goto bad;
  }

  *len = w;
  if (d->state == CH_DONE) return (ssize_t)(in - r);
  return HTTP1_INCOMPLETE;

bad:
  d->state = CH_FAIL_400;
  *len = w;
  return -400;
}
