/*
 * verify.h — building blocks for providers' verify functions.
 */
#ifndef MH_VERIFY_H
#define MH_VERIFY_H

#include <jansson.h>
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
 * The whole credential check of a provider that signs nothing (Postmark, SparkPost,
 * Brevo), driven by the source options the provider lists:
 *   basic_user = NAME    Authorization: Basic NAME:<one of the secrets>
 *   bearer = true        Authorization: Bearer <one of the secrets>
 *   header     = X-NAME  the header's value is one of the secrets
 * basic_user and bearer share the Authorization header, so only one may be set. Every
 * configured check must pass. Error texts never contain a credential.
 */

/* For init: basic_user non-empty without ':', bearer true/false, header a token other
 * than Authorization, at least one of them set. 0, or -1 with err (and src->err_line). */
int mh_cred_init(struct mh_source *src, char *err, size_t errlen);

/* For verify: MH_VERIFY_OK, or MH_VERIFY_REJECT with the failed check named in err. */
enum mh_verdict mh_cred_verify(const struct mh_source *src, const struct mh_request *req,
                               char *err, size_t errlen);

/* For sign: the credentials the source expects, with its first (newest) secret. */
int mh_cred_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err, size_t errlen);

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

/*
 * Reads a whole-number provider option (def when absent); -1 with err (and
 * src->err_line pointing at the option) when it is not a number within min..max.
 */
int mh_source_long_opt(struct mh_source *src, const char *key, long def, long min, long max,
                       long *out, char *err, size_t errlen);

/*
 * Standard Webhooks v1 (https://www.standardwebhooks.com; Svix and the providers that
 * send through it, e.g. Resend). A message carries three headers, webhook-id,
 * webhook-timestamp (Unix seconds) and webhook-signature, or the same three named
 * svix-*; the signature is base64(HMAC-SHA256(key, id "." timestamp "." raw body)),
 * listed as space-separated "v1,<base64>" entries (several during a key rotation). The
 * key is the base64-decoded secret, shown to users as "whsec_<base64>".
 */

/* The three headers of one family, borrowed from the header list. */
struct mh_stdwh_headers {
    const char *id;
    const char *timestamp;
    const char *signature;
};

/*
 * Picks the family the way Svix's verifier does: the svix-* triple when all three are
 * present and non-empty, else the webhook-* triple. 0, or -1 when neither is complete
 * (the fields then hold what was found, svix-* first, for error messages).
 */
int mh_stdwh_headers(const struct mh_headers *h, struct mh_stdwh_headers *out);

/* Longest accepted key (the spec generates 24..64 bytes). */
#define MH_STDWH_MAX_KEY 128

/*
 * The HMAC key of a secret: "whsec_" (optional) then base64, padded or not. Returns the
 * key length, or -1 for an empty, non-base64 or over-long secret.
 */
ssize_t mh_stdwh_key(const char *secret, unsigned char *key, size_t cap);

/*
 * For a provider's init: every secret of the source must decode as above. -1 with err
 * naming the secret's position (never its text) otherwise.
 */
int mh_stdwh_check_secrets(const struct mh_source *src, char *err, size_t errlen);

/*
 * Verifies a Standard Webhooks request against every secret of the source: the header
 * triple (mh_stdwh_headers), an id without '.', a timestamp of decimal digits within
 * tolerance_s of now_ms (0 disables that check), and at least one "v1," entry that
 * matches one secret's HMAC (entries of other versions are skipped; every comparison
 * is constant-time and made for every secret and entry). Writes the reason into err
 * on failure; the reason never contains a secret or an expected signature.
 */
enum mh_verdict mh_stdwh_verify(const struct mh_source *src, const struct mh_headers *h,
                                const unsigned char *body, size_t len, int64_t now_ms,
                                long tolerance_s, char *err, size_t errlen);

/* Room for "v1," and a base64 SHA-256 MAC. */
#define MH_STDWH_SIG_BUFSZ 64

/*
 * The signature entry "v1,<base64>" of (id, timestamp, body) with the source's first
 * (newest) secret into out (MH_STDWH_SIG_BUFSZ bytes). 0, or -1 when the source has no
 * usable secret.
 */
int mh_stdwh_sign(const struct mh_source *src, const char *id, const char *timestamp,
                  const unsigned char *body, size_t len, char *out);

/*
 * A whole Standard Webhooks source, for providers that sign only that way (Resend, the
 * generic "standard" provider): the option timestamp_tolerance_s (default 300 s, 0 turns
 * the check off) and secrets checked at init; verify as mh_stdwh_verify.
 */
int mh_stdwh_source_init(struct mh_source *src, char *err, size_t errlen);
void mh_stdwh_source_fini(struct mh_source *src);
enum mh_verdict mh_stdwh_source_verify(const struct mh_source *src, const struct mh_request *req,
                                       char *err, size_t errlen);
/*
 * For sign: the three headers, named prefix-id, prefix-timestamp and prefix-signature
 * ("webhook" or "svix"), stamped sr->now_ms. The message id is derived from the body, so
 * posting the same file twice is one message delivered twice, as a provider retry is.
 */
int mh_stdwh_source_sign(const struct mh_source *src, struct mh_sign_req *sr,
                         const char *prefix, char *err, size_t errlen);
/*
 * For parse: finishes ev (mh_event_finish) with the message id of the header family
 * verify used (webhook-id / svix-id) as the provider id; without one, the id is derived
 * from the event and from when and link, the raw texts that tell two events of one
 * message apart (either may be NULL).
 */
void mh_stdwh_event_finish(json_t *ev, const struct mh_raw *raw, const char *when,
                           const char *link);

#endif
