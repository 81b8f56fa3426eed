/* tls: see tls.h for what this file owns.
 *
 * OpenSSL does the protocol; this file adapts it to the reactor's transport
 * calls (reactor.h). Each connection's SSL object reads and writes its
 * socket directly through a socket BIO, so no buffer sits between them, and
 * the server side of the handshake starts from SSL_set_accept_state: the
 * first SSL_read_ex (or SSL_write_ex) performs it, returning WANT_READ or
 * WANT_WRITE until it is done. The reactor maps those onto epoll readiness,
 * including the crossed cases (a read that must write, a write that must
 * read). */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor.h"

#ifdef IODINE_TLS

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "iodine-py's TLS needs OpenSSL 3.0 or newer (build with IODINE_NO_TLS=1 to go without)"
#endif

#define SELF_SIGNED_DAYS 365

struct tls_ctx {
  SSL_CTX *ssl;
};

typedef struct tls_conn {
  SSL *ssl;
  unsigned failed : 1;      /* fatal error or dead socket: no close_notify */
  unsigned peer_closed : 1; /* the peer sent its close_notify */
} tls_conn;

int tls_available(void) { return 1; }

/* One line for the caller: `what`, then OpenSSL's reason for the first
 * error it queued (the root cause; later ones only say which call failed).
 * Empties this thread's error queue, which OpenSSL keeps per thread and
 * would otherwise confuse the next call that reads it (Python's ssl module
 * on this thread included). */
static void say(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_peek_error();
  const char *why = e ? ERR_reason_error_string(e) : NULL;
  if (errlen) snprintf(err, errlen, "%s%s%s", what, why ? ": " : "", why ? why : "");
  ERR_clear_error();
}

/* An encrypted key must fail to load, not stop the server to ask for a
 * pass phrase on the terminal (OpenSSL's default). Being asked at all tells
 * us the key was encrypted: *arg notes it for the error message. */
/* The passphrase of encrypted private keys (-tls-pass), set before any
 * context is made (start-up, one thread); none: an encrypted key is an
 * error that says so. */
static char key_pass[1024];
static size_t key_pass_len;

void tls_set_key_password(const char *pass) {
  size_t n = pass ? strlen(pass) : 0;
  if (n >= sizeof key_pass) n = 0; /* too long to be ours: refused as wrong */
  memcpy(key_pass, pass ? pass : "", n);
  key_pass[n] = 0;
  key_pass_len = n;
}

static int key_passphrase(char *buf, int size, int rwflag, void *arg) {
  (void)rwflag;
  if (arg) *(int *)arg = 1;
  if (!key_pass_len || key_pass_len > (size_t)size) return 0;
  memcpy(buf, key_pass, key_pass_len);
  return (int)key_pass_len;
}

/* ALPN: we speak HTTP/1.1 only. A client that offers it gets it (one that
 * also offers h2 then knows not to try); one that does not gets no ALPN
 * answer at all, and the handshake goes on. The list is length-prefixed
 * names, walked here without trusting any length. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  for (unsigned int i = 0; i < inlen;) {
    unsigned int l = in[i];
    if (l > inlen - i - 1) break;
    if (l == 8 && !memcmp(in + i + 1, "http/1.1", 8)) {
      *out = in + i + 1;
      *outlen = 8;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + l;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value) {
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
  if (!ext) return -1;
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

/* A certificate for development: a P-256 key (fast to make, accepted
 * everywhere), CN=localhost, and the subjectAltNames clients actually check
 * (localhost, 127.0.0.1, ::1). It is not a CA, so trusting it trusts
 * nothing else. Made fresh for each run and never written to disk. */
static int self_signed(SSL_CTX *ctx, char *err, size_t errlen) {
  int rc = -1;
  X509 *x = NULL;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  if (!key) {
    say(err, errlen, "cannot make a key for the self-signed certificate");
    return -1;
  }
  x = X509_new();
  uint64_t serial = 0;
  if (!x || RAND_bytes((unsigned char *)&serial, sizeof serial) != 1) goto out;
  serial >>= 1; /* serial numbers are positive */
  X509_NAME *name = X509_get_subject_name(x);
  X509V3_CTX v3;
  if (!X509_set_version(x, X509_VERSION_3) ||
      !ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial | 1) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -3600) || /* clock skew */
      !X509_gmtime_adj(X509_getm_notAfter(x), SELF_SIGNED_DAYS * 86400L) ||
      !X509_set_pubkey(x, key) ||
      !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                  (const unsigned char *)"iodine-py development", -1, -1, 0) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                                  -1, 0) ||
      !X509_set_issuer_name(x, name))
    goto out;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
  if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
      add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
      add_ext(x, &v3, NID_ext_key_usage, "serverAuth") ||
      add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
      add_ext(x, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"))
    goto out;
  if (!X509_sign(x, key, EVP_sha256())) goto out;
  if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) goto out;
  rc = 0;
