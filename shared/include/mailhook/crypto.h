/*
 * crypto.h — thin wrappers over OpenSSL for what signature schemes need:
 * HMAC, digests, hex and base64, constant-time comparison, random ids.
 */
#ifndef MH_CRYPTO_H
#define MH_CRYPTO_H

#include <stddef.h>
#include <sys/types.h>

#define MH_MAX_MD 64

struct mh_buf {
    const void *data;
    size_t len;
};

/*
 * HMAC over the concatenation of parts with the digest named by md ("sha1", "sha256",
 * "sha512"). Writes the MAC into out (MH_MAX_MD bytes) and returns its length, or -1
 * for an unknown digest.
 */
int mh_hmac(const char *md, const void *key, size_t keylen, const struct mh_buf *parts,
            size_t nparts, unsigned char *out);

/* SHA-256 of the concatenation of parts, as 32 bytes. */
void mh_sha256(const struct mh_buf *parts, size_t nparts, unsigned char out[32]);

/* SHA-256 of the concatenation of parts, as 64 lower-case hex chars + NUL. */
void mh_sha256_hex(const struct mh_buf *parts, size_t nparts, char out[65]);

/* Lower-case hex of in into out (2*len+1 bytes). */
void mh_hex_encode(const unsigned char *in, size_t len, char *out);
/* Decodes hex (either case); returns the byte count or -1 on bad input / no room. */
ssize_t mh_hex_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* Standard base64 with padding; out must hold 4*((len+2)/3)+1 bytes. Returns length. */
size_t mh_b64_encode(const unsigned char *in, size_t len, char *out);
/*
 * Decodes standard or URL-safe base64, padded or not, ignoring surrounding white space.
 * Returns the byte count, or -1 on bad input / no room.
 */
ssize_t mh_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* 1 when the two buffers are equal, compared in constant time for equal lengths. */
int mh_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* n random bytes as 2n hex chars into out (2n+1 bytes). */
void mh_random_hex(size_t n, char *out);
/* n bytes from OpenSSL's generator (aborts when it fails, as mh_random_hex does). */
void mh_random_bytes(unsigned char *out, size_t n);

#endif
