/* corpus_check: the driver behind tests/c/corpus_check.py.
 *
 * For each raw request file it plays the part of the server loop around
 * http1_parser (head, framing, body, keep-alive, next request) and prints
 * one line: the file name, a tab, and the outcomes in order:
 *   ok          a request was parsed, framed and its body read
 *   E400 ...    the parser's verdict (the server sends it and closes)
 *   incomplete  the input ran out mid-request (the server would wait)
 *   close       a request without keep-alive was followed by more bytes
 *   switch      Upgrade: websocket or CONNECT: the bytes after are not HTTP
 * Options: --max-line N --max-headers N --max-head N (head cap, 431 when
 * reached) --inject-host (an HTTP/1.1 request without Host is framed as if
 * it had one, to see what else the parser thinks of it).
 *
 * Build: cc -std=c11 -O1 -g -Wall -Wextra -Werror -Iext ext/http1_parser.c \
 *          tests/c/corpus_check.c -o build/corpus_check */
#define _POSIX_C_SOURCE 200809L
#include "http1_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t max_line = 8190, max_headers = 100, max_head = 65536;
static int inject_host;

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *b;
  long n;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void run(const char *path) {
  size_t len, pos = 0;
  char *buf = slurp(path, &len);
  http1_header *hdrs = calloc(max_headers + 1, sizeof *hdrs);
  http1_limits lim = {max_line, max_headers};

  printf("%s\t", path);
  if (!buf || !hdrs) {
    printf("unreadable\n");
    free(buf);
    free(hdrs);
    return;
  }
  while (pos < len) {
    http1_request req;
    http1_framing fr;
    size_t scanned = 0;
    int rc, i, has_host = 0;

    memset(&req, 0, sizeof req);
    req.headers = hdrs;
    rc = http1_parse_request(buf + pos, len - pos, &scanned, &lim, &req);
    if (rc == HTTP1_INCOMPLETE) {
      printf(len - pos >= max_head ? "E431 " : "incomplete ");
      break;
    }
    if (rc < 0) {
      printf("E%d ", -rc);
      break;
    }
    pos += (size_t)rc;
    for (i = 0; i < (int)req.num_headers; i++)
      has_host |= http1_name_is(&req.headers[i], "host", 4);
    if (inject_host && !has_host && req.version_minor == 1) {
      hdrs[req.num_headers].name = "Host";
      hdrs[req.num_headers].name_len = 4;
      hdrs[req.num_headers].value = "example.com";
      hdrs[req.num_headers].value_len = 11;
      req.num_headers++;
    }
    rc = http1_request_framing(&req, &fr);
    if (rc < 0) {
      printf("E%d ", -rc);
      break;
    }
    if (fr.body == HTTP1_BODY_LENGTH) {
      if (fr.content_length > len - pos) {
        printf("incomplete ");
        break;
      }
      pos += (size_t)fr.content_length;
    } else if (fr.body == HTTP1_BODY_CHUNKED) {
      http1_chunked d;
      size_t n = len - pos;
      ssize_t left;
      memset(&d, 0, sizeof d);
      left = http1_decode_chunked(&d, buf + pos, &n);
      if (left == HTTP1_INCOMPLETE) {
        printf("incomplete ");
        break;
      }
      if (left < 0) {
        printf("E%d ", (int)-left);
        break;
      }
      pos = len - (size_t)left;
    }
    printf("ok ");
    if (fr.upgrade_websocket || (req.method_len == 7 && memcmp(req.method, "CONNECT", 7) == 0)) {
      printf("switch ");
      break;
    }
    if (!fr.keep_alive) {
      if (pos < len) printf("close ");
      break;
    }
  }
  printf("\n");
  free(buf);
  free(hdrs);
}

int main(int argc, char **argv) {
  int i;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--max-line") && i + 1 < argc)
      max_line = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--max-headers") && i + 1 < argc)
      max_headers = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--max-head") && i + 1 < argc)
      max_head = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--inject-host"))
      inject_host = 1;
    else
      run(argv[i]);
  }
  return 0;
}
