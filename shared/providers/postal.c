/*
 * postal.c — Postal (postalserver/postal) webhooks, the `postal` provider, and the code
 * Ark (ark.c: arkhq.io, which runs Postal's event model) shares with it through
 * postal_common.h: one verifier, signer and parser, told apart by a flavor. This file
 * owns their RSA keys, signature check, freshness check and the mapping of Postal's
 * events; it does not fetch keys (no I/O at request time).
 *
 * Keys: loaded in init from the source's options, each repeatable for rotation:
 *   public_key_file = PEM "PUBLIC KEY" (SPKI) or "RSA PUBLIC KEY" (PKCS#1), or the bare
 *                     base64 key Postal shows (its return-path DKIM record's p= value;
 *                     a whole "v=DKIM1; ...; p=..." record is accepted too);
 *   jwks_file       = a JWKS document (Postal's and Ark's /.well-known/jwks.json): every
 *                     RSA signing key in it, built from n and e, kept with its kid.
 * A JWKS key is used only when its kid equals the request's key-id header (when the
 * request names one); a key from public_key_file is always tried.
 *
 * Verify: base64 RSA PKCS#1 v1.5 over the exact raw body.
 *   postal: X-Postal-Signature-256 (SHA-256), preferred when present; otherwise
 *           X-Postal-Signature (SHA-1, sent by older Postal versions) unless
 *           allow_sha1 = false. Key id: X-Postal-Signature-KID.
 *   ark:    X-Ark-Signature (SHA-256) with X-Ark-Signature-KID; Postal's headers are
 *           accepted too (Ark appears to run on Postal), in the same order.
 * The signature covers no timestamp, but the signed body does: after the signature
 * passes, the envelope's `timestamp` (unix seconds) must lie within
 * timestamp_tolerance_s of now. Postal stamps the time the webhook was queued and keeps
 * it over its retries (about 36 minutes), so its default is 86400 — shorter than the
 * dedup window, so a replay is either too old or a duplicate. Ark retries for about
 * 3 days, so its default is 345600 (ark.c; docs/providers/README.md). 0 disables.
 *
 * Parse: {"event", "timestamp", "uuid", "payload"} (Ark adds tenant_id). One event per
 * request; the event id is the envelope uuid, stable over retries. Ark documents that
 * the event type may be known only from the subscription; without an "event" member it
 * is read from payload.status or the payload's shape. Status events of *incoming*
 * messages (Postal delivering inbound mail to an HTTP endpoint) are not outbound email
 * events: they keep provider_event and get type "other".
 */
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/crypto.h"
#include "mailhook/event.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"
#include "mailhook/timeutil.h"
#include "mailhook/verify.h"
#include "postal_common.h"

#define MIN_KEY_BITS 1024
#define MAX_SIG_BYTES 1024 /* an 8192-bit RSA signature */

struct rsa_key {
    char *kid; /* NULL for keys from public_key_file */
    EVP_PKEY *pkey;
};

struct postal_state {
    struct rsa_key *keys;
    size_t n_keys;
    long tolerance_s;
    int allow_sha1;
};

static const struct mh_postal_flavor postal_flavor = {
    "postal", "x-postal-signature-256", "x-postal-signature-kid", 0,
};

static const struct mh_option_def postal_options[] = {
    MH_POSTAL_KEY_OPTIONS,
    MH_OPT_TIMESTAMP_TOLERANCE("86400"),
    {0},
};
static const char *const postal_forward[] = {POSTAL_SIG256, POSTAL_SIG1, POSTAL_KID, NULL};

/* ---- key loading ---- */

static void openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, buf, len);
    else snprintf(buf, len, "not a usable key");
    ERR_clear_error();
}

/* Decodes a public RSA key in PEM or DER (SPKI or PKCS#1). NULL when it is none. */
static EVP_PKEY *decode_public_key(const unsigned char *data, size_t len, const char *input)
{
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(
        &pkey, input, NULL, "RSA", OSSL_KEYMGMT_SELECT_PUBLIC_KEY, NULL, NULL);
    if (!dctx) return NULL;
    if (OSSL_DECODER_from_data(dctx, &data, &len) != 1) pkey = NULL;
    OSSL_DECODER_CTX_free(dctx);
    return pkey;
}

