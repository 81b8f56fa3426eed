/* tls: TLS for reactor connections, with OpenSSL.
 *
 * Owns: the per-listener TLS context (certificate and key, loaded from PEM
 * files or made on the fly as a self-signed development certificate) and
 * each TLS connection's OpenSSL state, which it plugs into the reactor as
 * the connection's transport (rx_transport, reactor.h). The handshake runs
 * inside the first reads and writes, so it is driven by epoll readiness like
 * any other I/O; close_notify is sent when the reactor closes a healthy
 * connection.
 *
 * Must never: block (every socket is non-blocking and every OpenSSL call
 * returns at once), parse a protocol above TLS, touch the output queue or
 * epoll itself (the reactor does both), or talk to the terminal (an
 * encrypted key fails to load instead of prompting for a pass phrase).
 *
 * Built without OpenSSL (no IODINE_TLS), every function is a stub and
 * tls_available() says 0. */
#ifndef IODINE_TLS_H
#define IODINE_TLS_H

#include <stddef.h>

typedef struct rx_conn rx_conn;
typedef struct tls_ctx tls_ctx;

/* 1 when this build has TLS (OpenSSL was found at build time), else 0. */
int tls_available(void);

/* A server context from a PEM certificate chain and a PEM private key, or,
 * with both NULL, a fresh self-signed certificate for CN=localhost (SAN
 * localhost, 127.0.0.1, ::1) for development. NULL on failure, with a
 * one-line reason in err (always NUL-terminated when errlen > 0). */
/* The passphrase for encrypted private keys loaded from now on (NULL or
 * "": none). Start-up only, before the contexts are made. */
void tls_set_key_password(const char *pass);
tls_ctx *tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen);
/* Release the caller's reference; connections keep theirs. */
void tls_ctx_free(tls_ctx *t);

/* Make c speak TLS (as the server) before it has read or written
 * anything. 0, or -1 (out of memory, or no TLS in this build). The loop
 * thread, holding the big lock. */
int tls_attach(rx_conn *c, tls_ctx *t);

/* Client side (raw.c's outgoing connections). A client context verifies
 * the server's certificate against `ca_file` (PEM; NULL: the system's
 * default store) unless `verify` is 0 (development only). NULL on failure
 * with a reason in err. Free with tls_ctx_free. Any thread. */
tls_ctx *tls_client_ctx_new(const char *ca_file, int verify, char *err, size_t errlen);
/* Make c speak TLS as the client of `servername` (SNI and the name the
 * certificate must carry; an IP literal is checked as an address). NULL
 * servername: no SNI, no name check. 0 or -1. Lock held. */
int tls_attach_client(rx_conn *c, tls_ctx *t, const char *servername);
/* 1 once c's handshake has completed. */
int tls_handshake_done(const rx_conn *c);
/* Why c's handshake failed, when the certificate was refused (a static
 * string), or NULL. */
const char *tls_verify_error(const rx_conn *c);

#endif
