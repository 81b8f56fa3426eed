/* http1_parser: bytes in, a validated HTTP/1.x request out.
 *
 * Owns: the request line and header syntax (RFC 9112), the semantic checks
 * that decide how a body is framed (Content-Length / Transfer-Encoding,
 * request smuggling defences), and the chunked body decoder.
 *
 * Must never: allocate, touch a socket, or keep pointers past a call. Every
 * string it returns points into the caller's buffer (zero copy).
 *
 * Shape (after picohttpparser): one call, one return code. A positive result
 * is the number of bytes consumed; HTTP1_INCOMPLETE asks for more bytes; any
 * other negative result is an error that carries its HTTP answer: the status
 * code, negated (-400, -431, -501, -505). The caller sends that status and
 * closes the connection, because after a framing error the stream cannot be
 * trusted. */
#ifndef IODINE_HTTP1_PARSER_H
#define IODINE_HTTP1_PARSER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP1_INCOMPLETE (-2)

typedef struct {
  const char *name;
  size_t name_len;
  const char *value; /* leading and trailing OWS removed */
  size_t value_len;
} http1_header;

/* Limits the parser enforces itself. The total size of the head is the
 * caller's to cap (it owns the buffer): when the parser answers
 * HTTP1_INCOMPLETE and the buffer is already at the cap, the answer is 431.
 * max_line counts the bytes of a line without its CRLF. Passing NULL limits
 * means 8192 / 100. */
typedef struct {
  size_t max_line;    /* request line and each header line, bytes (431 over) */
  size_t max_headers; /* header count (431 over); also the array's capacity */
} http1_limits;

typedef struct {
  const char *method;
  size_t method_len;
  const char *target;
  size_t target_len;
  int version_minor;     /* 0 or 1: only HTTP/1.0 and HTTP/1.1 are accepted */
  http1_header *headers; /* caller-owned array of limits->max_headers */
  size_t num_headers;    /* out: how many were filled */
} http1_request;

/* Parse the request head at buf[0..len). `scanned` is how many bytes an
 * earlier call on the same (grown) buffer already checked and found no end
 * of head in; pass 0 the first time and the value written back each later
 * time, so a head that trickles in a byte at a time is not rescanned
 * (no O(n^2) on slow clients). It is relative to buf: if the caller moves
 * the bytes, it resets it to 0. On any answer other than HTTP1_INCOMPLETE
 * it is written back as 0, ready for the next request. NULL is allowed
 * (every call then scans from the start).
 *
 * Returns the head's length in bytes (the body starts there), or
 * HTTP1_INCOMPLETE, or -400 (malformed), -431 (line or header count over the
 * limit), -505 (a well-formed HTTP version other than 1.0 / 1.1, e.g.
 * HTTP/2.0, HTTP/1.2, HTTP/0.9; junk like HTTP/1.1.1 or http/1.1 is 400),
 * -501 (reserved: the parser itself does not return it). Leading empty lines
 * (CRLF only) before the request line are skipped (RFC 9112 2.2); they count
 * in the returned length, and more than max_line bytes of them is a 400.
 *
 * Strictness the caller should know: a bare LF or bare CR anywhere in the
 * head is 400 (RFC 9112 2.2 allows accepting bare LF; we do not, it is a
 * smuggling vector); so are obs-fold, whitespace before a colon, an empty
 * header name, and any CTL but HTAB in a value. Bytes that can never appear
 * in a head (NUL, CTLs, bare CR/LF, a line opening with SP/HTAB) are refused
 * as soon as they arrive, before the head is complete. Request targets may
 * hold visible ASCII and well-formed UTF-8; their form is checked by
 * http1_request_framing, which knows the method. On success
 * req->headers[0..num_headers) point into buf, values trimmed of OWS; on
 * error the fields of req are unspecified. */
int http1_parse_request(const char *buf, size_t len, size_t *scanned, const http1_limits *limits,
                        http1_request *req);

/* How the body of a parsed request is framed, after the semantic checks. */
typedef enum {
  HTTP1_BODY_NONE = 0, /* no body */
  HTTP1_BODY_LENGTH,   /* exactly content_length bytes */
  HTTP1_BODY_CHUNKED,  /* chunked transfer coding */
} http1_body_kind;

typedef struct {
  http1_body_kind body;
  uint64_t content_length;      /* for HTTP1_BODY_LENGTH */
  unsigned keep_alive : 1;      /* per version and Connection header */
  unsigned expect_continue : 1; /* "Expect: 100-continue" */
  unsigned has_host : 1;
  unsigned upgrade_websocket : 1;   /* Upgrade: websocket + Connection: upgrade */
  unsigned accept_event_stream : 1; /* Accept contains text/event-stream */
} http1_framing;