/* The base64 of a bare key or of a DKIM record's p= tag, white space and quotes removed. */
static char *bare_base64(const char *text)
{
    const char *p = text;
    for (const char *q = text; (q = strstr(q, "p=")); q += 2)
        if (q == text || q[-1] == ';' || q[-1] == ' ' || q[-1] == '\t') p = q + 2;
    char *out = mh_malloc(strlen(p) + 1);
    size_t n = 0;
    for (; *p && *p != ';'; p++)
        if (!strchr(" \t\r\n\"'", *p)) out[n++] = *p;
    out[n] = '\0';
    return out;
}

static EVP_PKEY *load_key_text(const char *text, size_t len)
{
    if (strstr(text, "-----BEGIN")) return decode_public_key((const unsigned char *)text, len, "PEM");
    char *b64 = bare_base64(text);
    size_t blen = strlen(b64);
    unsigned char *der = mh_malloc(blen + 1);
    ssize_t n = blen ? mh_b64_decode(b64, blen, der, blen) : -1;
    EVP_PKEY *pkey = n > 0 ? decode_public_key(der, (size_t)n, "DER") : NULL;
    free(der);
    free(b64);
    return pkey;
}

static void add_key(struct postal_state *st, EVP_PKEY *pkey, const char *kid)
{
    st->keys = mh_realloc(st->keys, (st->n_keys + 1) * sizeof(*st->keys));
    st->keys[st->n_keys].pkey = pkey;
    st->keys[st->n_keys].kid = kid ? mh_strdup(kid) : NULL;
    st->n_keys++;
}

static int check_key(EVP_PKEY *pkey, const char *what, char *err, size_t errlen)
{
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        snprintf(err, errlen, "%s: not an RSA key", what);
        return -1;
    }
    if (EVP_PKEY_get_bits(pkey) < MIN_KEY_BITS) {
        snprintf(err, errlen, "%s: RSA key shorter than %d bits", what, MIN_KEY_BITS);
        return -1;
    }
    return 0;
}

static int load_public_key_file(struct postal_state *st, const char *path, char *err,
                                size_t errlen)
{
    size_t len;
    char *text = mh_read_key_file(path, &len, err, errlen);
    if (!text) return -1;
    EVP_PKEY *pkey = load_key_text(text, len);
    free(text);
    if (!pkey) {
        char why[256];
        openssl_reason(why, sizeof(why));
        snprintf(err, errlen, "%s: no RSA public key (PEM, PKCS#1 or base64 SPKI): %s", path, why);
        return -1;
    }
    if (check_key(pkey, path, err, errlen) < 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }
    add_key(st, pkey, NULL);
    return 0;
}

static BIGNUM *b64url_bn(const char *s)
{
    if (!s || !*s) return NULL;
    size_t len = strlen(s);
    unsigned char *bin = mh_malloc(len + 1);
    ssize_t n = mh_b64_decode(s, len, bin, len);
    BIGNUM *bn = n > 0 ? BN_bin2bn(bin, (int)n, NULL) : NULL;
    free(bin);
    return bn;
}

/* An RSA public key from a JWK's n and e; NULL when they do not make one. */
static EVP_PKEY *jwk_to_pkey(json_t *jwk)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *n = b64url_bn(mh_json_str(jwk, "n"));
    BIGNUM *e = b64url_bn(mh_json_str(jwk, "e"));
    if (!n || !e) goto done;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto done;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

/* 1 for a JWK that is an RSA signing key. */
static int jwk_usable(json_t *jwk)
{
    const char *kty = mh_json_str(jwk, "kty");
    const char *use = mh_json_str(jwk, "use");
    return kty && !strcmp(kty, "RSA") && (!use || !strcmp(use, "sig"));
}

static int load_jwks_file(struct postal_state *st, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    json_t *keys = json_object_get(root, "keys"), *jwk;
    size_t i, loaded = 0;
    int rc = 0;
    if (!json_is_array(keys)) keys = NULL;
    json_array_foreach(keys, i, jwk) {
        if (!jwk_usable(jwk)) continue;
        EVP_PKEY *pkey = jwk_to_pkey(jwk);
        char what[512];
        snprintf(what, sizeof(what), "%s: key %zu", path, i);
        if (!pkey || check_key(pkey, what, err, errlen) < 0) {
            if (!pkey) snprintf(err, errlen, "%s: key %zu: bad \"n\" or \"e\"", path, i);
            EVP_PKEY_free(pkey);
            rc = -1;
            break;
        }
        add_key(st, pkey, mh_json_str(jwk, "kid"));
        loaded++;
    }
    if (rc == 0 && loaded == 0) {
        snprintf(err, errlen, "%s: no RSA signing key in \"keys\"", path);
        rc = -1;
    }
    json_decref(root);
    return rc;
}

