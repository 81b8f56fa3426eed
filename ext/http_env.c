/* http_env: the WSGI environ blob of a parsed request (see http_env_fixed
 * in http.h for its shape, http_conn.h for where this file sits).
 *
 * Owns: the fixed part (method, target, decoded path, query, protocol,
 * peer), HTTP_* keys with repeated fields joined, and a trusted proxy's
 * word on the client.
 *
 * Must never: touch the socket, the connection's states or the response;
 * it reads the request and writes h->env only. Threads: big lock held. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ascii.h"
#include "http_conn.h"
#include "http_facts.h"
#include "proxy.h"

static int env_key(sbuf *e, const char *k, size_t kl) {
  if (e->len && sb_put(e, "", 1)) return -1; /* the NUL separator */
  if (sb_put(e, k, kl) || sb_put(e, "", 1)) return -1;
  return 0;
}

int http_env_add(sbuf *e, const char *k, const char *v, size_t vl) {
  if (env_key(e, k, strlen(k))) return -1;
  return sb_put(e, v, vl);
}

/* Percent-decode a path (PEP 3333: PATH_INFO is the decoded path, each byte
 * one latin-1 character). A decoded NUL is refused: it would end the key in
 * our blob and means nothing in a path. Bad escapes pass through as they
 * are, as most servers do. */
static int put_path(sbuf *e, const char *p, size_t n) {
  if (sb_grow(e, n)) return -1;
  char *o = e->p + e->len;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (p[i] == '%' && i + 2 < n && (hi = ascii_hexval((unsigned char)p[i + 1])) >= 0 &&
        (lo = ascii_hexval((unsigned char)p[i + 2])) >= 0) {
      char ch = (char)(hi * 16 + lo);
      if (!ch) return -1;
      *o++ = ch;
      i += 2;
    } else {
      *o++ = p[i];
    }
  }
  e->len = (size_t)(o - e->p);
  return 0;
}

static int header_skipped(const http1_header *hd, const http_conn *h) {
  /* A name with '_' would alias a dashed one once mangled (X_Forwarded_For
   * vs X-Forwarded-For): dropping them closes that spoofing hole. */
  if (memchr(hd->name, '_', hd->name_len)) return 1;
  if (http1_name_is(hd, "content-length", 14)) return 1; /* added at dispatch */
  if (h->fr.body == HTTP1_BODY_CHUNKED && http1_name_is(hd, "transfer-encoding", 17))
    return 1; /* the body reaches the app decoded */
  return 0;
}

/* A trusted proxy's word on the client (proxy.h): later keys in the blob
 * replace earlier ones when the environ is built, so REMOTE_ADDR and
 * wsgi.url_scheme are simply written again. Only the last Forwarded,
 * X-Forwarded-For and X-Forwarded-Proto lines count: the ones our nearest
 * proxy wrote. */
static int put_forwarded(sbuf *e, const http1_request *q, const px_trust *trust) {
  const http1_header *xff = NULL, *xfp = NULL, *fwd = NULL;
  for (size_t i = 0; i < q->num_headers; i++) {
    if (http1_name_is(&q->headers[i], "x-forwarded-for", 15))
      xff = &q->headers[i];
    else if (http1_name_is(&q->headers[i], "x-forwarded-proto", 17))
      xfp = &q->headers[i];
    else if (http1_name_is(&q->headers[i], "forwarded", 9))
      fwd = &q->headers[i];
  }
  const char *addr, *fscheme = NULL;
  size_t alen;
  /* RFC 7239 Forwarded, when it names the client, wins over X-Forwarded-* */
  if (fwd && px_forwarded(trust, fwd->value, fwd->value_len, &addr, &alen, &fscheme)) {
    if (http_env_add(e, "REMOTE_ADDR", addr, alen)) return -1;
    if (fscheme && http_env_add(e, "wsgi.url_scheme", fscheme, strlen(fscheme))) return -1;
    return 0;
  }
  if (xff && px_client(trust, xff->value, xff->value_len, &addr, &alen) &&
      http_env_add(e, "REMOTE_ADDR", addr, alen))
    return -1;
  const char *scheme = xfp ? px_scheme(xfp->value, xfp->value_len) : NULL;
  if (scheme && http_env_add(e, "wsgi.url_scheme", scheme, strlen(scheme))) return -1;
  return 0;
}

/* Repeated header names, linked in one pass with a hash table of names
 * (10,000 headers under raised limits cost 10,000 steps, not 50 million
 * comparisons): links[i] & LINK_MASK is the index of the next header with
 * header i's name (LINK_END: none), and LINK_REPEAT is set when header i
 * is itself a repeat, merged into the first of its name. */
#define LINK_REPEAT 0x80000000u
#define LINK_MASK 0x7fffffffu
#define LINK_END LINK_MASK

