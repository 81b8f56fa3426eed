/* ws_client: see ws_client.h for what this file owns. */
#include "ws_client.h"

#include <stdlib.h>
#include <string.h>

/* --- the handshake response ------------------------------------------------ */

static int ieq(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  if (alen != blen) return 0;
  for (size_t i = 0; i < alen; i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
    if (x != y) return 0;
  }
  return 1;
}

/* Nonzero when the comma-separated list has `tok` (case-insensitive). */
static int list_has(const char *v, size_t vlen, const char *tok) {
  size_t i = 0;
  while (i < vlen) {
    while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t s = i;
    while (i < vlen && v[i] != ',') i++;
    size_t e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e > s && ieq(v + s, e - s, tok)) return 1;
  }
  return 0;
}

/* Nonzero when `offered` (comma-separated, exact tokens) has v[0..n). */
static int offered_has(const char *offered, const char *v, size_t n) {
  const char *p = offered;
  while (p && *p) {
    while (*p == ' ' || *p == ',') p++;
    const char *s = p;
    while (*p && *p != ',') p++;
    const char *e = p;
    while (e > s && e[-1] == ' ') e--;
    if ((size_t)(e - s) == n && n && !memcmp(s, v, n)) return 1;
  }
  return 0;
}

long wsc_response(const char *buf, size_t len, const char *accept, const char *offered,
                  char *chosen, size_t cap, const char **err) {
  size_t lim = len < WSC_MAX_HEAD ? len : WSC_MAX_HEAD;
  size_t end = 0;
  for (size_t i = 0; i + 3 < lim; i++)
    if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
      end = i + 4;
      break;
    }
  if (!end) {
    if (len < WSC_MAX_HEAD) return 0;
    *err = "handshake: response head too long";
    return -1;
  }
  if (cap) chosen[0] = 0;
  /* status line: HTTP/1.1 101 ... */
  if (end < 12 || memcmp(buf, "HTTP/1.1 ", 9)) {
    *err = "handshake: not an HTTP/1.1 response";
    return -1;
  }
  if (memcmp(buf + 9, "101", 3) || (buf[12] != ' ' && buf[12] != '\r')) {
    *err = "handshake: the server did not switch protocols (no 101)";
    return -1;
  }
  int upgrade = 0, connection = 0, accepted = 0, proto = 0;
  size_t i = 0;
  while (i < end && buf[i] != '\n') i++;
  i++;
  while (i + 2 <= end) {
    size_t s = i;
    while (i < end && buf[i] != '\n') i++;
    size_t e = i; /* at '\n' */
    i++;
    if (e > s && buf[e - 1] == '\r') e--;
    if (e == s) break; /* the blank line */
    size_t colon = s;
    while (colon < e && buf[colon] != ':') colon++;
    if (colon == e || colon == s) {
      *err = "handshake: malformed header line";
      return -1;
    }
    const char *name = buf + s;
    size_t nlen = colon - s;
    size_t vs = colon + 1;
    while (vs < e && (buf[vs] == ' ' || buf[vs] == '\t')) vs++;
    size_t ve = e;
    while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) ve--;
    const char *v = buf + vs;
    size_t vlen = ve - vs;
    if (ieq(name, nlen, "upgrade")) {
      upgrade = ieq(v, vlen, "websocket");
    } else if (ieq(name, nlen, "connection")) {
      connection = list_has(v, vlen, "upgrade");
    } else if (ieq(name, nlen, "sec-websocket-accept")) {
      accepted = accept && vlen == strlen(accept) && !memcmp(v, accept, vlen);
    } else if (ieq(name, nlen, "sec-websocket-protocol")) {
      if (proto || !offered_has(offered, v, vlen) || vlen >= cap) {
        *err = "handshake: the server chose a subprotocol that was not offered";
        return -1;
      }
      proto = 1;
      memcpy(chosen, v, vlen);
      chosen[vlen] = 0;
    } else if (ieq(name, nlen, "sec-websocket-extensions")) {
      *err = "handshake: the server chose an extension that was not offered";
      return -1;
    }
  }
  if (!upgrade || !connection) {
    *err = "handshake: missing Upgrade: websocket / Connection: upgrade";
    return -1;
  }
  if (!accepted) {
    *err = "handshake: wrong Sec-WebSocket-Accept";
    return -1;
  }
  return (long)end;
}

size_t wsc_head_write(uint8_t *out, int opcode, uint64_t len, const uint8_t mask[4]) {
  size_t n = ws_head_write(out, opcode, 1, len);
  out[1] |= 0x80;
  memcpy(out + n, mask, 4);
  return n + 4;
}

/* --- reading server frames --------------------------------------------------- */