static void state_free(struct postal_state *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n_keys; i++) {
        EVP_PKEY_free(st->keys[i].pkey);
        free(st->keys[i].kid);
    }
    free(st->keys);
    free(st);
}

static int load_keys(struct mh_source *src, struct postal_state *st, char *err, size_t errlen)
{
    for (struct mh_kv *kv = src->options; kv; kv = kv->next) {
        int rc = 0;
        if (!strcmp(kv->key, "public_key_file")) rc = load_public_key_file(st, kv->value, err, errlen);
        else if (!strcmp(kv->key, "jwks_file")) rc = load_jwks_file(st, kv->value, err, errlen);
        if (rc < 0) {
            src->err_line = kv->line;
            return -1;
        }
    }
    if (st->n_keys == 0) {
        snprintf(err, errlen, "needs public_key_file or jwks_file");
        return -1;
    }
    return 0;
}

int mh_postal_init(const struct mh_postal_flavor *fl, struct mh_source *src, char *err,
                   size_t errlen)
{
    (void)fl; /* the flavors read the same options; their tables hold the defaults */
    struct postal_state *st = mh_calloc(1, sizeof(*st));
    st->tolerance_s = mh_source_opt_int(src, "timestamp_tolerance_s");
    st->allow_sha1 = mh_source_opt_bool(src, "allow_sha1");
    if (load_keys(src, st, err, errlen) < 0) {
        state_free(st);
        return -1;
    }
    src->state = st;
    return 0;
}

static int postal_init(struct mh_source *src, char *err, size_t errlen)
{
    return mh_postal_init(&postal_flavor, src, err, errlen);
}

void mh_postal_fini(struct mh_source *src)
{
    state_free(src->state);
    src->state = NULL;
}

/* ---- verify ---- */

static int rsa_verify(EVP_PKEY *pkey, const char *md, const unsigned char *body, size_t len,
                      const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) mh_oom();
    int ok = EVP_DigestVerifyInit_ex(ctx, NULL, md, NULL, NULL, pkey, NULL) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, len ? body : (const unsigned char *)"", len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* 1 when any eligible key verifies sig; *kid_known is 0 when the kid matched no key. */
static int any_key_verifies(const struct postal_state *st, const char *kid, const char *md,
                            const struct mh_request *req, const unsigned char *sig, size_t siglen,
                            int *kid_known)
{
    int ok = 0;
    *kid_known = 0;
    for (size_t i = 0; i < st->n_keys && !ok; i++) {
        const struct rsa_key *k = &st->keys[i];
        if (kid && *kid && k->kid && strcmp(k->kid, kid)) continue;
        *kid_known = 1;
        ok = rsa_verify(k->pkey, md, req->body, req->body_len, sig, siglen);
    }
    return ok;
}

/* The signature header to check and its digest, in order of preference; NULL when none. */
static const char *pick_signature(const struct mh_postal_flavor *fl,
                                  const struct postal_state *st, const struct mh_headers *h,
                                  const char **md, const char **kid)
{
    const char *v = mh_headers_get(h, fl->sig256);
    *md = "SHA256";
    *kid = mh_headers_get(h, fl->kid);
    if (v && *v) return v;
    /* Ark may also send Postal's headers; their key id goes with them. */
    if (!*kid) *kid = mh_headers_get(h, POSTAL_KID);
    v = fl->ark ? mh_headers_get(h, POSTAL_SIG256) : NULL;
    if (v && *v) return v;
    *md = "SHA1";
    v = st->allow_sha1 ? mh_headers_get(h, POSTAL_SIG1) : NULL;
    return v && *v ? v : NULL;
}

/* Unix milliseconds from a JSON number or numeric string of seconds; -1 when neither. */
static int json_unix_ms(json_t *v, int64_t *ms)
{
    if (json_is_string(v)) return mh_time_parse(json_string_value(v), ms);
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    if (!(d > 0 && d < 253402300800.0)) return -1; /* before 9999-12-31 */
    *ms = (int64_t)(d * 1000.0 + 0.5);
    return 0;
}

static enum mh_verdict check_timestamp(const struct postal_state *st, const struct mh_request *req,
                                       char *err, size_t errlen)
{
    int64_t ts;
    if (st->tolerance_s <= 0) return MH_VERIFY_OK;
    json_t *root = json_loadb((const char *)req->body, req->body_len, 0, NULL);
    int rc = json_unix_ms(json_object_get(root, "timestamp"), &ts);
    json_decref(root);
    if (rc < 0) {
        snprintf(err, errlen, "body has no usable \"timestamp\" for the freshness check");
        return MH_VERIFY_REJECT;
    }
    if (!mh_verify_timestamp(ts, req->now_ms, st->tolerance_s)) {
        snprintf(err, errlen, "timestamp outside the tolerance of %ld s", st->tolerance_s);
        return MH_VERIFY_REJECT;
    }
    return MH_VERIFY_OK;
}

