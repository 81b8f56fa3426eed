/* proxy: which peers are trusted proxies, and what they say about the
 * client behind them (RFC 7239 Forwarded, X-Forwarded-For,
 * X-Forwarded-Proto).
 *
 * Owns: parsing the trust setting ("127.0.0.1, 10.0.0.0/8, ::1", or "*"
 * for every peer) into a list of networks, matching addresses against it,
 * and picking the client address and scheme out of forwarded headers.
 *
 * Must never: believe a header from a peer that is not trusted (the caller
 * asks px_trusted first), allocate per request, or touch a socket. Pure
 * functions on text, testable alone (tests/c/test_proxy.c).
 *
 * The rule for X-Forwarded-For: each proxy appends the address it got the
 * request from, so the list reads client, proxy1, proxy2... and only the
 * entries added by proxies we trust are believable. Walking from the right,
 * every trusted address is a hop of ours; the first untrusted one is the
 * client. (The left-most entry is whatever the client chose to send.) */
#ifndef IODINE_PROXY_H
#define IODINE_PROXY_H

#include <stddef.h>
#include <stdint.h>

typedef struct px_trust px_trust;

/* Parse a comma- or space-separated list of addresses and CIDR networks
 * (IPv4 or IPv6), or "*". Returns NULL and a message in err on a bad
 * entry. The result lives until px_free. An empty list is valid and trusts
 * nobody. */
px_trust *px_parse(const char *spec, char *err, size_t errlen);
void px_free(px_trust *t);

/* 1 when the text address (as accept() reported it) is trusted. */
int px_trusted(const px_trust *t, const char *addr, size_t len);

/* The client address from an X-Forwarded-For value sent by a trusted peer:
 * sets *out and *outlen to a slice of `v` and returns 1, or returns 0 when the
 * header names no usable address (then keep the peer's address). Entries
 * may carry a port ("1.2.3.4:80", "[::1]:80"): it is dropped. */
int px_client(const px_trust *t, const char *v, size_t len, const char **out, size_t *outlen);

/* The scheme from an X-Forwarded-Proto value: its right-most entry (added
 * by the proxy nearest to us), when it is "http" or "https" in any case.
 * Returns the lower-case constant, or NULL. */
const char *px_scheme(const char *v, size_t len);

/* RFC 7239 Forwarded, from a trusted peer: the same walk as X-Forwarded-For
 * over the elements' for= addresses (quotes, brackets and ports dropped);
 * returns 1 with *addr and *alen a slice of `v` and *scheme the proto= of that
 * same element ("http", "https" or NULL: the scheme the client used with
 * the first proxy we trust), or 0 when no element names a usable address.
 * Obfuscated identifiers ("unknown", "_hidden") and malformed elements stop
 * the walk like garbage in X-Forwarded-For. Only the last 64 elements are
 * looked at (a longer chain of our own proxies is not a thing). */
int px_forwarded(const px_trust *t, const char *v, size_t len, const char **addr, size_t *alen,
                 const char **scheme);

#endif
