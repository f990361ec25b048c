/*
 * stdwh.c — Standard Webhooks v1: headers, keys, signing, verifying, whole sources and
 * event ids (see stdwh.h).
 */
#include "mailhook/stdwh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mailhook/config.h"
#include "mailhook/crypto.h"
#include "mailhook/event.h"
#include "mailhook/headers.h"
#include "mailhook/log.h"
#include "mailhook/provider_options.h"
#include "mailhook/verify.h"

#define STDWH_PREFIX "whsec_"

static int present(const char *s)
{
    return s && *s;
}

int mh_stdwh_headers(const struct mh_headers *h, struct mh_stdwh_headers *out)
{
    static const char *const families[2][3] = {
        {"svix-id", "svix-timestamp", "svix-signature"},
        {"webhook-id", "webhook-timestamp", "webhook-signature"},
    };
    for (int f = 0; f < 2; f++) {
        struct mh_stdwh_headers t = {mh_headers_get(h, families[f][0]),
                                     mh_headers_get(h, families[f][1]),
                                     mh_headers_get(h, families[f][2])};
        if (present(t.id) && present(t.timestamp) && present(t.signature)) {
            *out = t;
            return 0;
        }
    }
    /* Neither family complete: report what there is, svix-* first. */
    for (int i = 0; i < 3; i++) {
        const char *v = mh_headers_get(h, families[0][i]);
        if (!present(v)) v = mh_headers_get(h, families[1][i]);
        if (i == 0) out->id = v;
        else if (i == 1) out->timestamp = v;
        else out->signature = v;
    }
    return -1;
}

ssize_t mh_stdwh_key(const char *secret, unsigned char *key, size_t cap)
{
    if (!secret) return -1;
    if (!strncmp(secret, STDWH_PREFIX, strlen(STDWH_PREFIX))) secret += strlen(STDWH_PREFIX);
    size_t len = strlen(secret);
    if (len == 0) return -1;
    return mh_b64_decode(secret, len, key, cap);
}

int mh_stdwh_check_secrets(const struct mh_source *src, char *err, size_t errlen)
{
    unsigned char key[MH_STDWH_MAX_KEY];
    for (size_t i = 0; i < src->n_secrets; i++) {
        ssize_t n = mh_stdwh_key(src->secrets[i], key, sizeof(key));
        OPENSSL_cleanse(key, sizeof(key));
        if (n <= 0) {
            snprintf(err, errlen,
                     "secret #%zu: not a signing secret (\"whsec_\" followed by base64, at "
                     "most %d bytes decoded)",
                     i + 1, MH_STDWH_MAX_KEY);
            return -1;
        }
    }
    return 0;
}

/* HMAC-SHA256 of id "." ts "." body with key into mac; its length or -1. */
static int stdwh_mac(const unsigned char *key, size_t keylen, const char *id, const char *ts,
                     const unsigned char *body, size_t len, unsigned char *mac)
{
    struct mh_buf parts[] = {
        {id, strlen(id)}, {".", 1}, {ts, strlen(ts)}, {".", 1}, {body, len},
    };
    return mh_hmac("sha256", key, keylen, parts, 5, mac);
}

/*
 * 1 when one "v1," entry of the signature header equals one of the nmacs MACs (32 bytes
 * each). Every entry is compared with every MAC: no early exit.
 */
static int stdwh_match(const char *header, const unsigned char (*macs)[MH_MAX_MD], size_t nmacs)
{
    int ok = 0;
    const char *p = header;
    while (*p) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, " ");
        const char *comma = memchr(p, ',', n);
        /* Only version v1 (symmetric HMAC-SHA256); v1a, v2, ... are someone else's. */
        if (comma && comma - p == 2 && !strncmp(p, "v1", 2)) {
            unsigned char want[MH_MAX_MD];
            ssize_t wlen = mh_b64_decode(comma + 1, n - 3, want, sizeof(want));
            for (size_t i = 0; wlen == 32 && i < nmacs; i++)
                ok |= mh_ct_equal(macs[i], 32, want, 32);
        }
        p += n;
    }
    return ok;
}

