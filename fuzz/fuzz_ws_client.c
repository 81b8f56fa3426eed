/* libFuzzer target for the WebSocket client's decoders (ext/ws_client.c):
 * the handshake response check and the server-frame reader.
 *
 * Build and run (corpus in fuzz/corpus/ws_client; `make fuzz` does both):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iext \
 *     ext/ws_client.c ext/ws_frame.c fuzz/fuzz_ws_client.c -o build/fuzz_ws_client
 *
 * Input: byte 0 bit 0 picks the decoder; byte 1 picks split points and
 * byte 2 the message size limit; the rest is the bytes the server sent.
 *
 * Properties:
 *  - wsc_response never reads past len (exact-size copies), returns 0, -1
 *    with a reason, or the size of a head that ends with the first CRLFCRLF;
 *    the prefix just short of that is "need more"; a chosen subprotocol is
 *    one of those offered;
 *  - wsc_feed gives the same events (kind, text flag, code, bytes) whether
 *    the input comes whole or cut in three pieces anywhere (the reader
 *    resumes mid-head and mid-payload), consumes every byte it reports
 *    consuming, and never hands out a message over the limit or a text
 *    message that is not UTF-8. */
#include "ws_client.h"

#include <stdint.h>

#include "fuzz.h"

#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define OFFERED "chat, superchat"

static void response(const uint8_t *d, size_t n) {
  char *b = dup_exact(d, n);
  char chosen[64];
  const char *err = NULL;
  long r = wsc_response(b, n, ACCEPT, OFFERED, chosen, sizeof chosen, &err);
  ASSERT(r >= -1 && r <= (long)n);
  if (r < 0) ASSERT(err && *err);
  if (r > 0) {
    ASSERT(r >= 4 && !memcmp(b + r - 4, "\r\n\r\n", 4));
    ASSERT(!chosen[0] || !strcmp(chosen, "chat") || !strcmp(chosen, "superchat"));
    char *p = dup_exact(d, (size_t)r - 1);
    ASSERT(wsc_response(p, (size_t)r - 1, ACCEPT, OFFERED, chosen, sizeof chosen, &err) == 0);
    free(p);
  }
  free(b);
}

typedef struct {
  int kind, text;
  unsigned code;
  size_t len;
  uint8_t *data;
} rec;

#define MAX_EVENTS 256

/* Run the reader over d[0..n) cut at a and b; record up to MAX_EVENTS. */
static size_t run(const uint8_t *d, size_t n, size_t a, size_t b, uint64_t max_msg, rec *out) {
  wsc_reader rd;
  memset(&rd, 0, sizeof rd);
  size_t cuts[4] = {0, a, b, n}, count = 0;
  int done = 0;
  for (int k = 0; k < 3 && !done; k++) {
    size_t len = cuts[k + 1] - cuts[k];
    uint8_t *piece = dup_exact(d + cuts[k], len);
    size_t pos = 0;
    while (!done) {
      wsc_event ev;
      size_t used = 99999;
      int got = wsc_feed(&rd, piece + pos, len - pos, max_msg, &used, &ev);
      ASSERT(used <= len - pos);
      pos += used;
      if (!got) {
        ASSERT(pos == len);
        break;
      }
      if (count < MAX_EVENTS) {
        rec *r = &out[count++];
        r->kind = ev.kind;
        r->text = ev.text;
        r->code = ev.code;
        r->len = ev.len;
        r->data = ev.len ? dup_exact(ev.data, ev.len) : NULL;
      }
      if (ev.kind == WSC_MESSAGE) {
        ASSERT(ev.len <= max_msg);
        if (ev.text) {
          uint32_t st = 0;
          ASSERT(!ws_utf8_feed(&st, ev.data, ev.len) && ws_utf8_complete(st));
        }
        free(ev.data);
      }
      if (ev.kind == WSC_ERROR || ev.kind == WSC_CLOSE) done = 1;
      if (pos == len) break;
    }
    free(piece);
  }
  wsc_reader_free(&rd);
  return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  const uint8_t *d = data + 3;
  size_t n = size - 3;
  if (!(data[0] & 1)) {
    response(d, n);
    return 0;
  }
  size_t a = n ? (data[1] * 7u) % (n + 1) : 0;
  size_t b = n ? a + (data[1] * 13u + data[0]) % (n - a + 1) : 0;
  uint64_t max_msg = (uint64_t)data[2] * 16;
  static rec whole[MAX_EVENTS], cut[MAX_EVENTS];
  size_t nw = run(d, n, n, n, max_msg, whole);
  size_t nc = run(d, n, a, b, max_msg, cut);
  ASSERT(nw == nc);
  for (size_t i = 0; i < nw; i++) {
    ASSERT(whole[i].kind == cut[i].kind && whole[i].text == cut[i].text);
    ASSERT(whole[i].code == cut[i].code && whole[i].len == cut[i].len);
    ASSERT(!whole[i].len || !memcmp(whole[i].data, cut[i].data, whole[i].len));
    free(whole[i].data);
    free(cut[i].data);
  }
  return 0;
}
