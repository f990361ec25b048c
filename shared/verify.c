/*
 * verify.c — shared pieces of signature verification (see verify.h).
 */
#include "mailhook/verify.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "mailhook/config.h"
#include "mailhook/event.h"
#include "mailhook/headers.h"
#include "mailhook/log.h"

#define MAX_TS_DIGITS 12 /* Unix seconds: ample until the year 33658 */

/* The signature text decoded into want (MH_MAX_MD bytes): its length, or <= 0 when it is
 * absent, not of the encoding, or longer than any MAC. */
static ssize_t decode_sig(const char *sig, enum mh_sig_encoding enc, unsigned char *want)
{
    if (!sig) return -1;
    size_t siglen = strlen(sig);
    if (enc == MH_SIG_HEX) return mh_hex_decode(sig, siglen, want, MH_MAX_MD);
    return mh_b64_decode(sig, siglen, want, MH_MAX_MD);
}

int mh_verify_hmac_any(const struct mh_source *src, const char *md, const struct mh_buf *parts,
                       size_t nparts, const char *sig, enum mh_sig_encoding enc)
{
    unsigned char want[MH_MAX_MD], mac[MH_MAX_MD];
    int ok = 0;

    ssize_t wantlen = decode_sig(sig, enc, want);
    if (wantlen <= 0) return 0;

    /* No early exit: the time taken does not tell which secret matched. */
    for (size_t i = 0; i < src->n_secrets; i++) {
        int n = mh_hmac(md, src->secrets[i], strlen(src->secrets[i]), parts, nparts, mac);
        if (n > 0 && mh_ct_equal(mac, (size_t)n, want, (size_t)wantlen)) ok = 1;
    }
    return ok;
}

int mh_verify_hmac_key(const void *key, size_t keylen, const char *md,
                       const struct mh_buf *parts, size_t nparts, const char *sig,
                       enum mh_sig_encoding enc)
{
    unsigned char want[MH_MAX_MD], mac[MH_MAX_MD];
    ssize_t wantlen = decode_sig(sig, enc, want);
    if (wantlen <= 0) return 0;
    int n = mh_hmac(md, key, keylen, parts, nparts, mac);
    return n > 0 && mh_ct_equal(mac, (size_t)n, want, (size_t)wantlen);
}

int mh_sign_hmac(const struct mh_source *src, const char *md, const struct mh_buf *parts,
                 size_t nparts, enum mh_sig_encoding enc, char *out)
{
    unsigned char mac[MH_MAX_MD];
    if (src->n_secrets == 0) return -1;
    int n = mh_hmac(md, src->secrets[0], strlen(src->secrets[0]), parts, nparts, mac);
    if (n <= 0) return -1;
    if (enc == MH_SIG_HEX) mh_hex_encode(mac, (size_t)n, out);
    else out[mh_b64_encode(mac, (size_t)n, out)] = '\0';
    return 0;
}

int mh_ct_str_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    char da[65], db[65];
    struct mh_buf pa = {a, alen}, pb = {b, blen};
    mh_sha256_hex(&pa, 1, da);
    mh_sha256_hex(&pb, 1, db);
    return mh_ct_equal(da, 64, db, 64);
}

int mh_verify_secret_any(const struct mh_source *src, const char *s, size_t len)
{
    int ok = 0;
    for (size_t i = 0; i < src->n_secrets; i++)
        ok |= mh_ct_str_equal(src->secrets[i], strlen(src->secrets[i]), s, len);
    return ok;
}

int mh_verify_basic(const struct mh_source *src, const char *authorization, const char *user,
                    int *ok)
{
    *ok = 0;
    if (!authorization || strncasecmp(authorization, "Basic ", 6)) return 0;
    size_t len = strlen(authorization + 6);
    unsigned char *creds = mh_malloc(len + 1);
    ssize_t n = mh_b64_decode(authorization + 6, len, creds, len);
    if (n > 0 && user) {
        const char *colon = memchr(creds, ':', (size_t)n);
        if (colon) {
            size_t ulen = (size_t)(colon - (const char *)creds);
            int user_ok = mh_ct_str_equal(user, strlen(user), (const char *)creds, ulen);
            int pass_ok = mh_verify_secret_any(src, colon + 1, (size_t)n - ulen - 1);
            *ok = user_ok & pass_ok;
        }
    }
    if (n > 0) memset(creds, 0, (size_t)n);
    free(creds);
    return 1;
}