enum mh_verdict mh_postal_verify(const struct mh_postal_flavor *fl, const struct mh_source *src,
                                 const struct mh_request *req, char *err, size_t errlen)
{
    const struct postal_state *st = src->state;
    const char *md, *kid;
    const char *b64 = pick_signature(fl, st, req->headers, &md, &kid);
    if (!b64) {
        snprintf(err, errlen, "signature header \"%s\" missing%s", fl->sig256,
                 st->allow_sha1 ? " (and no \"" POSTAL_SIG1 "\" either)" : "");
        return MH_VERIFY_REJECT;
    }
    unsigned char sig[MAX_SIG_BYTES];
    ssize_t siglen = mh_b64_decode(b64, strlen(b64), sig, sizeof(sig));
    if (siglen <= 0) {
        snprintf(err, errlen, "signature is not base64");
        return MH_VERIFY_REJECT;
    }
    int kid_known;
    if (!any_key_verifies(st, kid, md, req, sig, (size_t)siglen, &kid_known)) {
        if (!kid_known) snprintf(err, errlen, "no configured key has the request's key id");
        else snprintf(err, errlen, "RSA-%s signature does not match any configured key", md);
        return MH_VERIFY_REJECT;
    }
    return check_timestamp(st, req, err, errlen);
}

static enum mh_verdict postal_verify(const struct mh_source *src, const struct mh_request *req,
                                     char *err, size_t errlen)
{
    return mh_postal_verify(&postal_flavor, src, req, err, errlen);
}

/* ---- sign (for `mailhook sign`) ---- */

static EVP_PKEY *load_private_key(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = mh_read_key_file(path, &len, err, errlen);
    if (!text) return NULL;
    EVP_PKEY *pkey = NULL;
    const unsigned char *data = (const unsigned char *)text;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, NULL, NULL, "RSA",
                                                           OSSL_KEYMGMT_SELECT_KEYPAIR, NULL, NULL);
    if (!dctx || OSSL_DECODER_from_data(dctx, &data, &len) != 1) pkey = NULL;
    OSSL_DECODER_CTX_free(dctx);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (!pkey) {
        char why[256];
        openssl_reason(why, sizeof(why));
        snprintf(err, errlen, "%s: no RSA private key: %s", path, why);
    }
    return pkey;
}

/* Base64 RSA signature of the body into out (at least 4*MAX_SIG_BYTES/3+4 bytes). */
static int rsa_sign_b64(EVP_PKEY *pkey, const char *md, const struct mh_sign_req *sr, char *out)
{
    unsigned char sig[MAX_SIG_BYTES];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) mh_oom();
    int ok = EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, pkey, NULL) == 1 &&
             EVP_DigestSign(ctx, sig, &siglen, sr->body_len ? sr->body : (const unsigned char *)"",
                            sr->body_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    if (ok) mh_b64_encode(sig, siglen, out);
    return ok ? 0 : -1;
}

/* The configured key that pkey's public half equals, or NULL. */
static const struct rsa_key *matching_key(const struct postal_state *st, EVP_PKEY *pkey)
{
    for (size_t i = 0; i < st->n_keys; i++)
        if (EVP_PKEY_eq(st->keys[i].pkey, pkey) == 1) return &st->keys[i];
    return NULL;
}

/*
 * The headers Postal (or Ark) would send for the body, signed with the private key named
 * by --key, which must belong to one of the source's public keys (so the request
 * verifies). Postal gets both signatures, Ark its own header; both the key id when the
 * key came from a JWKS. A JSON object body whose envelope `timestamp` (signed with the
 * body) the source's freshness check would refuse is sent as the provider would send it
 * now: the timestamp is set to now. A fresh body, or a source that checks no
 * freshness, is signed byte for byte.
 */
