/* pmd: see pmd.h for what this file owns.
 *
 * Written for this project from RFC 7692 (permessage-deflate) and RFC 6455
 * 9.1 (the Sec-WebSocket-Extensions grammar), on zlib's documented API. */
#include "pmd.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ws_frame.h"

/* ------------------------------------------------------------------------
 * Negotiation: the header grammar (RFC 6455 9.1, RFC 7230 3.2.6)
 *
 *   extension-list = 1#extension
 *   extension      = token *( OWS ";" OWS param )
 *   param          = token [ OWS "=" OWS ( token / quoted-string ) ]
 *
 * A quoted-string value must still be a token once unquoted (RFC 6455 9.1),
 * and every value RFC 7692 defines is a small number, so a value is read
 * into a 16-byte buffer: a longer one cannot be valid for us. */

static int is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return 1;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

typedef struct {
  const char *p, *end;
} cursor;

static void skip_ows(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static size_t token(cursor *c, const char **start) {
  *start = c->p;
  while (c->p < c->end && is_tchar((unsigned char)*c->p)) c->p++;
  return (size_t)(c->p - *start);
}

static int same_ci(const char *a, size_t n, const char *lit) {
  size_t l = strlen(lit);
  if (n != l) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)lit[i];
    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
    if (x != y) return 0;
  }
  return 1;
}

/* A parameter value: token or quoted-string (quoted-pair allowed), copied
 * unquoted into v (truncated at 15 bytes: *vn says the real length).
 * Returns 0, or -1 for bad syntax. */
static int value(cursor *c, char v[16], size_t *vn) {
  size_t n = 0;
  if (c->p < c->end && *c->p == '"') {
    c->p++;
    for (;;) {
      if (c->p >= c->end) return -1; /* unterminated */
      unsigned char ch = (unsigned char)*c->p++;
      if (ch == '"') break;
      if (ch == '\\') {
        if (c->p >= c->end) return -1;
        ch = (unsigned char)*c->p++;
      }
      if (ch < 0x20 && ch != '\t') return -1;
      if (ch == 0x7f) return -1;
      if (n < 15) v[n] = (char)ch;
      n++;
    }
    /* unquoted, it must be a token */
    for (size_t i = 0; i < n && i < 15; i++)
      if (!is_tchar((unsigned char)v[i])) return -1;
    if (n == 0) return -1;
  } else {
    const char *s;
    n = token(c, &s);
    if (!n) return -1;
    memcpy(v, s, n < 15 ? n : 15);
  }
  *vn = n;
  v[n < 15 ? n : 15] = 0;
  return 0;
}

/* "8".."15", no leading zero, no sign (RFC 7692 7.1.2.1's ABNF). */
static int window_bits(const char *v, size_t n) {
  if (n == 1 && (v[0] == '8' || v[0] == '9')) return v[0] - '0';
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + v[1] - '0';
  return -1;
}

/* What one permessage-deflate offer asked for. */
typedef struct {
  int valid;
  int server_no_ctx, client_no_ctx;
  int server_bits; /* 0: not named */
  int client_bits; /* 0: not named, -1: named without a value */
} offer;

static void offer_param(offer *o, const char *name, size_t nl, int has_value, const char *v,
                        size_t vn) {
  if (same_ci(name, nl, "server_no_context_takeover")) {
    if (has_value || o->server_no_ctx) o->valid = 0;
    o->server_no_ctx = 1;
  } else if (same_ci(name, nl, "client_no_context_takeover")) {
    if (has_value || o->client_no_ctx) o->valid = 0;
    o->client_no_ctx = 1;
  } else if (same_ci(name, nl, "server_max_window_bits")) {
    int b = has_value ? window_bits(v, vn) : -1;
    if (b < 0 || o->server_bits) o->valid = 0;
    o->server_bits = b < 0 ? 15 : b;
  } else if (same_ci(name, nl, "client_max_window_bits")) {
    int b = has_value ? window_bits(v, vn) : -1;
    if ((has_value && b < 0) || o->client_bits) o->valid = 0;
    o->client_bits = has_value ? (b < 0 ? 15 : b) : -1;
  } else {
    o->valid = 0; /* a parameter we do not know: decline this offer */
  }
}

/* The inflate state zlib keeps besides the window: inflate_state (about
 * 7 KiB on 64-bit) and our wrapper. Measured with pmd_zlib_bytes. */