int mh_sign_basic(const struct mh_source *src, const char *user, struct mh_headers *h)
{
    if (src->n_secrets == 0 || !user) return -1;
    size_t len = strlen(user) + 1 + strlen(src->secrets[0]);
    char *creds = mh_malloc(len + 1), *value = mh_malloc(4 * (len + 2) / 3 + 16);
    snprintf(creds, len + 1, "%s:%s", user, src->secrets[0]);
    memcpy(value, "Basic ", 6);
    mh_b64_encode((const unsigned char *)creds, len, value + 6);
    mh_headers_add(h, "Authorization", value);
    memset(creds, 0, len);
    memset(value, 0, strlen(value));
    free(creds);
    free(value);
    return 0;
}

/* ---- credentials of providers that sign nothing: basic_user, bearer and/or header ---- */

/* 1 when s is an HTTP header name (an RFC 9110 token). */
static int is_header_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return 0;
    return 1;
}

/* The bearer option: 1 / 0, or -1 when it is not "true" or "false". Providers that do not
 * list "bearer" among their option keys never have it set. */
static int bearer_opt(const struct mh_source *src)
{
    const char *v = mh_source_opt(src, "bearer");
    if (!v || !strcmp(v, "false")) return 0;
    return !strcmp(v, "true") ? 1 : -1;
}

/* 1 when the source's provider lists key among its options. */
static int provider_takes(const struct mh_source *src, const char *key)
{
    for (const char *const *k = src->provider->option_keys; k && *k; k++)
        if (!strcmp(*k, key)) return 1;
    return 0;
}

int mh_cred_init(struct mh_source *src, char *err, size_t errlen)
{
    const char *user = mh_source_opt(src, "basic_user");
    const char *header = mh_source_opt(src, "header");
    int bearer = bearer_opt(src);
    if (user && (!*user || strchr(user, ':'))) {
        src->err_line = mh_source_opt_line(src, "basic_user");
        snprintf(err, errlen, "basic_user: must be non-empty and contain no ':'");
        return -1;
    }
    if (bearer < 0) {
        src->err_line = mh_source_opt_line(src, "bearer");
        snprintf(err, errlen, "bearer: expected true or false");
        return -1;
    }
    if (user && bearer) {
        src->err_line = mh_source_opt_line(src, "bearer");
        snprintf(err, errlen, "basic_user and bearer both use the Authorization header; "
                              "set one of them");
        return -1;
    }
    if (header && (!is_header_name(header) || !strcasecmp(header, "authorization"))) {
        src->err_line = mh_source_opt_line(src, "header");
        snprintf(err, errlen, "header: must be a header name other than Authorization "
                              "(the Authorization credential has its own option)");
        return -1;
    }
    if (!user && !bearer && !header) {
        snprintf(err, errlen, "%s: set the credential the webhook carries (options: %s); "
                              "the provider signs nothing, so one of them is the credential",
                 src->provider->name,
                 provider_takes(src, "bearer")
                     ? "basic_user, bearer = true, header"
                     : "basic_user, header");
        return -1;
    }
    return 0;
}

/*
 * "Bearer <token>" (scheme case-insensitive, RFC 9110) whose token is one of the
 * source's secrets. Returns 0 when the value is absent or of another scheme, else 1
 * with *ok set.
 */
static int verify_bearer(const struct mh_source *src, const char *authorization, int *ok)
{
    *ok = 0;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7)) return 0;
    const char *token = authorization + 7;
    while (*token == ' ') token++;
    *ok = *token && mh_verify_secret_any(src, token, strlen(token));
    return 1;
}

enum mh_verdict mh_cred_verify(const struct mh_source *src, const struct mh_request *req,
                               char *err, size_t errlen)
{
    const char *user = mh_source_opt(src, "basic_user");
    const char *header = mh_source_opt(src, "header");
    const char *authz = mh_headers_get(req->headers, "authorization");
    int ok;
    if (user) {
        if (!mh_verify_basic(src, authz, user, &ok)) {
            snprintf(err, errlen, "HTTP Basic credentials missing");
            return MH_VERIFY_REJECT;
        }
        if (!ok) {
            snprintf(err, errlen,
                     "HTTP Basic credentials do not match the source's user and secrets");
            return MH_VERIFY_REJECT;
        }
    }
    if (bearer_opt(src) == 1) {
        if (!verify_bearer(src, authz, &ok)) {
            snprintf(err, errlen, "bearer token missing");
            return MH_VERIFY_REJECT;
        }
        if (!ok) {
            snprintf(err, errlen, "bearer token does not match any active secret");
            return MH_VERIFY_REJECT;
        }
    }
    if (header) {
        const char *value = mh_headers_get(req->headers, header);
        if (!value || !*value) {
            snprintf(err, errlen, "credential header \"%s\" missing", header);
            return MH_VERIFY_REJECT;
        }
        if (!mh_verify_secret_any(src, value, strlen(value))) {
            snprintf(err, errlen, "credential header \"%s\" does not match any active secret",
                     header);
            return MH_VERIFY_REJECT;
        }
    }
    return MH_VERIFY_OK;
}