int mh_postal_sign(const struct mh_postal_flavor *fl, const struct mh_source *src,
                   struct mh_sign_req *sr, char *err, size_t errlen)
{
    char sig[4 * MAX_SIG_BYTES / 3 + 8];
    if (!sr->private_key_file) {
        snprintf(err, errlen, "%s signs with a private key: give it with --key", fl->name);
        return -1;
    }
    const struct postal_state *st = src->state;
    json_t *root = json_loadb((const char *)sr->body, sr->body_len, JSON_REJECT_DUPLICATES, NULL);
    int64_t ts;
    if (json_is_object(root) && st->tolerance_s > 0 &&
        (json_unix_ms(json_object_get(root, "timestamp"), &ts) < 0 ||
         !mh_verify_timestamp(ts, sr->now_ms, st->tolerance_s))) {
        /* Replacing the member keeps its place; the rest is re-serialized, not changed. */
        json_object_set_new(root, "timestamp", json_real((double)sr->now_ms / 1000.0));
        char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text) mh_oom();
        sr->new_body = (unsigned char *)text;
        sr->new_body_len = strlen(text);
        sr->body = sr->new_body;
        sr->body_len = sr->new_body_len;
    }
    json_decref(root);
    EVP_PKEY *pkey = load_private_key(sr->private_key_file, err, errlen);
    if (!pkey) return -1;
    const struct rsa_key *k = matching_key(src->state, pkey);
    int rc = -1;
    if (!k) {
        snprintf(err, errlen, "%s: not the private half of any key of the source",
                 sr->private_key_file);
    } else if (rsa_sign_b64(pkey, "SHA256", sr, sig) < 0) {
        snprintf(err, errlen, "RSA-SHA256 signing failed");
    } else {
        mh_headers_add(sr->headers, fl->ark ? "X-Ark-Signature" : "X-Postal-Signature-256", sig);
        if (k->kid)
            mh_headers_add(sr->headers, fl->ark ? "X-Ark-Signature-KID" : "X-Postal-Signature-KID",
                           k->kid);
        rc = 0;
        if (!fl->ark && rsa_sign_b64(pkey, "SHA1", sr, sig) == 0)
            mh_headers_add(sr->headers, "X-Postal-Signature", sig);
    }
    EVP_PKEY_free(pkey);
    return rc;
}

static int postal_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                       size_t errlen)
{
    return mh_postal_sign(&postal_flavor, src, sr, err, errlen);
}

/* ---- parse ---- */

struct event_map {
    const char *event;
    const char *type;
    const char *status;       /* payload.status that names this event, if any */
    const char *bounce_class; /* when the SMTP output carries no code */
};

static const struct event_map event_maps[] = {
    {"MessageSent", "email.delivered", "Sent", NULL},
    {"MessageDelayed", "email.delivery_delayed", "SoftFail", "soft"},
    {"MessageDeliveryFailed", "email.bounced", "HardFail", "hard"},
    {"MessageHeld", "email.held", "Held", NULL},
    {"MessageBounced", "email.bounced", NULL, "hard"},
    {"MessageLoaded", "email.opened", NULL, NULL},
    {"MessageLinkClicked", "email.clicked", NULL, NULL},
    {"DomainDNSError", "domain.dns_error", NULL, NULL},
    {"SendLimitApproaching", "account.send_limit", NULL, NULL},
    {"SendLimitExceeded", "account.send_limit", NULL, NULL},
    {"SendLimit", "account.send_limit", NULL, NULL},
    {NULL, NULL, NULL, NULL},
};

static const struct event_map *map_event(const char *event)
{
    for (const struct event_map *m = event_maps; m->event; m++)
        if (!strcmp(m->event, event)) return m;
    return NULL;
}

/* The event name when the envelope has none: from status, else from the payload's shape. */
static const char *infer_event(json_t *payload)
{
    const char *status = mh_json_str(payload, "status");
    for (const struct event_map *m = event_maps; status && m->event; m++)
        if (m->status && !strcmp(m->status, status)) return m->event;
    if (json_is_object(json_object_get(payload, "original_message"))) return "MessageBounced";
    if (mh_json_str(payload, "url")) return "MessageLinkClicked";
    if (json_is_object(json_object_get(payload, "message")) &&
        (json_object_get(payload, "ip_address") || json_object_get(payload, "user_agent")))
        return "MessageLoaded";
    if (json_object_get(payload, "volume") && json_object_get(payload, "limit")) return "SendLimit";
    if (json_object_get(payload, "dns_checked_at") || json_object_get(payload, "spf_status"))
        return "DomainDNSError";
    return NULL;
}

static void set_time_json(json_t *obj, const char *key, json_t *v)
{
    int64_t ms;
    if (json_unix_ms(v, &ms) == 0) mh_event_set_time_ms(obj, key, ms);
}