#define INFLATE_FIXED 7400u

static size_t kept_cost(int bits) { return ((size_t)1 << bits) + INFLATE_FIXED; }

/* Accept `o` under `cfg`, or return 0 (declined). */
static int accept_offer(const offer *o, const pmd_config *cfg, pmd_params *p) {
  int lim = cfg->window_bits < 9 ? 9 : cfg->window_bits > 15 ? 15 : cfg->window_bits;
  memset(p, 0, sizeof *p);
  p->on = 1;
  p->server_bits = (uint8_t)(o->server_bits && o->server_bits < lim ? o->server_bits : lim);
  p->say_server_bits = o->server_bits != 0;
  p->say_client_bits = o->client_bits != 0;
  p->client_no_ctx = (uint8_t)(o->client_no_ctx != 0);
  if (o->client_bits) {
    /* ours to choose, up to what the client named (15 when no value) */
    int cb = o->client_bits > 0 ? o->client_bits : 15;
    if (cb > lim) cb = lim;
    /* lower it to fit the memory cap, but not under 9 unless the client
     * asked for 8 itself (zlib cannot compress with an 8-bit window, so
     * a client may well fail on being told 8); when not even 9 fits, the
     * client resets its context instead and keeps its window */
    if (!p->client_no_ctx && kept_cost(cb < 9 ? 9 : cb) > cfg->mem && kept_cost(9) <= cfg->mem)
      while (cb > 9 && kept_cost(cb) > cfg->mem) cb--;
    p->client_bits = (uint8_t)cb;
  } else {
    p->client_bits = 15; /* the client may use any window */
  }
  if (!p->client_no_ctx && kept_cost(p->client_bits < 9 ? 9 : p->client_bits) > cfg->mem)
    p->client_no_ctx = 1; /* a server MAY ask this (RFC 7692 7.1.1.2) */
  return 1;
}

int pmd_negotiate(const char *const *values, const size_t *lens, size_t n, const pmd_config *cfg,
                  pmd_params *out) {
  pmd_params chosen;
  int found = 0;
  memset(out, 0, sizeof *out);
  if (!cfg->enabled) return 0;
  for (size_t i = 0; i < n; i++) {
    cursor c = {values[i], values[i] + lens[i]};
    for (;;) { /* one extension per turn */
      skip_ows(&c);
      if (c.p < c.end && *c.p == ',') { /* empty list elements are allowed */
        c.p++;
        continue;
      }
      if (c.p >= c.end) break;
      const char *name;
      size_t nl = token(&c, &name);
      if (!nl) return 0;
      offer o = {1, 0, 0, 0, 0};
      int pmd = same_ci(name, nl, "permessage-deflate");
      for (;;) {
        skip_ows(&c);
        if (c.p >= c.end || *c.p == ',') break;
        if (*c.p != ';') return 0;
        c.p++;
        skip_ows(&c);
        const char *pn;
        size_t pl = token(&c, &pn);
        if (!pl) return 0;
        skip_ows(&c);
        char v[16] = {0};
        size_t vn = 0;
        int has_value = 0;
        if (c.p < c.end && *c.p == '=') {
          c.p++;
          skip_ows(&c);
          if (value(&c, v, &vn)) return 0;
          has_value = 1;
        }
        if (pmd) offer_param(&o, pn, pl, has_value, v, vn);
      }
      if (pmd && o.valid && !found) found = accept_offer(&o, cfg, &chosen);
    }
  }
  if (found) *out = chosen;
  return found;
}

size_t pmd_response(const pmd_params *p, char out[PMD_RESPONSE_MAX]) {
  size_t n = 0;
  const char *s = "permessage-deflate; server_no_context_takeover";
  n = strlen(s);
  memcpy(out, s, n);
  if (p->client_no_ctx) {
    s = "; client_no_context_takeover";
    memcpy(out + n, s, strlen(s));
    n += strlen(s);
  }
  if (p->say_server_bits) {
    s = "; server_max_window_bits=";
    memcpy(out + n, s, strlen(s));
    n += strlen(s);
    if (p->server_bits >= 10) out[n++] = '1';
    out[n++] = (char)('0' + p->server_bits % 10);
  }
  if (p->say_client_bits) {
    s = "; client_max_window_bits=";
    memcpy(out + n, s, strlen(s));
    n += strlen(s);
    if (p->client_bits >= 10) out[n++] = '1';
    out[n++] = (char)('0' + p->client_bits % 10);
  }
  out[n] = 0;
  return n;
}

