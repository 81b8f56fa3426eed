/* resp: RESP2 reply scanning, parsing and command encoding (see resp.h). */
#include "resp.h"

#include "ascii.h"

#include <string.h>

/* One header line "<type><text>\r\n" starting at buf[pos]. Returns the
 * offset just past the LF, -1 bad, -2 need more. *end gets the offset of
 * the CR. A line is bounded (RESP_MAX_LINE) so a peer cannot make us scan
 * without end for a CRLF. */
static long line_end(const char *buf, size_t len, size_t pos, size_t *end) {
  size_t lim = len - pos > RESP_MAX_LINE ? pos + RESP_MAX_LINE : len;
  const char *cr = memchr(buf + pos, '\r', lim - pos);
  if (!cr) return lim < len || len - pos >= RESP_MAX_LINE ? -1 : -2;
  size_t at = (size_t)(cr - buf);
  if (at + 1 >= len) return -2;
  if (buf[at + 1] != '\n') return -1;
  *end = at;
  return (long)(at + 2);
}

/* A signed decimal integer filling buf[a..b) exactly. 0 or -1. */
static int parse_int(const char *buf, size_t a, size_t b, int64_t *v) {
  int neg = 0;
  uint64_t x = 0;
  if (a < b && buf[a] == '-') {
    neg = 1;
    a++;
  }
  if (a == b || b - a > 19) return -1;
  for (size_t i = a; i < b; i++) {
    unsigned d = (unsigned char)buf[i] - '0';
    if (d > 9) return -1;
    x = x * 10 + d;
  }
  if (x > (uint64_t)INT64_MAX) return -1;
  *v = neg ? -(int64_t)x : (int64_t)x;
  return 0;
}

/* One element's header at buf[pos]: fills type/n/str/len of `nd` and
 * returns the offset past the whole element when it is a leaf, or past
 * its header line when it is an array. -1 bad, -2 need more. */
static long element(const char *buf, size_t len, size_t pos, resp_node *nd) {
  size_t end;
  if (pos >= len) return -2;
  long next = line_end(buf, len, pos + 1, &end);
  if (next < 0) return next;
  nd->type = (unsigned char)buf[pos];
  nd->str = NULL;
  nd->len = 0;
  nd->n = 0;
  switch (nd->type) {
  case RESP_STATUS:
  case RESP_ERROR:
    nd->str = buf + pos + 1;
    nd->len = end - pos - 1;
    return next;
  case RESP_INT: return parse_int(buf, pos + 1, end, &nd->n) ? -1 : next;
  case RESP_BULK:
    if (parse_int(buf, pos + 1, end, &nd->n)) return -1;
    if (nd->n == -1) return next;
    if (nd->n < 0 || (uint64_t)nd->n > RESP_MAX_BULK) return -1;
    {
      size_t body = (size_t)next, stop = body + (size_t)nd->n;
      if (stop + 2 > len) return -2;
      if (buf[stop] != '\r' || buf[stop + 1] != '\n') return -1;
      nd->str = buf + body;
      nd->len = (size_t)nd->n;
      return (long)(stop + 2);
    }
  case RESP_ARRAY:
    if (parse_int(buf, pos + 1, end, &nd->n)) return -1;
    if (nd->n < -1 || nd->n > (int64_t)RESP_MAX_ELEMENTS) return -1;
    return next;
  default: return -1;
  }
}

long resp_scan(resp_scan_state *s, const char *buf, size_t len) {
  for (;;) {
    resp_node nd;
    long next = element(buf, len, s->pos, &nd);
    if (next < 0) return next;
    /* the element is complete: commit it */
    if (++s->nodes > RESP_MAX_NODES) return -1;
    s->pos = (size_t)next;
    if (nd.type == RESP_ARRAY && nd.n > 0) {
      if (s->depth == RESP_MAX_DEPTH) return -1;
      s->left[s->depth++] = nd.n;
      continue;
    }
    /* a leaf (or an empty/nil array) closes every array it completes */
    while (s->depth > 0 && --s->left[s->depth - 1] == 0) s->depth--;
    if (s->depth == 0) return (long)s->pos;
  }
}

long resp_parse(const char *buf, size_t len, resp_node *out, size_t cap, size_t *used) {
  int64_t left[RESP_MAX_DEPTH];
  int depth = 0;
  size_t pos = 0, n = 0;
  for (;;) {
    resp_node nd;
    long next = element(buf, len, pos, &nd);
    if (next < 0) return next;
    if (n == cap) return n >= RESP_MAX_NODES ? -1 : -3;
    out[n++] = nd;
    pos = (size_t)next;
    if (nd.type == RESP_ARRAY && nd.n > 0) {
      if (depth == RESP_MAX_DEPTH) return -1;
      left[depth++] = nd.n;
      continue;
    }
    while (depth > 0 && --left[depth - 1] == 0) depth--;
    if (depth == 0) {
      *used = pos;
      return (long)n;
    }
  }
}

static size_t digits(size_t v) {
  size_t d = 1;
  while (v >= 10) {
    v /= 10;
    d++;
  }
  return d;
}

size_t resp_encode_len(int argc, const size_t *lens) {
  size_t n = 1 + digits((size_t)argc) + 2;
  for (int i = 0; i < argc; i++) n += 1 + digits(lens[i]) + 2 + lens[i] + 2;
  return n;
}

size_t resp_encode(char *dst, int argc, const char *const *argv, const size_t *lens) {
  char *p = dst;
  *p++ = '*';
  p += ascii_u64(p, (uint64_t)argc);
  *p++ = '\r';
  *p++ = '\n';
  for (int i = 0; i < argc; i++) {
    *p++ = '$';
    p += ascii_u64(p, (uint64_t)lens[i]);
    *p++ = '\r';
    *p++ = '\n';
    if (lens[i]) memcpy(p, argv[i], lens[i]);
    p += lens[i];
    *p++ = '\r';
    *p++ = '\n';
  }
  return (size_t)(p - dst);
}