enum mh_verdict mh_stdwh_verify(const struct mh_source *src, const struct mh_headers *h,
                                const unsigned char *body, size_t len, int64_t now_ms,
                                long tolerance_s, char *err, size_t errlen)
{
    struct mh_stdwh_headers t;
    if (mh_stdwh_headers(h, &t) < 0) {
        snprintf(err, errlen, "header \"%s\" missing (svix-* or webhook-*)",
                 !present(t.id) ? "webhook-id" : !present(t.timestamp) ? "webhook-timestamp"
                                                                       : "webhook-signature");
        return MH_VERIFY_REJECT;
    }
    /* The spec keeps '.' out of ids: it separates the signed parts. */
    if (strchr(t.id, '.')) {
        snprintf(err, errlen, "message id contains '.'");
        return MH_VERIFY_REJECT;
    }
    int64_t ts_s;
    if (mh_unix_seconds(t.timestamp, &ts_s) < 0) {
        snprintf(err, errlen, "timestamp header is not Unix seconds");
        return MH_VERIFY_REJECT;
    }
    if (!mh_verify_timestamp(ts_s * 1000, now_ms, tolerance_s)) {
        snprintf(err, errlen, "timestamp outside the tolerance of %ld s", tolerance_s);
        return MH_VERIFY_REJECT;
    }
    if (src->n_secrets == 0) {
        snprintf(err, errlen, "source has no secret");
        return MH_VERIFY_REJECT;
    }
    unsigned char(*macs)[MH_MAX_MD] = mh_calloc(src->n_secrets, sizeof(*macs));
    size_t nmacs = 0;
    for (size_t i = 0; i < src->n_secrets; i++) {
        unsigned char key[MH_STDWH_MAX_KEY];
        ssize_t klen = mh_stdwh_key(src->secrets[i], key, sizeof(key));
        if (klen > 0 && stdwh_mac(key, (size_t)klen, t.id, t.timestamp, body, len, macs[nmacs]) == 32)
            nmacs++;
        OPENSSL_cleanse(key, sizeof(key));
    }
    int ok = nmacs > 0 && stdwh_match(t.signature, (const unsigned char(*)[MH_MAX_MD])macs, nmacs);
    OPENSSL_cleanse(macs, src->n_secrets * sizeof(*macs));
    free(macs);
    if (!ok) {
        snprintf(err, errlen, "no v1 signature matches any active secret");
        return MH_VERIFY_REJECT;
    }
    return MH_VERIFY_OK;
}

int mh_stdwh_sign(const struct mh_source *src, const char *id, const char *timestamp,
                  const unsigned char *body, size_t len, char *out)
{
    unsigned char key[MH_STDWH_MAX_KEY], mac[MH_MAX_MD];
    if (src->n_secrets == 0) return -1;
    ssize_t klen = mh_stdwh_key(src->secrets[0], key, sizeof(key));
    int n = klen > 0 ? stdwh_mac(key, (size_t)klen, id, timestamp, body, len, mac) : -1;
    OPENSSL_cleanse(key, sizeof(key));
    if (n != 32) return -1;
    memcpy(out, "v1,", 3);
    out[3 + mh_b64_encode(mac, 32, out + 3)] = '\0';
    return 0;
}

/* ---- a whole Standard Webhooks source ---- */

#define STDWH_SIGN_ID_HEX 27 /* as long as a Svix message id's random part */

/* 300 s: the window of the reference libraries (standard-webhooks, svix). */
const struct mh_option_def mh_stdwh_options[] = {
    MH_OPT_TIMESTAMP_TOLERANCE("300"),
    {0},
};

int mh_stdwh_source_init(struct mh_source *src, char *err, size_t errlen)
{
    return mh_stdwh_check_secrets(src, err, errlen);
}

enum mh_verdict mh_stdwh_source_verify(const struct mh_source *src, const struct mh_request *req,
                                       char *err, size_t errlen)
{
    return mh_stdwh_verify(src, req->headers, req->body, req->body_len, req->now_ms,
                           mh_source_opt_int(src, "timestamp_tolerance_s"), err, errlen);
}

int mh_stdwh_source_sign(const struct mh_source *src, struct mh_sign_req *sr,
                         const char *prefix, char *err, size_t errlen)
{
    char hex[65], id[4 + STDWH_SIGN_ID_HEX + 1], ts[32], sig[MH_STDWH_SIG_BUFSZ], name[32];
    struct mh_buf body = {sr->body, sr->body_len};
    mh_sha256_hex(&body, 1, hex);
    snprintf(id, sizeof(id), "msg_%.*s", STDWH_SIGN_ID_HEX, hex);
    snprintf(ts, sizeof(ts), "%lld", (long long)(sr->now_ms / 1000));
    if (mh_stdwh_sign(src, id, ts, sr->body, sr->body_len, sig) < 0) {
        snprintf(err, errlen, "source has no signing secret");
        return -1;
    }
    snprintf(name, sizeof(name), "%s-id", prefix);
    mh_headers_add(sr->headers, name, id);
    snprintf(name, sizeof(name), "%s-timestamp", prefix);
    mh_headers_add(sr->headers, name, ts);
    snprintf(name, sizeof(name), "%s-signature", prefix);
    mh_headers_add(sr->headers, name, sig);
    return 0;
}

void mh_stdwh_event_finish(json_t *ev, const struct mh_raw *raw, const char *when,
                           const char *link)
{
    struct mh_stdwh_headers t = {0};
    if (raw->headers) mh_stdwh_headers(raw->headers, &t);
    size_t len = 8 + (when ? strlen(when) : 0) + (link ? strlen(link) : 0);
    char *extra = mh_malloc(len);
    snprintf(extra, len, "%s\n%s", when ? when : "", link ? link : "");
    mh_event_finish(ev, t.id, extra);
    free(extra);
}
