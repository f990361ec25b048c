/*
 * postal_common.h — what postal.c shares with ark.c. Ark runs Postal's event model, so
 * both providers use one key loader, verifier, signer and parser, told apart by a
 * flavor: the provider's header names, its default freshness window and Ark's extras.
 * Internal to shared/providers/ (not one of mailhook's public headers).
 */
#ifndef MH_PROVIDERS_POSTAL_COMMON_H
#define MH_PROVIDERS_POSTAL_COMMON_H

#include <stddef.h>

#include "mailhook/provider.h"
#include "mailhook/provider_options.h"

/* Postal's own headers, which Ark may send as well. */
#define POSTAL_SIG256 "x-postal-signature-256"
#define POSTAL_SIG1 "x-postal-signature"
#define POSTAL_KID "x-postal-signature-kid"

/* One provider's header names (the SHA-256 header first); the option tables hold the
 * defaults. */
struct mh_postal_flavor {
    const char *name;
    const char *sig256;
    const char *kid;
    /* Ark: Postal's SHA-256 header accepted too, Ark's headers when signing, tenant_id kept. */
    int ark;
};

/* The key options both providers take; each table adds its own timestamp tolerance. */
#define MH_POSTAL_KEY_OPTIONS                                                                  \
    {.name = "public_key_file", .type = MH_OPT_FILE, .flags = MH_OPT_REPEATABLE,               \
     .help = "an RSA public key: PEM (SPKI or PKCS#1), bare base64 or a DKIM record"},         \
    {.name = "jwks_file", .type = MH_OPT_FILE, .flags = MH_OPT_REPEATABLE,                     \
     .help = "a JWKS document; its RSA keys are used by kid"},                                 \
    {.name = "allow_sha1", .type = MH_OPT_BOOL, .def = "true",                                 \
     .help = "accept X-Postal-Signature (RSA SHA-1) when no SHA-256 signature is sent"}

/* The provider callbacks of struct mh_provider, for the flavor fl. */
int mh_postal_init(const struct mh_postal_flavor *fl, struct mh_source *src, char *err,
                   size_t errlen);
void mh_postal_fini(struct mh_source *src);
enum mh_verdict mh_postal_verify(const struct mh_postal_flavor *fl, const struct mh_source *src,
                                 const struct mh_request *req, char *err, size_t errlen);
int mh_postal_sign(const struct mh_postal_flavor *fl, const struct mh_source *src,
                   struct mh_sign_req *sr, char *err, size_t errlen);
int mh_postal_parse(const struct mh_postal_flavor *fl, const struct mh_raw *raw, json_t *events,
                    char *err, size_t errlen);

#endif
