/*
 * verify.c — shared pieces of signature verification (see verify.h).
 */
#include "mailhook/verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/config.h"

int mh_verify_hmac_any(const struct mh_source *src, const char *md, const struct mh_buf *parts,
                       size_t nparts, const char *sig, enum mh_sig_encoding enc)
{
    unsigned char want[MH_MAX_MD], mac[MH_MAX_MD];
    ssize_t wantlen;
    int ok = 0;

    if (!sig) return 0;
    size_t siglen = strlen(sig);
    if (enc == MH_SIG_HEX) wantlen = mh_hex_decode(sig, siglen, want, sizeof(want));
    else wantlen = mh_b64_decode(sig, siglen, want, sizeof(want));
    if (wantlen <= 0) return 0;

    /* No early exit: the time taken does not tell which secret matched. */
    for (size_t i = 0; i < src->n_secrets; i++) {
        int n = mh_hmac(md, src->secrets[i], strlen(src->secrets[i]), parts, nparts, mac);
        if (n > 0 && mh_ct_equal(mac, (size_t)n, want, (size_t)wantlen)) ok = 1;
    }
    return ok;
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