int mh_cred_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err, size_t errlen)
{
    const char *user = mh_source_opt(src, "basic_user");
    const char *header = mh_source_opt(src, "header");
    if (src->n_secrets == 0) {
        snprintf(err, errlen, "source has no secret");
        return -1;
    }
    if (user) mh_sign_basic(src, user, sr->headers);
    if (bearer_opt(src) == 1) {
        char value[8 + 1024];
        if (snprintf(value, sizeof(value), "Bearer %s", src->secrets[0]) >= (int)sizeof(value)) {
            snprintf(err, errlen, "secret too long for a bearer token");
            return -1;
        }
        mh_headers_add(sr->headers, "Authorization", value);
    }
    if (header) mh_headers_add(sr->headers, header, src->secrets[0]);
    return 0;
}

int mh_verify_timestamp(int64_t ts_ms, int64_t now_ms, long tolerance_s)
{
    if (tolerance_s <= 0) return 1;
    int64_t d = ts_ms - now_ms;
    if (d < 0) d = -d;
    return d <= (int64_t)tolerance_s * 1000;
}

int mh_source_long_opt(struct mh_source *src, const char *key, long def, long min, long max,
                       long *out, char *err, size_t errlen)
{
    const char *v = mh_source_opt(src, key);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max) {
        src->err_line = mh_source_opt_line(src, key);
        snprintf(err, errlen, "%s: expected a whole number in %ld..%ld", key, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

/* ---- Standard Webhooks v1 (see verify.h) ---- */

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

int mh_unix_seconds(const char *ts, int64_t *s)
{
    size_t n = strlen(ts);
    if (n == 0 || n > MAX_TS_DIGITS || strspn(ts, "0123456789") != n) return -1;
    *s = 0;
    for (const char *p = ts; *p; p++) *s = *s * 10 + (*p - '0');
    return 0;
}

#define KEY_FILE_MAX (64 * 1024)

char *mh_read_key_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    char *buf = mh_malloc(KEY_FILE_MAX + 1);
    size_t n = fread(buf, 1, KEY_FILE_MAX + 1, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad || n > KEY_FILE_MAX) {
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "larger than 64 KiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

EVP_PKEY *mh_load_private_key(const char *path, char *err, size_t errlen)
{
    char *text = mh_read_key_file(path, NULL, err, errlen);
    if (!text) return NULL;
    BIO *bio = BIO_new_mem_buf(text, -1);
    if (!bio) mh_oom();
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    ERR_clear_error();
    if (!pkey) snprintf(err, errlen, "%s: no PEM private key", path);
    return pkey;
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

#define STDWH_DEFAULT_TOLERANCE_S 300L
#define STDWH_MAX_TOLERANCE_S (31L * 86400)
#define STDWH_SIGN_ID_HEX 27 /* as long as a Svix message id's random part */

struct stdwh_state {
    long tolerance_s;
};

int mh_stdwh_source_init(struct mh_source *src, char *err, size_t errlen)
{
    struct stdwh_state *st = mh_calloc(1, sizeof(*st));
    if (mh_source_long_opt(src, "timestamp_tolerance_s", STDWH_DEFAULT_TOLERANCE_S, 0,
                           STDWH_MAX_TOLERANCE_S, &st->tolerance_s, err, errlen) < 0 ||
        mh_stdwh_check_secrets(src, err, errlen) < 0) {
        free(st);
        return -1;
    }
    src->state = st;
    return 0;
}

void mh_stdwh_source_fini(struct mh_source *src)
{
    free(src->state);
    src->state = NULL;
}

enum mh_verdict mh_stdwh_source_verify(const struct mh_source *src, const struct mh_request *req,
                                       char *err, size_t errlen)
{
    const struct stdwh_state *st = src->state;
    return mh_stdwh_verify(src, req->headers, req->body, req->body_len, req->now_ms,
                           st->tolerance_s, err, errlen);
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