/* ------------------------------------------------------------------------
 * zlib memory, counted (all under the big lock, but read without it by
 * tests: a stale value is fine) */

static long zbytes;
static long inflaters;
static unsigned long long deflates;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  size_t n = (size_t)items * size;
  size_t *p = malloc(sizeof(size_t) * 2 + n); /* 16 bytes keep alignment */
  if (!p) return Z_NULL;
  p[0] = n;
  __atomic_add_fetch(&zbytes, (long)n, __ATOMIC_RELAXED);
  return p + 2;
}

static void z_free(voidpf opaque, voidpf addr) {
  (void)opaque;
  if (!addr) return;
  size_t *p = (size_t *)addr - 2;
  __atomic_sub_fetch(&zbytes, (long)p[0], __ATOMIC_RELAXED);
  free(p);
}

long pmd_zlib_bytes(void) { return __atomic_load_n(&zbytes, __ATOMIC_RELAXED); }
long pmd_inflaters_alive(void) { return __atomic_load_n(&inflaters, __ATOMIC_RELAXED); }
unsigned long long pmd_deflate_calls(void) { return __atomic_load_n(&deflates, __ATOMIC_RELAXED); }

/* ------------------------------------------------------------------------
 * Decompression */

struct pmd_inflater {
  z_stream zs;
  int kept; /* owned by a connection (context takeover) */
};

/* Inflaters given back by connections without context takeover, reused
 * so a busy server does not allocate one per message. A few suffice: one
 * is borrowed only while a compressed message is arriving. */
#define POOL_MAX 16
static pmd_inflater *pool[POOL_MAX];
static int npool;

static pmd_inflater *inflater_new(int bits) {
  pmd_inflater *z = calloc(1, sizeof *z);
  if (!z) return NULL;
  z->zs.zalloc = z_alloc;
  z->zs.zfree = z_free;
  if (inflateInit2(&z->zs, -bits) != Z_OK) {
    free(z);
    return NULL;
  }
  inflaters++;
  return z;
}

void pmd_inflater_free(pmd_inflater *z) {
  if (!z) return;
  inflateEnd(&z->zs);
  free(z);
  inflaters--;
}

pmd_inflater *pmd_inflate_begin(const pmd_params *p, pmd_inflater **keep) {
  if (!p->client_no_ctx) {
    /* an inflater's window must be at least the sender's; 9 for 8, the
     * smallest zlib is sure to take for raw inflate */
    if (!*keep && (*keep = inflater_new(p->client_bits < 9 ? 9 : p->client_bits)))
      (*keep)->kept = 1;
    return *keep;
  }
  if (npool) return pool[--npool];
  return inflater_new(15); /* pooled ones decode any window */
}

void pmd_inflate_end(pmd_inflater *z, pmd_inflater **keep, int abandoned) {
  if (!z) return;
  if (z->kept) {
    if (abandoned) {
      pmd_inflater_free(z);
      if (keep) *keep = NULL;
    }
    return;
  }
  if (npool < POOL_MAX && inflateReset(&z->zs) == Z_OK)
    pool[npool++] = z;
  else
    pmd_inflater_free(z);
}

#define OUT_CHUNK 16384

/* A raw deflate stream may end (a block with BFINAL) before the message
 * does; RFC 7692 7.2.3.3 lets a sender do that. Start a new stream,
 * keeping the window when the context is kept. */
static int restart(pmd_inflater *z) {
  static Bytef dict[32768];
  uInt dl = 0;
  if (z->kept && inflateGetDictionary(&z->zs, dict, &dl) != Z_OK) return -1;
  if (inflateReset(&z->zs) != Z_OK) return -1;
  if (dl && inflateSetDictionary(&z->zs, dict, dl) != Z_OK) return -1;
  return 0;
}