static int link_repeats(const http1_request *q, uint32_t *links) {
  size_t n = q->num_headers;
  for (size_t i = 0; i < n; i++) links[i] = LINK_END;
  if (n < 2) return 0;
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  /* two words per slot: first header of the name + 1 (0: free), last one */
  uint32_t stack_tab[2 * 128];
  uint32_t *tab = cap <= 128 ? stack_tab : calloc(2 * cap, sizeof *tab);
  if (!tab) return -1;
  if (tab == stack_tab) memset(tab, 0, 2 * cap * sizeof *tab);
  for (size_t i = 0; i < n; i++) {
    const http1_header *hd = &q->headers[i];
    size_t slot = hf_name_hash(hd->name, hd->name_len) & (cap - 1);
    for (;;) {
      uint32_t first = tab[2 * slot];
      if (!first) { /* a name not seen before */
        tab[2 * slot] = (uint32_t)i + 1;
        tab[2 * slot + 1] = (uint32_t)i;
        break;
      }
      const http1_header *f = &q->headers[first - 1];
      if (hd->name_len == f->name_len && ascii_same_ci(hd->name, f->name, hd->name_len)) {
        uint32_t last = tab[2 * slot + 1];
        links[last] = (links[last] & LINK_REPEAT) | (uint32_t)i;
        links[i] = LINK_REPEAT | LINK_END;
        tab[2 * slot + 1] = (uint32_t)i;
        break;
      }
      slot = (slot + 1) & (cap - 1); /* linear probing: the table is half empty */
    }
  }
  if (tab != stack_tab) free(tab);
  return 0;
}

/* HTTP_* (and CONTENT_TYPE) keys, each name once, repeats joined. */
static int put_headers(const http_conn *h, sbuf *e, const http1_request *q, const uint32_t *links) {
  for (size_t i = 0; i < q->num_headers; i++) {
    const http1_header *hd = &q->headers[i];
    if (links[i] & LINK_REPEAT) continue; /* merged into the first below */
    if (header_skipped(hd, h)) continue;
    if (http1_name_is(hd, "content-type", 12)) {
      if (env_key(e, "CONTENT_TYPE", 12)) return -1;
    } else {
      if (e->len && sb_put(e, "", 1)) return -1;
      if (sb_grow(e, hd->name_len + 6)) return -1;
      memcpy(e->p + e->len, "HTTP_", 5);
      e->len += 5;
      for (size_t k = 0; k < hd->name_len; k++) {
        int ch = (unsigned char)hd->name[k];
        e->p[e->len++] = ch == '-' ? '_' : (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
      }
      e->p[e->len++] = 0;
    }
    if (sb_put(e, hd->value, hd->value_len)) return -1;
    /* RFC 9110 5.3: repeated fields join with commas; cookies with "; "
     * (RFC 6265 5.4), which is what cookie parsers expect. */
    const char *sep = http1_name_is(hd, "cookie", 6) ? "; " : ", ";
    for (uint32_t j = links[i] & LINK_MASK; j != LINK_END; j = links[j] & LINK_MASK) {
      const http1_header *o = &q->headers[j];
      if (sb_put(e, sep, 2) || sb_put(e, o->value, o->value_len)) return -1;
    }
  }
  return 0;
}

const char *http_env_fixed(void) {
  return "REQUEST_METHOD REQUEST_URI PATH_INFO QUERY_STRING SERVER_PROTOCOL REMOTE_ADDR "
         "REMOTE_PORT";
}

/* A value after the first of the blob's fixed part (each one, even an
 * empty one, is preceded by its NUL separator). */
static int env_val(sbuf *e, const char *v, size_t vl) {
  if (sb_put(e, "", 1)) return -1;
  return sb_put(e, v, vl);
}

int http_env_build(http_conn *h, const http1_request *q) {
  sbuf *e = &h->env;
  e->len = 0;
  const char *t = q->target, *end = t + q->target_len;
  /* absolute-form: keep only the path and query */
  if (t < end && *t != '/' && *t != '*') {
    const char *s = memchr(t, ':', (size_t)(end - t));
    if (s && end - s > 2 && s[1] == '/' && s[2] == '/') {
      const char *slash = memchr(s + 3, '/', (size_t)(end - s - 3));
      const char *qm = memchr(s + 3, '?', (size_t)(end - s - 3));
      if (qm && (!slash || qm < slash)) slash = NULL;
      t = slash ? slash : (qm ? qm : end);
    }
  }
  const char *qm = memchr(t, '?', (size_t)(end - t));
  const char *pend = qm ? qm : end;
  char port[ASCII_U64_MAX];
  size_t pl = ascii_u64(port, h->c->peer_port);
  /* the fixed part, in http_env_fixed() order */
  if (sb_put(e, q->method, q->method_len)) return -1;
  if (env_val(e, q->target, q->target_len)) return -1;
  if (sb_put(e, "", 1)) return -1;
  if (t == pend && (!qm || t != q->target)) {
    if (sb_put(e, "/", 1)) return -1;
  } else if (put_path(e, t, (size_t)(pend - t))) {
    return -2;
  }
  if (env_val(e, qm ? qm + 1 : "", qm ? (size_t)(end - qm - 1) : 0)) return -1;
  if (env_val(e, q->version_minor ? "HTTP/1.1" : "HTTP/1.0", 8)) return -1;
  if (env_val(e, h->c->peer, strlen(h->c->peer))) return -1;
  if (env_val(e, port, (size_t)pl)) return -1;
  uint32_t stack_links[64], *links = stack_links;
  size_t n = q->num_headers;
  if (n > 64 && !(links = malloc(n * sizeof *links))) return -1;
  int rc = link_repeats(q, links) ? -1 : put_headers(h, e, q, links);
  if (links != stack_links) free(links);
  if (rc) return rc;
  if (h->set->trust && px_trusted(h->set->trust, h->c->peer, strlen(h->c->peer)))
    return put_forwarded(e, q, h->set->trust);
  return 0;
}