static void set_message(json_t *ev, json_t *msg)
{
    json_int_t id;
    const char *mid = mh_json_str(msg, "message_id");
    if (!mid || !*mid) mid = mh_json_str(msg, "token");
    if (mid && *mid) {
        mh_event_set_str(ev, "message_id", mid);
    } else if (mh_json_int(msg, "id", &id) == 0) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld", (long long)id);
        mh_event_set_str(ev, "message_id", buf);
    }
    mh_event_set_address(ev, "recipient", mh_json_str(msg, "to"));
    mh_event_set_str(ev, "sender", mh_json_str(msg, "from"));
    mh_event_set_str(ev, "subject", mh_json_str(msg, "subject"));
    const char *tag = mh_json_str(msg, "tag");
    if (tag && *tag) json_object_set_new(ev, "tags", json_pack("[s]", tag));
}

/* Ark's numeric classification codes, used when the name is missing. */
static const char *ark_code_category(json_int_t code)
{
    static const struct {
        int code;
        const char *category;
    } codes[] = {
        {10, "invalid_recipient"}, {11, "inactive_mailbox"}, {12, "mailbox_full"},
        {20, "invalid_domain"},    {21, "dns_failure"},      {22, "routing_error"},
        {30, "spam_block"},        {31, "spam_content"},     {32, "policy_rejection"},
        {40, "connection_error"},  {41, "protocol_error"},   {42, "transient_failure"},
        {99, "unclassified"},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].code == code) return codes[i].category;
    return NULL;
}

/*
 * bounce from a status or bounce payload: the SMTP output is the diagnostic (Postal's
 * human summary `details` when there is no output). The class follows docs/bounces.md:
 * the codes (smtp_enhanced_code, those in output/details), then Ark's classification
 * (connection_error, dns_failure, transient_failure are temporary), then the event's
 * name (SoftFail soft, HardFail and MessageBounced hard).
 */
static void add_status_bounce(json_t *ev, json_t *payload, const struct event_map *m)
{
    json_t *b = mh_event_sub(ev, "bounce");
    json_int_t code;
    const char *diag = mh_json_str(payload, "output");
    if (!diag || !*diag) diag = mh_json_str(payload, "details");
    mh_event_set_str(b, "diagnostic", diag);
    mh_event_set_str(b, "remote_host", mh_json_str(payload, "remote_host"));
    mh_event_set_str(b, "enhanced_code", mh_json_str(payload, "smtp_enhanced_code"));
    const char *cat = mh_json_str(payload, "classification");
    if (!mh_bounce_category_known(cat) && mh_json_int(payload, "classification_code", &code) == 0)
        cat = ark_code_category(code);
    if (mh_bounce_category_known(cat)) mh_event_set_str(b, "category", cat);
    mh_bounce_classify_as(b, m->bounce_class);
    /* Ark's own classification, as sent: its name and its numeric code. */
    char num[32] = "";
    if (mh_json_int(payload, "classification_code", &code) == 0)
        snprintf(num, sizeof(num), "%lld", (long long)code);
    mh_bounce_set_provider_kind(b, mh_json_str(payload, "classification"), num);
}

/*
 * MessageBounced: payload.bounce is the bounce message Postal received (a message object
 * like original_message). Its id, Message-ID and subject are what the event can say of
 * the bounce; they are kept as metadata.bounce_message.
 */
static void add_bounce_message(json_t *ev, json_t *payload)
{
    json_t *bm = json_object_get(payload, "bounce");
    if (!json_is_object(bm)) return;
    json_t *o = json_object();
    static const char *const keys[] = {"id", "message_id", "subject", NULL};
    for (const char *const *k = keys; *k; k++) {
        json_t *v = json_object_get(bm, *k);
        if ((json_is_string(v) && *json_string_value(v)) || json_is_integer(v))
            json_object_set(o, *k, v);
    }
    mh_event_meta_replace(ev, "bounce_message", json_object_size(o) ? o : NULL);
    json_decref(o);
}

/* Copies the text between the first "(" after p and its ")" when it holds no blank. */
static void in_parens(const char *p, char *out, size_t outlen)
{
    const char *open = strchr(p, '('), *close = open ? strchr(open, ')') : NULL;
    if (open && close && close > open + 1 && (size_t)(close - open - 1) < outlen &&
        !memchr(open + 1, ' ', (size_t)(close - open - 1)))
        snprintf(out, outlen, "%.*s", (int)(close - open - 1), open + 1);
}