out:
  if (rc) say(err, errlen, "cannot make a self-signed certificate");
  X509_free(x);
  EVP_PKEY_free(key);
  return rc;
}

tls_ctx *tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen) {
  if (errlen) err[0] = 0;
  if (!cert_file != !key_file) {
    if (errlen) snprintf(err, errlen, "a certificate needs its key and a key its certificate");
    return NULL;
  }
  ERR_clear_error();
  tls_ctx *t = calloc(1, sizeof *t);
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!t || !ctx) {
    say(err, errlen, "cannot make a TLS context");
    goto fail;
  }
  /* TLS 1.0/1.1 are deprecated (RFC 8996). Renegotiation is refused: it
   * lets a client make us redo handshakes at will and is gone from 1.3. */
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  /* Partial writes: SSL_write_ex returns after each record, so the reactor
   * retires what went out and keeps the rest queued. Moving buffer: a retry
   * may present the same bytes from another address (the reactor rebuilds
   * each chunk from its queue). Release buffers: an idle connection (most
   * WebSocket and SSE ones) holds no 34 KiB of record buffers. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  int asked = 0;
  SSL_CTX_set_default_passwd_cb(ctx, key_passphrase);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  if (!cert_file) {
    if (self_signed(ctx, err, errlen)) goto fail;
  } else {
    char what[320];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
      snprintf(what, sizeof what, "cannot load a PEM certificate from %s", cert_file);
      say(err, errlen, what);
      goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
      unsigned long e = ERR_peek_error();
      if (asked && key_pass_len) {
        ERR_clear_error();
        snprintf(err, errlen,
                 "the private key in %s cannot be decrypted with the "
                 "-tls-pass passphrase",
                 key_file);
      } else if (asked) {
        ERR_clear_error();
        snprintf(err, errlen,
                 "the private key in %s is encrypted: give its passphrase "
                 "with -tls-pass (or decrypt it: openssl pkey -in KEY -out KEY.plain)",
                 key_file);
      } else if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
                 ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
        ERR_clear_error();
        snprintf(err, errlen, "the private key in %s does not match the certificate in %s",
                 key_file, cert_file);
      } else {
        snprintf(what, sizeof what, "cannot load a PEM private key from %s", key_file);
        say(err, errlen, what);
      }
      goto fail;
    }
  }
  SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL); /* `asked` ends here */
  if (SSL_CTX_check_private_key(ctx) != 1) {
    say(err, errlen, "the private key does not match the certificate");
    goto fail;
  }
  t->ssl = ctx;
  return t;
fail:
  SSL_CTX_free(ctx);
  free(t);
  return NULL;
}

void tls_ctx_free(tls_ctx *t) {
  if (!t) return;
  SSL_CTX_free(t->ssl); /* connections hold their own references */
  free(t);
}

/* --- the transport ---------------------------------------------------------- */

/* What a failed SSL_read_ex/SSL_write_ex means for the reactor. */
static long outcome(tls_conn *t) {
  int e = SSL_get_error(t->ssl, 0);
  switch (e) {
  case SSL_ERROR_WANT_READ: return RX_TR_WANT_READ;
  case SSL_ERROR_WANT_WRITE: return RX_TR_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN: /* close_notify: the clean end of input */
    t->peer_closed = 1;
    return RX_TR_ERROR;
  default: /* a bad handshake, garbage, a reset, an EOF without close_notify */
    t->failed = 1;
    ERR_clear_error();
    return RX_TR_ERROR;
  }
}

static long tls_read(rx_conn *c, void *dst, size_t len) {
  tls_conn *t = c->tr_state;
  size_t n = 0;
  ERR_clear_error(); /* SSL_get_error reads the queue: start it empty */
  if (SSL_read_ex(t->ssl, dst, len, &n)) return (long)n;
  return outcome(t);
}

static long tls_write(rx_conn *c, const void *src, size_t len) {
  tls_conn *t = c->tr_state;
  size_t n = 0;
  ERR_clear_error();
  if (SSL_write_ex(t->ssl, src, len, &n)) return (long)n;
  return outcome(t);
}

