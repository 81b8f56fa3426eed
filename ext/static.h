/* static: GET and HEAD answered from files under a public folder, without
 * the application.
 *
 * Owns: turning a request target into a path under the root (query and
 * fragment dropped, percent-decoding, dot segments), refusing targets that
 * try to leave it, the containment check of the resolved path (symlinks
 * included) against the root, choosing the representation (a precompressed
 * `name.gz` sibling when the client accepts gzip), validators (ETag,
 * Last-Modified), conditional requests (304), single byte ranges (206, 416),
 * MIME types by extension, and the answer's status line and header fields.
 * Also the one helper X-Sendfile needs: opening a regular file by path.
 *
 * Must never: touch a socket or the reactor (http_conn.c writes the head built
 * here, then the file span with sendfile), read a file's contents, allocate
 * memory, open anything whose resolved path is outside the root, or open
 * anything but regular files (no FIFO or device is opened, so nothing
 * blocks and nothing has side effects).
 *
 * Choices, each visible to clients:
 *  - a target with a `..` segment, an encoded slash (%2F), a backslash (raw
 *    or %5C) or a NUL (%00) is refused with 403: it cannot name a file here,
 *    and handing it to the application is how traversal bugs start. So is a
 *    path that resolves (through symlinks) outside the root;
 *  - a path with no file behind it is not ours: the application answers
 *    (also a folder without index.html, and a file named with a trailing
 *    slash). Something that exists but is not a regular file or a folder
 *    (FIFO, socket, device) gets 404;
 *  - a folder serves its index.html; the folder's URL without the trailing
 *    slash gets 301 to the slash form (query kept), so relative links in
 *    that index.html resolve against the folder;
 *  - a Range with several ranges gets the whole file, 200 (RFC 9110 14.2
 *    allows ignoring Range; multipart/byteranges is not worth its code), and
 *    so does a malformed one; Range is ignored on HEAD;
 *  - If-None-Match (weak comparison) wins over If-Modified-Since;
 *    If-Match/If-Unmodified-Since are not evaluated;
 *  - the ETag is strong: "<size hex>-<mtime ns hex>", with "-gz" inside the
 *    quotes for the gzip representation;
 *  - Vary: Accept-Encoding goes on every answer for a file that has a .gz
 *    sibling, whichever representation is sent.
 *
 * The root must be a canonical absolute path (what realpath returns). A
 * path is inside it when its realpath is the root or starts with root "/";
 * the opened file is checked again through /proc/self/fd (when /proc is
 * there), so a folder swapped for a symlink between the check and the open
 * cannot get a file from outside served. */
#ifndef IODINE_STATIC_H
#define IODINE_STATIC_H

#include <stddef.h>
#include <stdint.h>

#define ST_HEAD_MAX 4096 /* status line + fields of one answer */

/* What a request brings. Header values are NULL when absent. */
typedef struct st_request {
  const char *target;
  size_t target_len;
  int is_head; /* else GET */
  const char *if_none_match;
  size_t if_none_match_len;
  const char *if_modified_since;
  size_t if_modified_since_len;
  const char *range;
  size_t range_len;
  const char *if_range;
  size_t if_range_len;
  const char *accept_encoding;
  size_t accept_encoding_len;
} st_request;

/* The answer: head[0..head_len) is the status line and header fields, each
 * line ending in CRLF, without the blank line (the caller adds its own
 * fields: Date, Server, Connection). After it go body[0..body_len) when
 * body_len, then `length` bytes of fd from `offset` when fd >= 0 (the
 * caller owns fd then). HEAD answers come with neither. */
typedef struct st_answer {
  int status; /* 0: not ours, let the application answer */
  int fd;
  uint64_t offset, length;
  const char *body;
  size_t body_len;
  size_t head_len;
  char head[ST_HEAD_MAX];
} st_answer;

/* The whole job: returns a->status (0, 200, 206, 301, 304, 403, 404, 416). */
int st_answer_request(const char *root, const st_request *rq, st_answer *a);

/* Open a regular file by absolute path for sending (X-Sendfile). Returns
 * the fd (O_CLOEXEC) and its size, or -errno: -EINVAL for a relative path,
 * -ENOENT for something that is not a regular file. */
int st_open_file(const char *path, uint64_t *size);

/* --- the pure parts, exported for tests ------------------------------------ */

enum { ST_OK = 0, ST_REFUSE = -1, ST_SKIP = -2 };

/* The request target's path, percent-decoded and cleaned, as a path
 * relative to the root ("" for the root itself, "a/b.txt", never a leading
 * or trailing slash, never "." or ".." or empty segments) into out (cap
 * bytes, NUL-terminated). *dir_form is set when the path ended in a slash
 * (or a "." segment). Returns ST_OK, ST_REFUSE (403: `..`, %2F, backslash,
 * NUL) or ST_SKIP (not ours: asterisk- or authority-form, or too long). */
int st_normalize(const char *target, size_t len, char *out, size_t cap, size_t *out_len,
                 int *dir_form);

/* Content-Type for a file name, by its extension (case-insensitive);
 * "application/octet-stream" when unknown. */
const char *st_mime(const char *name, size_t len);

/* Dates (Last-Modified, If-Modified-Since) are http_facts.h's. */

/* The strong ETag with its quotes into out (cap >= 48). Returns its length. */
size_t st_etag(char *out, size_t cap, uint64_t size, int64_t mtime_s, long mtime_ns, int gzip);

/* Does this If-None-Match / If-Range value list `etag` (quoted)? Weak
 * comparison (W/ ignored) unless `strong`, where a weak tag never matches.
 * "*" matches anything. */
int st_etag_match(const char *v, size_t n, const char *etag, size_t etag_len, int strong);

enum { ST_RANGE_NONE = 0, ST_RANGE_OK = 1, ST_RANGE_UNSATISFIABLE = 2 };
/* A Range value against a representation of `size` bytes: ST_RANGE_OK with
 * the span, ST_RANGE_UNSATISFIABLE (416), or ST_RANGE_NONE (send it all:
 * not bytes, malformed, or several ranges). */
int st_parse_range(const char *v, size_t n, uint64_t size, uint64_t *offset, uint64_t *length);

/* Does this Accept-Encoding value accept gzip (q > 0, by name, x-gzip or
 * "*")? */
int st_accepts_gzip(const char *v, size_t n);

/* A file as the answer builder needs it. */
typedef struct st_file {
  const char *name; /* for the MIME type */
  size_t name_len;
  uint64_t size;
  int64_t mtime_s;
  long mtime_ns;
  int gzip; /* this representation is the .gz sibling */
  int vary; /* a .gz sibling exists */
} st_file;

/* Decide the answer for an existing file: 304 (If-None-Match, else
 * If-Modified-Since), 206 or 416 (Range, subject to If-Range, GET only), or
 * 200; fill status, offset, length (0 when no file bytes go out) and head.
 * a->fd is left alone. */
void st_plan(const st_request *rq, const st_file *f, st_answer *a);

#endif
