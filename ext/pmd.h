/* pmd: permessage-deflate (RFC 7692) for WebSocket, on the system zlib.
 *
 * Owns: parsing a client's Sec-WebSocket-Extensions offers and choosing
 * the parameters (or declining), writing the response header's value, the
 * server's compressors and the connections' decompressors.
 *
 * The server always answers with server_no_context_takeover: every
 * message it sends is compressed on its own, so one compressor per window
 * size is shared by every connection of the process (a connection holds
 * no deflate state at all), and a published message is compressed once
 * per window size for all its subscribers. The price is a worse ratio on
 * streams of small similar messages; the memory is 0 per connection
 * instead of about 256 KiB.
 *
 * Decompression: with client_no_context_takeover an inflater is borrowed
 * from a small pool while a compressed message is being received and
 * given back at its end, so an idle connection holds none. With context
 * takeover the connection keeps one (allocated at its first compressed
 * message): 2^client_max_window_bits bytes of window plus zlib's ~7 KiB
 * state. The setting `mem` caps that: an offer whose kept state would not
 * fit gets client_max_window_bits lowered (when the client offered that
 * parameter) or client_no_context_takeover.
 *
 * Inflating is bounded: output stops at the caller's limit (the message
 * size limit), so a compression bomb costs at most that limit, and the
 * caller answers 1009.
 *
 * Must never: do I/O, or call zlib outside the big lock (the shared
 * compressors and the pool are process-wide; every caller holds the
 * reactor's lock). pmd_negotiate and pmd_response touch no global state
 * (they are what the fuzzer drives). */
#ifndef IODINE_PMD_H
#define IODINE_PMD_H

#include <stddef.h>
#include <stdint.h>

/* What a listener allows (from http_settings). */
typedef struct pmd_config {
  int enabled;
  int window_bits; /* 9..15: the most the server uses and lets clients keep */
  size_t mem;      /* bytes of inflate state a connection may keep; 0: none */
} pmd_config;

/* What was agreed for one connection. on == 0: no compression. */
typedef struct pmd_params {
  uint8_t on;
  uint8_t server_bits;     /* our compressor's window (8..15) */
  uint8_t client_bits;     /* the client's compressor's window (8..15) */
  uint8_t client_no_ctx;   /* the client resets its context every message */
  uint8_t say_server_bits; /* the offer named server_max_window_bits */
  uint8_t say_client_bits; /* the offer named client_max_window_bits */
} pmd_params;

/* Choose from the offers in `n` Sec-WebSocket-Extensions field values
 * (each a comma-separated list, RFC 6455 9.1). The first permessage-deflate
 * offer whose parameters are valid and acceptable wins; others, and other
 * extensions, are declined by leaving them out. A malformed field value
 * makes the whole header declined (no extension), never an error: the
 * handshake goes on uncompressed. Returns 1 with *out filled, or 0. */
int pmd_negotiate(const char *const *values, const size_t *lens, size_t n, const pmd_config *cfg,
                  pmd_params *out);

/* The response's Sec-WebSocket-Extensions value for `p` (p->on set), NUL
 * terminated; returns its length (at most 128: every parameter named). */
#define PMD_RESPONSE_MAX 160
size_t pmd_response(const pmd_params *p, char out[PMD_RESPONSE_MAX]);

/* --- decompression (lock held) ------------------------------------------- */

typedef struct pmd_inflater pmd_inflater;

/* An inflater for a message: the connection's kept one (*keep, made on
 * first use) with context takeover, else one from the pool. NULL: out of
 * memory. */
pmd_inflater *pmd_inflate_begin(const pmd_params *p, pmd_inflater **keep);

/* Feed compressed bytes of the message (last: the message's final piece:
 * the 00 00 ff ff tail RFC 7692 7.2.2 strips is added). Output goes to
 * emit(ctx, bytes, n) in pieces of at most 16 KiB; at most `room` bytes
 * in all before this returns -1009. Returns 0, -1009 (output over room),
 * -1007 (not valid deflate data), -1011 (out of memory), or emit's
 * nonzero return. */
int pmd_inflate(pmd_inflater *z, const uint8_t *in, size_t n, int last, uint64_t room,
                int (*emit)(void *, const uint8_t *, size_t), void *ctx);

/* The message is over (or abandoned): a pooled inflater goes back to the
 * pool; a kept one stays (abandoned: it is dropped, its context being
 * unusable). */
void pmd_inflate_end(pmd_inflater *z, pmd_inflater **keep, int abandoned);

/* Free a connection's kept inflater (connection closing). */
void pmd_inflater_free(pmd_inflater *z);

/* --- compression (lock held) --------------------------------------------- */

/* Compress one whole message with the shared compressor for `bits` and
 * write a complete server frame (RSV1 set, FIN, the opcode) into a buffer
 * that stays valid until the next call: *frame, *frame_len. Returns 0, 1
 * when compressing would not make the frame smaller (send it plain), -1
 * out of memory. */
int pmd_deflate_frame(int bits, int opcode, const void *data, size_t len, const uint8_t **frame,
                      size_t *frame_len);

/* Counters for tests and stats (lock held or not: a stale value is fine):
 * messages compressed; inflaters alive (kept by connections, borrowed, or
 * pooled); bytes zlib holds for all of them and the shared compressors. */
unsigned long long pmd_deflate_calls(void);
long pmd_inflaters_alive(void);
long pmd_zlib_bytes(void);

#endif