/*
 * The receiving server in Postal's summary: "Message sent by SMTP to mx.example.com
 * (1.2.3.4) (from ...)", "... error when sending to mx.example.com" (Postal), "... accepted by 1.2.3.4:25 (mx.example.com)" or
 * "... failed at 1.2.3.4:25 (mx.example.com)" (Ark). Copies the address and host found.
 */
static void summary_host(const char *details, char *ip, size_t iplen, char *host, size_t hostlen)
{
    ip[0] = host[0] = '\0';
    static const char *const to_needles[] = {" by SMTP to ", " when sending to ", NULL};
    const char *to = NULL;
    for (const char *const *t = to_needles; details && *t && !to; t++)
        if ((to = strstr(details, *t))) to += strlen(*t);
    if (to) {
        size_t n = strcspn(to, " ");
        if (n && n < hostlen) snprintf(host, hostlen, "%.*s", (int)n, to);
        in_parens(to + n, ip, iplen);
        return;
    }
    const char *at = details ? strstr(details, " accepted by ") : NULL;
    if (at) at += strlen(" accepted by ");
    else if (details && (at = strstr(details, " failed at "))) at += strlen(" failed at ");
    if (!at) return;
    size_t n = strcspn(at, ": ");
    if (n && n < iplen && at[n] == ':') snprintf(ip, iplen, "%.*s", (int)n, at);
    in_parens(at, host, hostlen);
}

/*
 * delivery from a status payload: output (the SMTP reply), sent_with_ssl, time (seconds
 * the delivery took), Ark's remote_host, else the host and address in details.
 */
static void add_delivery(json_t *ev, json_t *payload)
{
    struct mh_delivery d = MH_DELIVERY_INIT;
    char ip[64], host[256];
    summary_host(mh_json_str(payload, "details"), ip, sizeof(ip), host, sizeof(host));
    d.remote_host = mh_json_str(payload, "remote_host");
    if (!d.remote_host || !*d.remote_host) d.remote_host = host;
    d.remote_ip = ip;
    d.smtp_response = mh_json_str(payload, "output");
    json_t *ssl = json_object_get(payload, "sent_with_ssl");
    if (json_is_boolean(ssl)) d.tls = json_is_true(ssl);
    json_t *t = json_object_get(payload, "time");
    if (json_is_number(t) && json_number_value(t) >= 0 && json_number_value(t) < 1e9)
        d.duration_ms = (int64_t)(json_number_value(t) * 1000.0 + 0.5);
    mh_event_set_delivery(ev, &d);
}