static int append(wsc_reader *r, const uint8_t *p, size_t n) {
  if (r->msg_len + n > r->msg_cap) {
    size_t cap = r->msg_cap ? r->msg_cap : 256;
    while (cap < r->msg_len + n) cap *= 2;
    uint8_t *m = realloc(r->msg, cap);
    if (!m) return -1;
    r->msg = m;
    r->msg_cap = cap;
  }
  if (n) memcpy(r->msg + r->msg_len, p, n);
  r->msg_len += n;
  return 0;
}

static int error(wsc_event *ev, unsigned code) {
  ev->kind = WSC_ERROR;
  ev->code = code;
  return 1;
}

int wsc_feed(wsc_reader *r, const uint8_t *p, size_t n, uint64_t max_msg, size_t *used,
             wsc_event *ev) {
  size_t pos = 0;
  memset(ev, 0, sizeof *ev);
  for (;;) {
    if (!r->in_frame) {
      /* the head, possibly split across reads: gather it in hbuf */
      size_t take = n - pos < WS_HEAD_MAX - r->hlen ? n - pos : WS_HEAD_MAX - r->hlen;
      memcpy(r->hbuf + r->hlen, p + pos, take);
      int h = ws_parse_head(r->hbuf, r->hlen + take, 0, &r->head);
      if (h == 0) {
        r->hlen += take;
        *used = n;
        return 0;
      }
      *used = pos;
      if (h < 0) return error(ev, (unsigned)-h);
      pos += (size_t)h - r->hlen; /* the head's bytes that came from p */
      r->hlen = 0;
      *used = pos;
      if (r->head.masked || r->head.rsv) return error(ev, 1002);
      int op = r->head.opcode;
      if (op < WS_OP_CLOSE) {
        if (op == WS_OP_CONT && !r->msg_op) return error(ev, 1002);
        if (op != WS_OP_CONT && r->msg_op) return error(ev, 1002);
        if (r->head.len > max_msg || r->msg_len + r->head.len > max_msg) return error(ev, 1009);
        if (op != WS_OP_CONT) {
          r->msg_op = op;
          r->utf8 = 0;
          r->msg_len = 0;
        }
      }
      r->in_frame = 1;
      r->frame_pos = 0;
    }
    size_t avail = n - pos;
    uint64_t left = r->head.len - r->frame_pos;
    size_t take = left < avail ? (size_t)left : avail;
    if (r->head.opcode >= WS_OP_CLOSE) {
      memcpy(r->ctl + r->frame_pos, p + pos, take);
    } else {
      if (r->msg_op == WS_OP_TEXT && ws_utf8_feed(&r->utf8, p + pos, take)) {
        *used = pos;
        return error(ev, 1007);
      }
      if (append(r, p + pos, take)) {
        *used = pos;
        return error(ev, 1011);
      }
    }
    pos += take;
    r->frame_pos += take;
    *used = pos;
    if (r->frame_pos < r->head.len) return 0; /* the rest is on its way */
    r->in_frame = 0;
    int op = r->head.opcode;
    if (op >= WS_OP_CLOSE) {
      size_t cl = (size_t)r->head.len;
      ev->data = r->ctl;
      ev->len = cl;
      if (op == WS_OP_PING)
        ev->kind = WSC_PING;
      else if (op == WS_OP_PONG)
        ev->kind = WSC_PONG;
      else {
        if (cl == 1) return error(ev, 1002);
        if (cl >= 2) {
          unsigned code = (unsigned)r->ctl[0] << 8 | r->ctl[1];
          uint32_t st = 0;
          if (!ws_close_code_valid(code)) return error(ev, 1002);
          if (ws_utf8_feed(&st, r->ctl + 2, cl - 2) || !ws_utf8_complete(st))
            return error(ev, 1007);
          ev->code = code;
        }
        ev->kind = WSC_CLOSE;
      }
      return 1;
    }
    if (r->head.fin) {
      if (r->msg_op == WS_OP_TEXT && !ws_utf8_complete(r->utf8)) return error(ev, 1007);
      /* an empty message still needs a buffer to hand over */
      if (!r->msg && !(r->msg = malloc(1))) return error(ev, 1011);
      ev->kind = WSC_MESSAGE;
      ev->text = r->msg_op == WS_OP_TEXT;
      ev->data = r->msg;
      ev->len = r->msg_len;
      r->msg = NULL;
      r->msg_len = r->msg_cap = 0;
      r->msg_op = 0;
      return 1;
    }
    if (pos == n) return 0;
  }
}

void wsc_reader_free(wsc_reader *r) {
  free(r->msg);
  r->msg = NULL;
  r->msg_len = r->msg_cap = 0;
}