int pmd_inflate(pmd_inflater *z, const uint8_t *in, size_t n, int last, uint64_t room,
                int (*emit)(void *, const uint8_t *, size_t), void *ctx) {
  static uint8_t out[OUT_CHUNK]; /* one, under the big lock */
  static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
  const uint8_t *src = in;
  size_t left = n;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      if (!last) break;
      src = tail;
      left = sizeof tail;
    }
    while (left) {
      /* avail_in is a uInt: feed at most 1 GiB at a time */
      uInt step = left > (1u << 30) ? (1u << 30) : (uInt)left;
      z->zs.next_in = (Bytef *)(uintptr_t)src;
      z->zs.avail_in = step;
      for (;;) {
        z->zs.next_out = out;
        z->zs.avail_out = OUT_CHUNK;
        int r = inflate(&z->zs, Z_SYNC_FLUSH);
        size_t got = OUT_CHUNK - z->zs.avail_out;
        if (got) {
          if (got > room) return -1009; /* the bomb stops here */
          room -= got;
          int e = emit(ctx, out, got);
          if (e) return e;
        }
        if (r == Z_STREAM_END) {
          if (restart(z)) return -1011;
          if (!z->zs.avail_in) break;
          continue;
        }
        if (r == Z_BUF_ERROR) break; /* no progress: all input taken */
        if (r == Z_MEM_ERROR) return -1011;
        if (r != Z_OK) return -1007; /* not deflate data */
        if (!z->zs.avail_in && z->zs.avail_out) break;
      }
      size_t used = step - z->zs.avail_in;
      if (z->zs.avail_in) return -1007; /* stuck with input left */
      src += used;
      left -= used;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Compression: one shared compressor per window size (8..15), every
 * message on its own (server_no_context_takeover) */

static z_stream *defl[8];
static uint8_t *fbuf;
static size_t fcap;

/* zlib's compression level: 6, its default. Fan-out compresses a message
 * once for every subscriber, and an echo is small: the default ratio is
 * worth its cost there. */
#define PMD_LEVEL 6

int pmd_deflate_frame(int bits, int opcode, const void *data, size_t len, const uint8_t **frame,
                      size_t *frame_len) {
  if (bits < 8) bits = 8;
  if (bits > 15) bits = 15;
  if (len > (1u << 30)) return 1; /* uInt counts; such a message goes plain */
  z_stream *z = defl[bits - 8];
  if (!z) {
    z = calloc(1, sizeof *z);
    if (!z) return -1;
    z->zalloc = z_alloc;
    z->zfree = z_free;
    /* zlib refuses a raw 8-bit window; 9 is safe for a peer that has 8:
     * zlib never emits a distance over window - 262 bytes (its MAX_DIST),
     * 250 for a 9-bit window, inside the peer's 256. */
    if (deflateInit2(z, PMD_LEVEL, Z_DEFLATED, -(bits < 9 ? 9 : bits), 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
      free(z);
      return -1;
    }
    defl[bits - 8] = z;
  }
  /* room: the bound for Z_FINISH, plus the sync flush's empty stored
   * block (5 bytes) and slack; 10 bytes in front for the frame header */
  size_t bound = deflateBound(z, (uLong)len) + 16;
  if (10 + bound > fcap) {
    uint8_t *b = realloc(fbuf, 10 + bound);
    if (!b) return -1;
    fbuf = b;
    fcap = 10 + bound;
  }
  z->next_in = (Bytef *)(uintptr_t)data;
  z->avail_in = (uInt)len;
  z->next_out = fbuf + 10;
  z->avail_out = (uInt)bound;
  int r = deflate(z, Z_SYNC_FLUSH);
  size_t clen = bound - z->avail_out;
  int ok = r == Z_OK && z->avail_in == 0 && z->avail_out > 0;
  deflateReset(z); /* no context kept: the next message starts fresh */
  __atomic_add_fetch(&deflates, 1, __ATOMIC_RELAXED);
  if (!ok) return -1;
  /* RFC 7692 7.2.1: drop the 00 00 ff ff the sync flush ends with */
  if (clen >= 4 && !memcmp(fbuf + 10 + clen - 4, "\x00\x00\xff\xff", 4)) clen -= 4;
  if (clen >= len) return 1; /* not worth it: the caller sends it plain */
  uint8_t hd[10];
  size_t hl = ws_head_write(hd, opcode, 1, clen);
  hd[0] |= 0x40; /* RSV1: this message is compressed */
  memcpy(fbuf + 10 - hl, hd, hl);
  *frame = fbuf + 10 - hl;
  *frame_len = hl + clen;
  return 0;
}