/* Decide framing and reject what a careful server must reject. Returns 0, or
 * a negated status:
 *   -400  both Content-Length and Transfer-Encoding; more than one
 *         Content-Length field, or one that is not exactly 1*DIGIT within
 *         uint64 (so "5, 5", "+5", "-0", " 5 5", "" are all 400: RFC 9110
 *         8.6 lets a recipient reject rather than collapse "5, 5", and
 *         rejecting leaves no room for two readings); a missing Host in
 *         HTTP/1.1, more than one Host, or a Host that is not
 *         uri-host[:port]; Transfer-Encoding in HTTP/1.0; a
 *         Transfer-Encoding list that does not end in chunked, names chunked
 *         twice, or has an empty / non-token / parameterised element (across
 *         all its field lines, in order); two Content-Type fields; a bad
 *         target form: origin-form "/...", absolute-form "scheme://authority
 *         ...", authority-form "host:port" for CONNECT and only CONNECT,
 *         "*" except for GET HEAD POST PUT DELETE CONNECT TRACE PATCH
 *         (OPTIONS and extension methods such as M-SEARCH may use it).
 *   -501  only after all the 400 checks pass: a transfer coding before the
 *         final chunked that we do not implement ("gzip, chunked"). The
 *         coding "identity" is a no-op and accepted ("identity, chunked").
 * A Content-Length of 0 is HTTP1_BODY_LENGTH with content_length 0. Body
 * size limits (413) are the caller's: compare content_length, or for chunked
 * bodies d->total + d->chunk_left, with its cap. keep_alive: HTTP/1.1 unless
 * a "close" token; HTTP/1.0 only with "keep-alive" and no "close" (tokens of
 * every Connection line, case-insensitive). expect_continue and
 * upgrade_websocket are set for HTTP/1.1 only (RFC 9110 10.1.1, 7.8); the
 * method (GET) and Sec-WebSocket-* checks are the caller's. For an
 * absolute-form target the authority in the target, not Host, names the
 * resource (RFC 9112 3.2.2); a CONNECT that passes here is still the
 * caller's to refuse (405/501) unless it tunnels. */
int http1_request_framing(const http1_request *req, http1_framing *out);

/* Chunked body decoder: an explicit state machine in a small struct that the
 * caller zeroes before the first call. Decodes in place.
 *
 * A size line (hex digits plus extensions, CRLF not counted) longer than
 * this is a 400. */
#define HTTP1_CHUNK_LINE_MAX 4096

typedef struct {
  uint64_t chunk_left;  /* bytes left in the current chunk's data */
  uint64_t total;       /* decoded body bytes so far */
  size_t line_len;      /* length of the size or trailer line being read */
  size_t trailer_bytes; /* bytes of trailers seen (capped by max_trailer) */
  size_t max_trailer;   /* 0 means the default, 8 KiB */
  uint8_t state;        /* private */
  uint8_t hex_digits;   /* private: significant size digits, or the
                            forbidden-trailer-name match set */
} http1_chunked;

/* Decode chunked data in buf[0..*len) in place. On return *len is the number
 * of decoded body bytes now at the front of buf. Returns:
 *   >= 0   the body is complete; the value is how many bytes after the
 *          terminating CRLF of the (ignored) trailer section were NOT part
 *          of the body: they begin at buf + in_len - result, where in_len
 *          is the *len passed in (a pipelined next request);
 *   HTTP1_INCOMPLETE  all of buf was consumed; call again with more bytes;
 *   -400   malformed (bad size, sign, "0x", missing CRLF, size overflow of
 *          uint64, malformed or over-long extension, bad trailer syntax, a
 *          Content-Length / Transfer-Encoding / Host trailer);
 *   -431   trailer section (from after the last-chunk line through the final
 *          CRLF) over max_trailer.
 * Every line must end in CRLF: a bare LF after a size, data or trailer line
 * is 400, as is whitespace after the size unless a ";" extension follows.
 * Extensions are checked against the RFC 9112 7.1.1 grammar and skipped.
 * Trailers are parsed for syntax and discarded, never merged into headers.
 * Errors are sticky (a later call returns the same error); after the body
 * is complete, a later call returns all of its input as not-body. */
ssize_t http1_decode_chunked(http1_chunked *d, char *buf, size_t *len);

/* The one token check (RFC 9110 5.6.2 tchar, through the parser's
 * character table): 1 when s[0..n) is a non-empty token. */
int http1_is_token(const char *s, size_t n);

/* The one decimal reader: s[0..n) is 1*DIGIT (no sign, no space, not
 * empty) and fits in uint64. Returns 0 and the value, or -1. */
int http1_parse_decimal(const char *s, size_t n, uint64_t *out);

/* True when the header name equals `lower` ignoring ASCII case. */
int http1_name_is(const http1_header *h, const char *lower, size_t lower_len);

#endif