static void add_engagement(json_t *ev, json_t *payload, const char *sub_key)
{
    json_t *sub = mh_event_sub(ev, sub_key);
    if (!strcmp(sub_key, "click")) {
        mh_event_set_str(sub, "url", mh_json_str(payload, "url"));
        /* The link's token: Postal's id of the tracked link (the same for every click). */
        mh_event_set_str(sub, "token", mh_json_str(payload, "token"));
    }
    mh_event_set_str(sub, "user_agent", mh_json_str(payload, "user_agent"));
    mh_event_set_str(sub, "ip", mh_json_str(payload, "ip_address"));
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

static void add_domain_check(json_t *ev, json_t *payload)
{
    static const char *const keys[] = {
        "domain",      "spf_status", "spf_error",          "dkim_status",       "dkim_error",
        "mx_status",   "mx_error",   "return_path_status", "return_path_error", NULL,
    };
    for (const char *const *k = keys; *k; k++) mh_event_meta_replace(ev, *k, json_object_get(payload, *k));
    mh_event_meta_replace(ev, "domain_uuid", json_object_get(payload, "uuid"));
    mh_event_meta_replace(ev, "server", json_object_get(payload, "server"));
    set_time_json(ev, "occurred_at", json_object_get(payload, "dns_checked_at"));
}

static void meta_int(json_t *ev, const char *key, json_t *payload)
{
    json_int_t n;
    if (mh_json_int(payload, key, &n) == 0)
        json_object_set_new(mh_event_sub(ev, "metadata"), key, json_integer(n));
}

static void add_send_limit(json_t *ev, json_t *payload)
{
    meta_int(ev, "volume", payload);
    meta_int(ev, "limit", payload);
    mh_event_meta_replace(ev, "server", json_object_get(payload, "server"));
}

/* The message a payload is about (the original one for MessageBounced). */
static json_t *payload_message(json_t *payload)
{
    json_t *msg = json_object_get(payload, "original_message");
    if (!json_is_object(msg)) msg = json_object_get(payload, "message");
    return json_is_object(msg) ? msg : NULL;
}

static const char *type_for(const struct event_map *m, json_t *msg)
{
    const char *direction = mh_json_str(msg, "direction");
    if (!m) return "other";
    if (msg && direction && !strcmp(direction, "incoming")) return "other";
    return m->type;
}

/* When it happened: the attempt's time, the bounce's arrival, else the envelope's time. */
static void set_occurred(json_t *ev, json_t *root, json_t *payload)
{
    set_time_json(ev, "occurred_at", json_object_get(payload, "timestamp"));
    if (!json_object_get(ev, "occurred_at"))
        set_time_json(ev, "occurred_at", json_object_get(json_object_get(payload, "bounce"), "timestamp"));
    if (!json_object_get(ev, "occurred_at"))
        set_time_json(ev, "occurred_at", json_object_get(root, "timestamp"));
}

static void add_type_fields(json_t *ev, const char *type, json_t *payload,
                            const struct event_map *m)
{
    if (!strcmp(type, "email.delivery_delayed")) {
        add_status_bounce(ev, payload, m);
        const char *reason = mh_json_str(payload, "details");
        if (reason && *reason) mh_event_set_str(mh_event_sub(ev, "delay"), "reason", reason);
    } else if (!strcmp(type, "email.bounced")) {
        add_status_bounce(ev, payload, m);
        add_bounce_message(ev, payload);
    } else if (!strcmp(type, "email.held")) {
        /* Why Postal holds it (e.g. "Credential is configured to hold all messages"). */
        mh_event_meta_replace(ev, "hold_reason", json_object_get(payload, "details"));
    } else if (!strcmp(type, "email.opened")) {
        add_engagement(ev, payload, "open");
    } else if (!strcmp(type, "email.clicked")) {
        add_engagement(ev, payload, "click");
    } else if (!strcmp(type, "domain.dns_error")) {
        add_domain_check(ev, payload);
    } else if (!strcmp(type, "account.send_limit")) {
        add_send_limit(ev, payload);
    }
}

/* Without the envelope uuid: what else tells this event from another of the message. */
static char *derived_extra(json_t *root, json_t *payload, json_t *msg)
{
    json_t *parts = json_array();
    json_array_append(parts, json_object_get(root, "tenant_id"));
    json_array_append(parts, json_object_get(msg, "token"));
    json_array_append(parts, json_object_get(msg, "id"));
    json_array_append(parts, json_object_get(payload, "url"));
    json_array_append(parts, json_object_get(payload, "uuid"));
    char *s = json_dumps(parts, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(parts);
    return s;
}

int mh_postal_parse(const struct mh_postal_flavor *fl, const struct mh_raw *raw, json_t *events,
                    char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)raw->body, raw->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: invalid JSON at line %d column %d: %s", fl->name, jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    json_t *payload = json_object_get(root, "payload");
    if (!json_is_object(payload)) {
        snprintf(err, errlen, "%s: body has no \"payload\" object", fl->name);
        json_decref(root);
        return -1;
    }
    const char *name = mh_json_str(root, "event");
    if (!name || !*name) name = infer_event(payload);
    if (!name) {
        snprintf(err, errlen, "%s: no \"event\", and the payload does not tell which", fl->name);
        json_decref(root);
        return -1;
    }
    const struct event_map *m = map_event(name);
    json_t *msg = payload_message(payload);
    const char *type = type_for(m, msg);

    json_t *ev = mh_event_new(raw, type, name);
    if (msg) set_message(ev, msg);
    set_occurred(ev, root, payload);
    if (fl->ark) mh_event_meta_replace(ev, "tenant_id", json_object_get(root, "tenant_id"));
    if (m && strcmp(type, "other")) add_type_fields(ev, type, payload, m);
    if (m && m->status && strcmp(type, "other")) add_delivery(ev, payload);

    const char *uuid = mh_json_str(root, "uuid");
    char *extra = uuid && *uuid ? NULL : derived_extra(root, payload, msg);
    mh_event_finish(ev, uuid, extra);
    free(extra);
    json_array_append_new(events, ev);
    json_decref(root);
    return 0;
}

static int postal_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_postal_parse(&postal_flavor, raw, events, err, errlen);
}

const struct mh_provider mh_provider_postal = {
    .name = "postal",
    .options = postal_options,
    .forward_headers = postal_forward,
    .needs_secret = 0,
    .init = postal_init,
    .fini = mh_postal_fini,
    .verify = postal_verify,
    .parse = postal_parse,
    .sign = postal_sign,
};
