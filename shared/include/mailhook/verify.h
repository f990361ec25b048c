/*
 * verify.h — building blocks for providers' verify functions, whatever the scheme:
 * HMAC over parts, constant-time secret comparison, HTTP Basic, timestamps, key files.
 * One scheme shared by several providers has a header of its own: stdwh.h (Standard
 * Webhooks), cred.h (credentials of providers that sign nothing).
 */
#ifndef MH_VERIFY_H
#define MH_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mailhook/crypto.h"
#include "mailhook/provider.h"

struct mh_headers;
struct mh_source;

enum mh_sig_encoding { MH_SIG_HEX, MH_SIG_BASE64 };

/*
 * 1 when sig (the signature text from a header, prefix already removed) equals
 * HMAC-md(secret, parts...) for any of the source's active secrets, else 0. Every
 * secret is tried, and each comparison is constant-time.
 */
int mh_verify_hmac_any(const struct mh_source *src, const char *md, const struct mh_buf *parts,
                       size_t nparts, const char *sig, enum mh_sig_encoding enc);

/*
 * 1 when sig equals HMAC-md(key, parts...) for one fixed key that is not a source secret
 * (e.g. a key a provider publishes for its own test requests), else 0. The comparison
 * is constant-time. A caller must decide what such a key may authenticate: a published
 * key proves nothing about who sent the request.
 */
int mh_verify_hmac_key(const void *key, size_t keylen, const char *md,
                       const struct mh_buf *parts, size_t nparts, const char *sig,
                       enum mh_sig_encoding enc);

/*
 * Signs parts with the source's first (newest) secret: writes the MAC as hex or base64
 * into out (at least 2*MH_MAX_MD+1 bytes). 0, or -1 for an unknown digest / no secret.
 */
int mh_sign_hmac(const struct mh_source *src, const char *md, const struct mh_buf *parts,
                 size_t nparts, enum mh_sig_encoding enc, char *out);

/*
 * Credentials for schemes without a signature (a shared secret sent as it is: HTTP
 * Basic, a URL token, a custom header). Every comparison is made on SHA-256 digests
 * with mh_ct_equal and every secret is tried, so neither the time taken nor an early
 * exit tells which part or which secret was wrong, or how long it is.
 */

/* 1 when the two strings (of any lengths) are equal, compared as above. */
int mh_ct_str_equal(const char *a, size_t alen, const char *b, size_t blen);

/* 1 when s (len bytes) equals one of the source's secrets. */
int mh_verify_secret_any(const struct mh_source *src, const char *s, size_t len);

/*
 * Checks an Authorization header value against "Basic base64(user:secret)" for any of
 * the source's secrets. Returns 0 when the value is absent or of another scheme, else 1
 * with *ok set to whether user and a secret matched (a malformed value never does).
 * A NULL user never matches.
 */
int mh_verify_basic(const struct mh_source *src, const char *authorization, const char *user,
                    int *ok);

/*
 * Adds "Authorization: Basic base64(user:secret)" with the source's first (newest)
 * secret to h. 0, or -1 when the source has no secret.
 */
int mh_sign_basic(const struct mh_source *src, const char *user, struct mh_headers *h);

/*
 * 1 when the timestamp ts_ms lies within tolerance_s of now_ms (either direction).
 * A tolerance of 0 disables the check.
 */
int mh_verify_timestamp(int64_t ts_ms, int64_t now_ms, long tolerance_s);

/* Unix seconds written as 1 to 12 decimal digits, nothing else (no sign, fraction or
 * blank): 0, or -1 when ts is anything else. */
int mh_unix_seconds(const char *ts, int64_t *s);

/* A key or certificate file (at most 64 KiB) as a NUL-terminated string; *len its size
 * when len is not NULL. NULL with err. The caller frees (after OPENSSL_cleanse for a
 * private key). */
char *mh_read_key_file(const char *path, size_t *len, char *err, size_t errlen);

/* The PEM private key at path (for `mailhook sign --key`); NULL with err. */
EVP_PKEY *mh_load_private_key(const char *path, char *err, size_t errlen);

#endif