static void tls_close(rx_conn *c) {
  tls_conn *t = c->tr_state;
  /* close_notify tells the peer the stream was not cut short. Only a
   * connection past its handshake and still alive gets one (a socket that
   * hung up or errored would only answer EPIPE); we send it once and do
   * not wait for the peer's, since the socket closes next. */
  int alive = !rx_peer_gone(c) || t->peer_closed;
  if (!t->failed && alive && SSL_is_init_finished(t->ssl)) {
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
  }
  SSL_free(t->ssl);
  free(t);
}

static const rx_transport tls_transport = {
    .read = tls_read, .write = tls_write, .close = tls_close};

int tls_attach(rx_conn *c, tls_ctx *t) {
  tls_conn *tc = calloc(1, sizeof *tc);
  if (!tc) return -1;
  ERR_clear_error();
  tc->ssl = SSL_new(t->ssl);
  /* The socket BIO does not own the fd: the reactor closes it. */
  if (!tc->ssl || SSL_set_fd(tc->ssl, c->fd) != 1) {
    SSL_free(tc->ssl);
    free(tc);
    ERR_clear_error();
    return -1;
  }
  SSL_set_accept_state(tc->ssl);
  rx_set_transport(c, &tls_transport, tc);
  return 0;
}

tls_ctx *tls_client_ctx_new(const char *ca_file, int verify, char *err, size_t errlen) {
  if (errlen) err[0] = 0;
  ERR_clear_error();
  tls_ctx *t = calloc(1, sizeof *t);
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!t || !ctx) {
    say(err, errlen, "cannot make a TLS client context");
    goto fail;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  /* the same write modes as the server side (see tls_ctx_new) */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  if (verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
      char what[320];
      snprintf(what, sizeof what, "cannot load CA certificates from %s",
               ca_file ? ca_file : "the system store");
      say(err, errlen, what);
      goto fail;
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  t->ssl = ctx;
  return t;
fail:
  SSL_CTX_free(ctx);
  free(t);
  return NULL;
}

int tls_attach_client(rx_conn *c, tls_ctx *t, const char *servername) {
  if (tls_attach(c, t)) return -1;
  tls_conn *tc = c->tr_state;
  SSL_set_connect_state(tc->ssl);
  if (servername && *servername) {
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(servername);
    int ok;
    if (ip) { /* an address: no SNI (RFC 6066 3), checked against IP SANs */
      ASN1_OCTET_STRING_free(ip);
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tc->ssl), servername);
    } else {
      ok = SSL_set_tlsext_host_name(tc->ssl, servername) == 1 &&
           SSL_set1_host(tc->ssl, servername) == 1;
    }
    ERR_clear_error();
    if (!ok) return -1; /* the caller closes c, and the transport with it */
  }
  return 0;
}

int tls_handshake_done(const rx_conn *c) {
  const tls_conn *tc = c->tr_state;
  return tc && SSL_is_init_finished(tc->ssl);
}

const char *tls_verify_error(const rx_conn *c) {
  const tls_conn *tc = c->tr_state;
  if (!tc) return NULL;
  long v = SSL_get_verify_result(tc->ssl);
  return v == X509_V_OK ? NULL : X509_verify_cert_error_string(v);
}

#else /* built without OpenSSL: the same API, saying so */

int tls_available(void) { return 0; }

void tls_set_key_password(const char *pass) { (void)pass; }

tls_ctx *tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen) {
  (void)cert_file;
  (void)key_file;
  if (errlen) snprintf(err, errlen, "this build has no TLS (OpenSSL headers were missing)");
  return NULL;
}

void tls_ctx_free(tls_ctx *t) { (void)t; }

tls_ctx *tls_client_ctx_new(const char *ca_file, int verify, char *err, size_t errlen) {
  (void)ca_file;
  (void)verify;
  if (errlen) snprintf(err, errlen, "this build has no TLS");
  return NULL;
}
int tls_attach_client(rx_conn *c, tls_ctx *t, const char *servername) {
  (void)c;
  (void)t;
  (void)servername;
  return -1;
}
int tls_handshake_done(const rx_conn *c) {
  (void)c;
  return 0;
}
const char *tls_verify_error(const rx_conn *c) {
  (void)c;
  return NULL;
}

int tls_attach(rx_conn *c, tls_ctx *t) {
  (void)c;
  (void)t;
  return -1;
}

#endif
