/* tls_peer: a TLS client doing what Python's ssl module cannot, for
 * tests/tls/test_tls_peer.py (compiled at test time against the system's
 * OpenSSL; the test is skipped when that fails).
 *
 *   tls_peer keyupdate PORT
 *     Asks tls_app for /big?mib=16&mode=one without reading, so the server's
 *     socket fills and its output queues; then sends a TLS 1.3 KeyUpdate
 *     that requests one back, followed by GET /. The server's read meets
 *     the KeyUpdate while its output is stuck (a read that must write),
 *     and its queued writes then resume under new keys. Then reads
 *     everything: 16 MiB of the pattern and "hello https", in order.
 *   tls_peer renegotiate PORT
 *     TLS 1.2, then asks to renegotiate: the server refuses, and the
 *     connection either goes on or ends, but the server does not suffer.
 *
 * Prints one line and exits 0 when all went as expected. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BIG (16u * 1024 * 1024)

static int fail(const char *what) {
  printf("FAIL: %s\n", what);
  ERR_print_errors_fp(stdout);
  return 1;
}

static int dial(int port, int small_rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (small_rcvbuf) { /* so that the server's writes block early */
    int sz = 32 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
  struct timeval tv = {20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int write_all(SSL *ssl, const char *s) {
  size_t n = strlen(s), done = 0;
  while (done < n) {
    size_t w = 0;
    if (!SSL_write_ex(ssl, s + done, n - done, &w)) return -1;
    done += w;
  }
  return 0;
}

static int keyupdate(SSL_CTX *ctx, int port) {
  int fd = dial(port, 1);
  if (fd < 0) return fail("connect");
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) return fail("handshake");
  if (SSL_version(ssl) != TLS1_3_VERSION) return fail("not TLS 1.3");
  if (write_all(ssl, "GET /big?mib=16&mode=one HTTP/1.1\r\nHost: x\r\n\r\n")) return fail("write 1");
  usleep(700 * 1000); /* the server fills the socket and queues the rest */
  if (SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) != 1) return fail("key update");
  if (write_all(ssl, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")) return fail("write 2");
  usleep(300 * 1000); /* the server reads it while its output is stuck */
  size_t cap = BIG + 65536, len = 0;
  char *buf = malloc(cap);
  if (!buf) return fail("malloc");
  static const char tail[] = "\r\n\r\nhello https";
  while (len < sizeof tail - 1 || memcmp(buf + len - (sizeof tail - 1), tail, sizeof tail - 1)) {
    size_t n = 0;
    if (len == cap) return fail("more bytes than expected");
    if (!SSL_read_ex(ssl, buf + len, cap - len, &n)) return fail("read");
    len += n;
  }
  char *body = strstr(buf, "\r\n\r\n");
  if (!body || strncmp(buf, "HTTP/1.1 200 ", 13)) return fail("first response head");
  body += 4;
  for (size_t i = 0; i < BIG; i++)
    if ((unsigned char)body[i] != (unsigned char)(i % 256)) return fail("body bytes");
  if (strncmp(body + BIG, "HTTP/1.1 200 ", 13)) return fail("second response head");
  SSL_shutdown(ssl);
  SSL_free(ssl);
  close(fd);
  free(buf);
  printf("OK keyupdate\n");
  return 0;
}

static int renegotiate(SSL_CTX *ctx, int port) {
  SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  int fd = dial(port, 0);
  if (fd < 0) return fail("connect");
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) return fail("handshake");
  if (SSL_version(ssl) != TLS1_2_VERSION) return fail("not TLS 1.2");
  if (SSL_renegotiate(ssl) != 1) return fail("renegotiate call");
  int hs = SSL_do_handshake(ssl); /* sends a ClientHello, refused */
  /* Either the server's no_renegotiation warning lets the connection go
   * on (it then answers the request), or the renegotiation fails: both
   * are fine as long as no new handshake took place. */
  char buf[4096];
  size_t n = 0;
  int answered = 0;
  if (hs == 1 && write_all(ssl, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 0)
    answered = SSL_read_ex(ssl, buf, sizeof buf - 1, &n) == 1;
  SSL_free(ssl);
  close(fd);
  printf("OK renegotiate (%s)\n", answered ? "refused, connection went on" : "refused, ended");
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) return fail("usage: tls_peer keyupdate|renegotiate PORT");
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return fail("context");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* -tls: self-signed */
  int port = atoi(argv[2]);
  if (!strcmp(argv[1], "keyupdate")) return keyupdate(ctx, port);
  if (!strcmp(argv[1], "renegotiate")) return renegotiate(ctx, port);
  return fail("unknown mode");
}
