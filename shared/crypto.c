/*
 * crypto.c — OpenSSL-backed helpers (see crypto.h). No scheme logic lives here:
 * each provider composes these into its own verify.
 */
#include "mailhook/crypto.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"

int mh_hmac(const char *md, const void *key, size_t keylen, const struct mh_buf *parts,
            size_t nparts, unsigned char *out)
{
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    size_t outlen = 0;
    int rc = -1;
    OSSL_PARAM params[2];

    if (!EVP_get_digestbyname(md)) return -1;
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) goto fail;
    ctx = EVP_MAC_CTX_new(mac);
    if (!ctx) goto fail;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0);
    params[1] = OSSL_PARAM_construct_end();
    /* An empty key is legal HMAC; OpenSSL wants a non-NULL pointer for it. */
    if (EVP_MAC_init(ctx, keylen ? key : (const void *)"", keylen, params) != 1) goto fail;
    for (size_t i = 0; i < nparts; i++)
        if (EVP_MAC_update(ctx, parts[i].data, parts[i].len) != 1) goto fail;
    if (EVP_MAC_final(ctx, out, &outlen, MH_MAX_MD) != 1) goto fail;
    rc = (int)outlen;
fail:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

void mh_sha256_hex(const struct mh_buf *parts, size_t nparts, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) mh_oom();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; i < nparts; i++) EVP_DigestUpdate(ctx, parts[i].data, parts[i].len);
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    mh_hex_encode(md, len, out);
}

void mh_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * len] = '\0';
}

ssize_t mh_hex_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    long n;
    if (len % 2 || len / 2 > cap) return -1;
    /* OPENSSL_hexstr2buf wants a NUL-terminated string. */
    char *tmp = mh_strndup(in, len);
    unsigned char *buf = OPENSSL_hexstr2buf(tmp, &n);
    free(tmp);
    if (!buf) return -1;
    /* hexstr2buf also accepts "aa:bb"; a colon-free input of len/2 bytes is plain hex. */
    if ((size_t)n != len / 2) {
        OPENSSL_free(buf);
        return -1;
    }
    memcpy(out, buf, (size_t)n);
    OPENSSL_free(buf);
    return n;
}

size_t mh_b64_encode(const unsigned char *in, size_t len, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

ssize_t mh_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    while (len && isspace((unsigned char)*in)) in++, len--;
    while (len && isspace((unsigned char)in[len - 1])) len--;
    /* Normalize URL-safe alphabet and restore padding for EVP_DecodeBlock. */
    size_t padded = (len + 3) / 4 * 4;
    char *tmp = mh_malloc(padded + 1);
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        tmp[i] = c;
    }
    for (size_t i = len; i < padded; i++) tmp[i] = '=';
    tmp[padded] = '\0';

    size_t pad = 0;
    if (padded >= 1 && tmp[padded - 1] == '=') pad++;
    if (padded >= 2 && tmp[padded - 2] == '=') pad++;
    ssize_t rc = -1;
    unsigned char *buf = mh_malloc(padded / 4 * 3 + 1);
    int n = EVP_DecodeBlock(buf, (unsigned char *)tmp, (int)padded);
    if (n >= 0 && (size_t)n >= pad && (size_t)n - pad <= cap) {
        memcpy(out, buf, (size_t)n - pad);
        rc = (ssize_t)((size_t)n - pad);
    }
    free(buf);
    free(tmp);
    return rc;
}

int mh_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) return 0;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

void mh_random_bytes(unsigned char *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1) abort();
}

void mh_random_hex(size_t n, char *out)
{
    unsigned char buf[64];
    if (n > sizeof(buf)) n = sizeof(buf);
    if (RAND_bytes(buf, (int)n) != 1) abort();
    mh_hex_encode(buf, n, out);
}
