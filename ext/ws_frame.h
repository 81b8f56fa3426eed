/* ws_frame: the WebSocket wire format (RFC 6455), bytes only.
 *
 * Owns: frame headers (parse and build), masking, the incremental UTF-8
 * validator for text messages, close-code rules, and the handshake's
 * Sec-WebSocket-Accept (SHA-1 + base64, implemented here so the core needs
 * no crypto library).
 *
 * Must never: allocate, touch a socket, or keep state outside what the
 * caller passes in. Errors carry their answer: a negated close code. */
#ifndef IODINE_WS_FRAME_H
#define IODINE_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
  WS_OP_CONT = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA,
};

#define WS_HEAD_MAX 14 /* 2 + 8 (length) + 4 (mask) */

typedef struct {
  uint8_t fin;    /* 0 or 1 */
  uint8_t rsv;    /* the three RSV bits, 0..7 */
  uint8_t opcode; /* 0..15 */
  uint8_t masked; /* 0 or 1 */
  uint8_t mask[4];
  uint64_t len; /* payload length */
} ws_head;

/* Parse a frame header at buf[0..len). Returns the header's size (2..14),
 * 0 when more bytes are needed, or -1002 (protocol error) for: a reserved
 * opcode (3-7, 11-15), a control frame (opcode >= 8) that is fragmented
 * (fin == 0) or longer than 125 bytes, a 64-bit length with its most
 * significant bit set, or, when `require_mask` is set (we are the server),
 * an unmasked frame. RSV bits are reported, not judged: with no extension
 * negotiated the caller answers nonzero rsv with 1002.
 *
 * An error is returned as soon as the bytes that show it are in buf (byte 0
 * for the opcode and a fragmented control frame, byte 1 for the mask and a
 * control length, byte 2 for the 64-bit MSB), so it may come while the
 * header is still incomplete. A control frame using the 16/64-bit length
 * forms is refused even if the value is <= 125; non-minimal lengths of data
 * frames are accepted. `out` is written only when a size is returned (mask
 * is zeroed for an unmasked frame); the payload starts at buf + size. */
int ws_parse_head(const uint8_t *buf, size_t len, int require_mask, ws_head *out);

/* XOR-unmask (or mask) `len` bytes in place. `pos` is the offset of data[0]
 * within the frame's payload, so a payload handled in pieces stays aligned
 * with the 4-byte mask. */
void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t pos);

/* Write an unmasked (server) frame header for a payload of `len` bytes into
 * out (room for 10 bytes). Returns its size: 2, 4 or 10 (the minimal length
 * encoding). RSV bits are 0; only opcode's low 4 bits are used. */
size_t ws_head_write(uint8_t *out, int opcode, int fin, uint64_t len);

/* Incremental UTF-8 validation per RFC 3629: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. `*state` starts at 0
 * and carries a partial character across calls (text messages arrive in
 * fragments and pieces); its value is otherwise opaque. Returns 0 while the
 * bytes so far can still be valid, -1 as soon as they cannot (fail fast:
 * Autobahn checks that): at the first byte after which no well-formed
 * continuation exists, e.g. at A0 in ED A0 (a surrogate), at 90 in F4 90,
 * at once for C0, C1, F5..FF. After -1 the state stays rejected and every
 * further feed returns -1; reset it to 0 for a new message. */
int ws_utf8_feed(uint32_t *state, const uint8_t *s, size_t n);
/* Nonzero when `state` ends on a character boundary (a message may end). */
int ws_utf8_complete(uint32_t state);

/* Nonzero for a close code a peer may send in a Close frame: 1000-1003,
 * 1007-1011, 3000-4999 (1004-1006, 1015 and others are reserved). */
int ws_close_code_valid(unsigned code);

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key: base64(SHA-1(key
 * + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). Writes 28 characters and a NUL
 * to out. Returns 0, or -1 when the key is not the base64 form of exactly
 * 16 bytes (24 characters ending "=="), which a server must refuse. Pass
 * the field value with surrounding whitespace already trimmed. Strict:
 * standard alphabet only (no '-', '_'), and the unused low 4 bits of the
 * 22nd character must be 0 (the canonical encoding, as every client
 * produces from 16 random bytes). out is untouched on -1. */
int ws_accept_key(const char *key, size_t key_len, char out[29]);

/* SHA-1 (FIPS 180-4) of data[0..len): 20 bytes to out. Exposed for the
 * tests and the fuzzer; not for security use (SHA-1 is broken for that, and
 * the handshake needs it only as a fixed transform). */
void ws_sha1(const void *data, size_t len, uint8_t out[20]);

#endif
