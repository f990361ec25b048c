/*
 * verify.c — the scheme-independent pieces of signature verification (see verify.h).
 * Standard Webhooks lives in stdwh.c, the credentials of unsigned providers in cred.c.
 */
#include "mailhook/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "mailhook/config.h"
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

int mh_verify_timestamp(int64_t ts_ms, int64_t now_ms, long tolerance_s)
{
    if (tolerance_s <= 0) return 1;
    int64_t d = ts_ms - now_ms;
    if (d < 0) d = -d;
    return d <= (int64_t)tolerance_s * 1000;
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
