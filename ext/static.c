/* static: see static.h for what this file owns and must never do.
 *
 * Two halves. The pure one (normalising targets, MIME types, dates, ETags,
 * Range and Accept-Encoding parsing, the conditional decision, building the
 * head) works on bytes only. The file-system one (locate, open_checked,
 * st_answer_request, st_open_file) uses realpath, stat and open, and
 * nothing above libc. */
#define _GNU_SOURCE
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ascii.h"
#include "http1_parser.h"
#include "http_facts.h"

/* --- bytes -------------------------------------------------------------- */

static int is_ows(int ch) { return ch == ' ' || ch == '\t'; }

static int is_digit(int ch) { return ch >= '0' && ch <= '9'; }

/* Trim optional whitespace from both ends of [*s, *s + *n). */
static void trim(const char **s, size_t *n) {
  while (*n && is_ows((unsigned char)**s)) (*s)++, (*n)--;
  while (*n && is_ows((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* --- targets ------------------------------------------------------------- */

/* The path part of a target ([*p, *pe)) and its query (NULL when none).
 * Returns -1 for a form with no path (asterisk, authority). */
static int split_target(const char *t, size_t len, const char **p, const char **pe, const char **q,
                        const char **qe) {
  const char *end = t + len, *s = t;
  if (s < end && *s != '/') { /* absolute-form: skip scheme://authority */
    const char *c = NULL;
    for (const char *x = s; x + 2 < end; x++)
      if (x[0] == ':' && x[1] == '/' && x[2] == '/') {
        c = x;
        break;
      }
    if (!c) return -1;
    s = c + 3;
    while (s < end && *s != '/' && *s != '?' && *s != '#') s++;
  }
  const char *e = s;
  while (e < end && *e != '?' && *e != '#') e++;
  *p = s;
  *pe = e;
  *q = *qe = NULL;
  if (e < end && *e == '?') {
    const char *x = e + 1;
    while (x < end && *x != '#') x++;
    *q = e + 1;
    *qe = x;
  }
  return 0;
}

int st_normalize(const char *target, size_t len, char *out, size_t cap, size_t *out_len,
                 int *dir_form) {
  const char *p, *end, *q, *qe;
  if (!cap || split_target(target, len, &p, &end, &q, &qe)) return ST_SKIP;
  size_t o = 0; /* committed length of out */
  int dir = 1;  /* "" (absolute-form without a path) is the root */
  while (p < end) {
    if (*p == '/') p++; /* the separator before each segment */
    const char *se = p;
    while (se < end && *se != '/') se++;
    size_t start = o ? o + 1 : 0, w = start;
    for (const char *i = p; i < se; i++) {
      int ch = (unsigned char)*i, hi, lo;
      if (ch == '%' && se - i > 2 && (hi = ascii_hexval((unsigned char)i[1])) >= 0 &&
          (lo = ascii_hexval((unsigned char)i[2])) >= 0) {
        ch = hi * 16 + lo;
        i += 2;
        if (ch == '/') return ST_REFUSE;
      }
      if (ch == '\\' || ch == 0) return ST_REFUSE;
      if (w + 1 >= cap) return ST_SKIP; /* keep room for the NUL */
      out[w++] = (char)ch;
    }
    size_t sl = w - start;
    if (sl == 2 && out[start] == '.' && out[start + 1] == '.') return ST_REFUSE;
    if (sl == 0 || (sl == 1 && out[start] == '.')) {
      dir = 1; /* an empty or "." segment names the folder it is in */
    } else {
      if (o) out[o] = '/';
      o = w;
      dir = 0;
    }
    p = se;
  }
  out[o] = 0;
  *out_len = o;
  *dir_form = dir;
  return ST_OK;
}

/* --- MIME types ------------------------------------------------------------ */

static const struct {
  const char *ext, *type;
} mime_table[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
};

const char *st_mime(const char *name, size_t len) {
  size_t i = len;
  while (i && name[i - 1] != '.' && name[i - 1] != '/') i--;
  /* no dot in the last segment, or a dot file without an extension */
  if (!i || name[i - 1] != '.' || i == 1 || name[i - 2] == '/') return "application/octet-stream";
  const char *ext = name + i;
  size_t el = len - i;
  for (size_t k = 0; k < sizeof mime_table / sizeof mime_table[0]; k++)
    if (strlen(mime_table[k].ext) == el && ascii_same_ci(ext, mime_table[k].ext, el))
      return mime_table[k].type;
  return "application/octet-stream";
}

/* --- validators ------------------------------------------------------------- */

size_t st_etag(char *out, size_t cap, uint64_t size, int64_t mtime_s, long mtime_ns, int gzip) {
  /* unsigned arithmetic: wraps (defined) for absurd times, never overflows */
  uint64_t ns = (uint64_t)mtime_s * 1000000000u + (uint64_t)mtime_ns;
  int n = snprintf(out, cap, "\"%llx-%llx%s\"", (unsigned long long)size, (unsigned long long)ns,
                   gzip ? "-gz" : "");
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

int st_etag_match(const char *v, size_t n, const char *etag, size_t el, int strong) {
  trim(&v, &n);
  if (n == 1 && v[0] == '*') return 1;
  size_t i = 0;
  for (;;) {
    while (i < n && (is_ows((unsigned char)v[i]) || v[i] == ',')) i++;
    if (i == n) return 0;
    int weak = 0;
    if (n - i >= 2 && v[i] == 'W' && v[i + 1] == '/') {
      weak = 1;
      i += 2;
    }
    if (i == n || v[i] != '"') return 0; /* malformed: matches nothing */
    const char *close = memchr(v + i + 1, '"', n - i - 1);
    if (!close) return 0;
    size_t tl = (size_t)(close - (v + i)) + 1;
    if (!(strong && weak) && tl == el && !memcmp(v + i, etag, el)) return 1;
    i += tl;
    while (i < n && is_ows((unsigned char)v[i])) i++;
    if (i < n && v[i] != ',') return 0;
  }
}

/* --- Range -------------------------------------------------------------------- */

/* Digits at v[*i] (the parser's decimal reader), saturating at UINT64_MAX:
 * a range past any file is unsatisfiable, not an overflow. Returns how many
 * were read. */
static size_t digits(const char *v, size_t n, size_t *i, uint64_t *out) {
  size_t start = *i;
  while (*i < n && is_digit((unsigned char)v[*i])) (*i)++;
  if (*i > start && http1_parse_decimal(v + start, *i - start, out)) *out = UINT64_MAX;
  if (*i == start) *out = 0;
  return *i - start;
}

int st_parse_range(const char *v, size_t n, uint64_t size, uint64_t *offset, uint64_t *length) {
  trim(&v, &n);
  size_t i = 0;
  if (n < 6 || !ascii_same_ci(v, "bytes", 5)) return ST_RANGE_NONE;
  i = 5;
  while (i < n && is_ows((unsigned char)v[i])) i++;
  if (i == n || v[i++] != '=') return ST_RANGE_NONE;
  while (i < n && is_ows((unsigned char)v[i])) i++;
  uint64_t first = 0, last = 0;
  int has_first = digits(v, n, &i, &first) > 0;
  if (i == n || v[i++] != '-') return ST_RANGE_NONE;
  int has_last = digits(v, n, &i, &last) > 0;
  while (i < n && is_ows((unsigned char)v[i])) i++;
  if (i != n) return ST_RANGE_NONE; /* several ranges, or junk */
  if (!has_first) {
    if (!has_last) return ST_RANGE_NONE;
    if (!last || !size) return ST_RANGE_UNSATISFIABLE; /* "-0", or nothing to take */
    *length = last < size ? last : size;
    *offset = size - *length;
    return ST_RANGE_OK;
  }
  if (has_last && last < first) return ST_RANGE_NONE; /* invalid: ignored */
  if (first >= size) return ST_RANGE_UNSATISFIABLE;
  if (!has_last || last >= size) last = size - 1;
  *offset = first;
  *length = last - first + 1;
  return ST_RANGE_OK;
}

/* --- Accept-Encoding -------------------------------------------------------- */

/* A qvalue (RFC 9110 12.4.2) in thousandths, or -1 when malformed. */
static int qvalue(const char *s, size_t n) {
  if (!n || (s[0] != '0' && s[0] != '1')) return -1;
  int q = (s[0] - '0') * 1000;
  if (n == 1) return q;
  if (s[1] != '.' || n > 5) return -1;
  int scale = 100;
  for (size_t i = 2; i < n; i++, scale /= 10) {
    if (!is_digit((unsigned char)s[i])) return -1;
    q += (s[i] - '0') * scale;
  }
  return q > 1000 ? -1 : q;
}

int st_accepts_gzip(const char *v, size_t n) {
  int gz = -1, star = -1; /* -1: not named; else the q it got */
  size_t i = 0;
  while (i < n) {
    while (i < n && (is_ows((unsigned char)v[i]) || v[i] == ',')) i++;
    size_t s = i;
    while (i < n && v[i] != ',' && v[i] != ';' && !is_ows((unsigned char)v[i])) i++;
    const char *name = v + s;
    size_t nl = i - s;
    int q = 1000;
    while (i < n && v[i] != ',') { /* parameters: only q matters */
      while (i < n && (is_ows((unsigned char)v[i]) || v[i] == ';')) i++;
      size_t ps = i;
      while (i < n && v[i] != ',' && v[i] != ';') i++;
      const char *p = v + ps;
      size_t pl = i - ps;
      trim(&p, &pl);
      if (pl >= 2 && ascii_lower((unsigned char)p[0]) == 'q' && p[1] == '=') {
        q = qvalue(p + 2, pl - 2);
        if (q < 0) q = 0; /* a malformed weight: do not count on it */
      }
    }
    if ((nl == 4 && ascii_same_ci(name, "gzip", 4)) ||
        (nl == 6 && ascii_same_ci(name, "x-gzip", 6)))
      gz = q > gz ? q : gz;
    else if (nl == 1 && name[0] == '*')
      star = q;
  }
  return gz >= 0 ? gz > 0 : star > 0;
}

/* --- the answer's head ------------------------------------------------------ */

/* Append to a->head; an overflow marks the answer unusable (head_len past
 * the end) rather than truncating a field. */
__attribute__((format(printf, 2, 3))) static void put(st_answer *a, const char *fmt, ...) {
  if (a->head_len >= sizeof a->head) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(a->head + a->head_len, sizeof a->head - a->head_len, fmt, ap);
  va_end(ap);
  a->head_len =
      n < 0 || (size_t)n >= sizeof a->head - a->head_len ? sizeof a->head : a->head_len + (size_t)n;
}

static void start(st_answer *a, int code) {
  a->status = code;
  a->head_len = 0;
  a->body = NULL;
  a->body_len = 0;
  a->offset = a->length = 0;
  put(a, "HTTP/1.1 %d %s\r\n", code, hf_reason(code));
}

/* 403 or 404 with a one-line text body. */
static int refuse(st_answer *a, const st_request *rq, int code) {
  start(a, code);
  static const char forbidden[] = "Forbidden\n", not_found[] = "Not Found\n";
  const char *body = code == 403 ? forbidden : not_found;
  size_t bl = strlen(body);
  put(a, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n", bl);
  if (!rq->is_head) {
    a->body = body;
    a->body_len = bl;
  }
  return code;
}

void st_plan(const st_request *rq, const st_file *f, st_answer *a) {
  char etag[64], date[30];
  size_t el = st_etag(etag, sizeof etag, f->size, f->mtime_s, f->mtime_ns, f->gzip);
  hf_date(date, f->mtime_s);
  int code = 200;
  uint64_t off = 0, len = f->size;
  if (rq->if_none_match) {
    if (st_etag_match(rq->if_none_match, rq->if_none_match_len, etag, el, 0)) code = 304;
  } else if (rq->if_modified_since) {
    int64_t since;
    if (!hf_parse_date(rq->if_modified_since, rq->if_modified_since_len, &since) &&
        f->mtime_s <= since)
      code = 304;
  }
  if (code == 200 && rq->range && !rq->is_head) {
    int use = 1;
    if (rq->if_range) { /* a strong ETag, or the exact Last-Modified */
      int64_t t;
      const char *v = rq->if_range;
      size_t vn = rq->if_range_len;
      trim(&v, &vn);
      if (vn && (v[0] == '"' || v[0] == 'W'))
        use = st_etag_match(v, vn, etag, el, 1);
      else
        use = !hf_parse_date(v, vn, &t) && t == f->mtime_s;
    }
    if (use) {
      int r = st_parse_range(rq->range, rq->range_len, f->size, &off, &len);
      if (r == ST_RANGE_OK)
        code = 206;
      else if (r == ST_RANGE_UNSATISFIABLE)
        code = 416;
    }
  }
  start(a, code);
  if (code == 200 || code == 206) {
    put(a, "Content-Type: %s\r\nContent-Length: %llu\r\n", st_mime(f->name, f->name_len),
        (unsigned long long)len);
    if (code == 206)
      put(a, "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)off,
          (unsigned long long)(off + len - 1), (unsigned long long)f->size);
    if (f->gzip) put(a, "Content-Encoding: gzip\r\n");
    if (!rq->is_head && len) {
      a->offset = off;
      a->length = len;
    }
  } else if (code == 416) {
    put(a, "Content-Range: bytes */%llu\r\nContent-Length: 0\r\n", (unsigned long long)f->size);
  }
  if (code != 304) put(a, "Accept-Ranges: bytes\r\n");
  put(a, "Last-Modified: %s\r\nETag: %s\r\n", date, etag);
  if (f->vary) put(a, "Vary: Accept-Encoding\r\n");
}

/* 301 to the folder's slash form: the cleaned path re-encoded (never the
 * raw one, so "//host/x" cannot become a protocol-relative Location), the
 * query kept when it is plain visible ASCII. */
static int redirect(st_answer *a, const st_request *rq, const char *rel, size_t n) {
  static const char keep[] = "-._~!$&'()*+,;=:@/";
  start(a, 301);
  put(a, "Location: /");
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)rel[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) ||
        (ch && strchr(keep, ch)))
      put(a, "%c", ch);
    else
      put(a, "%%%02X", ch);
  }
  put(a, "/");
  const char *p, *pe, *q, *qe;
  if (!split_target(rq->target, rq->target_len, &p, &pe, &q, &qe) && q && q < qe) {
    int plain = 1;
    for (const char *x = q; x < qe; x++) plain &= *x > 0x20 && *x < 0x7f;
    if (plain) put(a, "?%.*s", (int)(qe - q), q);
  }
  put(a, "\r\nContent-Length: 0\r\n");
  return 301;
}

/* --- the file system ---------------------------------------------------------- */

enum { LOC_OK, LOC_NONE, LOC_OUTSIDE };

static int inside(const char *root, size_t rl, const char *path) {
  if (rl == 1) return path[0] == '/'; /* the root is "/" */
  return !strncmp(path, root, rl) && (path[rl] == '/' || path[rl] == 0);
}

/* Where root/rel+suffix really is: its realpath (into real, PATH_MAX bytes)
 * and stat. LOC_NONE when absent or unreachable. */
static int locate(const char *root, size_t rl, const char *rel, size_t n, const char *suffix,
                  char *real, struct stat *st) {
  char full[PATH_MAX];
  int l = snprintf(full, sizeof full, "%.*s/%.*s%s", (int)rl, root, (int)n, rel, suffix);
  if (l < 0 || (size_t)l >= sizeof full) return LOC_NONE;
  if (!realpath(full, real)) return LOC_NONE;
  if (!inside(root, rl, real)) return LOC_OUTSIDE;
  return stat(real, st) ? LOC_NONE : LOC_OK;
}

/* Open a located regular file and make sure it is the one we checked:
 * same inode, and (when /proc tells) still inside the root. Returns the fd
 * or -errno; *st is refreshed from the open file. */
static int open_checked(const char *root, size_t rl, const char *real, struct stat *st) {
  int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return -errno;
  struct stat now;
  if (fstat(fd, &now) || !S_ISREG(now.st_mode) || now.st_dev != st->st_dev ||
      now.st_ino != st->st_ino) {
    close(fd);
    return -ENOENT;
  }
  char link[64], where[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t wl = readlink(link, where, sizeof where - 1);
  if (wl > 0) {
    where[wl] = 0;
    if (!inside(root, rl, where)) {
      close(fd);
      return -EACCES;
    }
  }
  *st = now;
  return fd;
}

int st_answer_request(const char *root, const st_request *rq, st_answer *a) {
  a->status = 0;
  a->fd = -1;
  a->head_len = 0;
  size_t rl = strlen(root);
  while (rl > 1 && root[rl - 1] == '/') rl--;
  if (!rl || root[0] != '/') return 0;
  char rel[PATH_MAX], real[PATH_MAX], gzreal[PATH_MAX];
  size_t n;
  int dir;
  /* room to add "/index.html" and ".gz" */
  int r = st_normalize(rq->target, rq->target_len, rel, sizeof rel - 16, &n, &dir);
  if (r == ST_REFUSE) return refuse(a, rq, 403);
  if (r != ST_OK) return 0;
  struct stat st, gst;
  r = locate(root, rl, rel, n, "", real, &st);
  if (r == LOC_OUTSIDE) return refuse(a, rq, 403);
  if (r != LOC_OK) return 0;
  if (S_ISDIR(st.st_mode)) {
    size_t folder = n;
    if (n) rel[n++] = '/';
    memcpy(rel + n, "index.html", 11);
    n += 10;
    r = locate(root, rl, rel, n, "", real, &st);
    if (r == LOC_OUTSIDE) return refuse(a, rq, 403);
    if (r != LOC_OK || !S_ISREG(st.st_mode)) return 0;
    if (!dir) {
      redirect(a, rq, rel, folder);
      if (a->head_len >= sizeof a->head) return a->status = 0; /* too long to say */
      return a->status;
    }
  } else if (!S_ISREG(st.st_mode)) {
    return refuse(a, rq, 404);
  } else if (dir) {
    return 0; /* "file.txt/" names no folder */
  }
  st_file f = {.name = rel, .name_len = n};
  int fd = -1;
  if (locate(root, rl, rel, n, ".gz", gzreal, &gst) == LOC_OK && S_ISREG(gst.st_mode)) {
    f.vary = 1;
    if (rq->accept_encoding && st_accepts_gzip(rq->accept_encoding, rq->accept_encoding_len)) {
      fd = open_checked(root, rl, gzreal, &gst);
      if (fd >= 0) {
        f.gzip = 1;
        st = gst;
      }
    }
  }
  if (fd < 0) fd = open_checked(root, rl, real, &st);
  if (fd == -EACCES || fd == -EPERM) return refuse(a, rq, 403);
  if (fd < 0) return 0;
  f.size = (uint64_t)st.st_size;
  f.mtime_s = (int64_t)st.st_mtim.tv_sec;
  f.mtime_ns = (long)st.st_mtim.tv_nsec;
  st_plan(rq, &f, a);
  if (a->head_len >= sizeof a->head) { /* cannot happen with these fields */
    close(fd);
    return a->status = 0;
  }
  if (a->length)
    a->fd = fd;
  else
    close(fd);
  return a->status;
}

int st_open_file(const char *path, uint64_t *size) {
  if (path[0] != '/') return -EINVAL;
  struct stat st;
  if (stat(path, &st)) return -errno;
  if (!S_ISREG(st.st_mode)) return -ENOENT; /* never open a FIFO or a device */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return -errno;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    close(fd);
    return -ENOENT;
  }
  *size = (uint64_t)st.st_size;
  return fd;
}
