/*
 * ark.c — Ark (arkhq.io) webhooks, the `ark` provider. Ark runs Postal's event model,
 * so this is Postal's code (postal.c, through postal_common.h) with Ark's flavor:
 *
 * Verify: X-Ark-Signature, base64 RSA-SHA256 of the raw body, with X-Ark-Signature-KID
 * naming the JWKS key; Postal's headers are accepted too (Ark appears to run on Postal),
 * in the same order. The envelope's timestamp must lie within timestamp_tolerance_s of
 * now. Ark retries a failed delivery for about 3 days, and whether an automatic retry
 * is re-stamped is not documented: the default, 345600 s (4 days), lets every genuine
 * retry through; dedup makes a replay inside the window harmless (0 disables).
 *
 * Parse: Postal's envelope plus Ark's tenant_id (kept as metadata) and its numeric
 * bounce classification codes. Ark documents that the event type may be known only from
 * the subscription: without an "event" member it is read from payload.status or the
 * payload's shape.
 *
 * Keys and options: as for Postal (postal.c), usually jwks_file with Ark's JWKS.
 */
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"
#include "postal_common.h"

static const struct mh_postal_flavor ark_flavor = {
    "ark", "x-ark-signature", "x-ark-signature-kid", 1,
};

static const struct mh_option_def ark_options[] = {
    MH_POSTAL_KEY_OPTIONS,
    MH_OPT_TIMESTAMP_TOLERANCE("345600"),
    {0},
};

static const char *const ark_forward[] = {"x-ark-signature", "x-ark-signature-kid", POSTAL_SIG256,
                                          POSTAL_SIG1, POSTAL_KID, NULL};

static int ark_init(struct mh_source *src, char *err, size_t errlen)
{
    return mh_postal_init(&ark_flavor, src, err, errlen);
}

static enum mh_verdict ark_verify(const struct mh_source *src, const struct mh_request *req,
                                  char *err, size_t errlen)
{
    return mh_postal_verify(&ark_flavor, src, req, err, errlen);
}

static int ark_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err, size_t errlen)
{
    return mh_postal_sign(&ark_flavor, src, sr, err, errlen);
}

static int ark_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_postal_parse(&ark_flavor, raw, events, err, errlen);
}

const struct mh_provider mh_provider_ark = {
    .name = "ark",
    .options = ark_options,
    .forward_headers = ark_forward,
    .needs_secret = 0,
    .init = ark_init,
    .fini = mh_postal_fini,
    .verify = ark_verify,
    .parse = ark_parse,
    .sign = ark_sign,
};
