/*
 * stdwh.h — Standard Webhooks v1, for the providers that sign that way.
 */
#ifndef MH_STDWH_H
#define MH_STDWH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mailhook/provider.h"
#include "mailhook/provider_options.h"

struct mh_headers;
struct mh_source;

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
 * generic "standard" provider): the options table mh_stdwh_options (timestamp_tolerance_s,
 * default 300 s, 0 turns the check off), secrets checked at init, verify as
 * mh_stdwh_verify.
 */
extern const struct mh_option_def mh_stdwh_options[];
int mh_stdwh_source_init(struct mh_source *src, char *err, size_t errlen);
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
