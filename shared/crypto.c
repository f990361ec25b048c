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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"

/*
 * Each thread keeps one HMAC context with the digest and key it last used: a verifier
 * checks request after request with the same secret, and OpenSSL re-initialises a keyed
 * context for the next message at a fraction of what fetching the algorithms, making a
 * context and keying it cost every time. The HMAC algorithm itself is fetched once.
 */
struct hmac_cache {
    EVP_MAC_CTX *ctx;
    char md[32];        /* the digest ctx is set to, "" before the first use */
    unsigned char *key; /* a copy of the key ctx holds, for comparison */
    size_t keylen;
    int keyed; /* ctx holds md and key: a re-initialisation starts a new MAC */
};

static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static pthread_key_t hmac_key; /* frees a thread's cache when the thread ends */
static EVP_MAC *hmac_alg;
static _Thread_local struct hmac_cache *hmac_tl;

static void hmac_forget_key(struct hmac_cache *c)
{
    if (c->key) OPENSSL_clear_free(c->key, c->keylen);
    c->key = NULL;
    c->keylen = 0;
    c->keyed = 0;
}

static void hmac_cache_free(void *arg)
{
    struct hmac_cache *c = arg;
    if (!c) return;
    hmac_forget_key(c);
    EVP_MAC_CTX_free(c->ctx);
    free(c);
    if (hmac_tl == c) hmac_tl = NULL;
}

static void hmac_setup(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (pthread_key_create(&hmac_key, hmac_cache_free) != 0) mh_oom();
}

static struct hmac_cache *hmac_cache(void)
{
    pthread_once(&hmac_once, hmac_setup);
    if (hmac_tl || !hmac_alg) return hmac_tl;
    struct hmac_cache *c = mh_calloc(1, sizeof(*c));
    c->ctx = EVP_MAC_CTX_new(hmac_alg);
    if (!c->ctx) {
        free(c);
        return NULL;
    }
    hmac_tl = c;
    pthread_setspecific(hmac_key, c);
    return c;
}

/* Sets c's context to md and key for a new MAC; 0 or -1 (c is then unkeyed). */
static int hmac_start(struct hmac_cache *c, const char *md, const void *key, size_t keylen)
{
    int same_md = !strcmp(c->md, md);
    if (c->keyed && same_md && c->keylen == keylen && !CRYPTO_memcmp(c->key, key, keylen))
        return EVP_MAC_init(c->ctx, NULL, 0, NULL) == 1 ? 0 : (hmac_forget_key(c), -1);
    hmac_forget_key(c);
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(c->ctx, key, keylen, same_md ? NULL : params) != 1) {
        c->md[0] = '\0';
        return -1;
    }
    snprintf(c->md, sizeof(c->md), "%s", md);
    c->key = mh_malloc(keylen ? keylen : 1);
    memcpy(c->key, key, keylen);
    c->keylen = keylen;
    c->keyed = 1;
    return 0;
}

int mh_hmac(const char *md, const void *key, size_t keylen, const struct mh_buf *parts,
            size_t nparts, unsigned char *out)
{
    size_t outlen = 0;
    struct hmac_cache *c = hmac_cache();
    if (!c || strlen(md) >= sizeof(c->md)) return -1;
    if (strcmp(c->md, md) && !EVP_get_digestbyname(md)) return -1;
    /* An empty key is legal HMAC; OpenSSL wants a non-NULL pointer for it. */
    if (hmac_start(c, md, keylen ? key : (const void *)"", keylen) < 0) return -1;
    for (size_t i = 0; i < nparts; i++)
        if (EVP_MAC_update(c->ctx, parts[i].data, parts[i].len) != 1) goto fail;
    if (EVP_MAC_final(c->ctx, out, &outlen, MH_MAX_MD) != 1) goto fail;
    return (int)outlen;
fail:
    hmac_forget_key(c);
    return -1;
}

/* SHA-256 is fetched once: an implicit fetch by name on every digest costs more than
 * hashing the few dozen bytes of a claim key (mh_claim_key hashes one per event). */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_alg;

static void sha256_setup(void)
{
    sha256_alg = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

void mh_sha256(const struct mh_buf *parts, size_t nparts, unsigned char out[32])
{
    pthread_once(&sha256_once, sha256_setup);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) mh_oom();
    unsigned int len = 0;
    int ok = sha256_alg && EVP_DigestInit_ex(ctx, sha256_alg, NULL) == 1;
    for (size_t i = 0; ok && i < nparts; i++)
        ok = EVP_DigestUpdate(ctx, parts[i].data, parts[i].len) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == 32;
    EVP_MD_CTX_free(ctx);
    /* Only a broken OpenSSL (no SHA-256 in its default provider) fails here; a key or
     * a digest made of anything else would be wrong, so nothing goes on. */
    if (!ok) {
        mh_error("SHA-256 is not available from OpenSSL");
        abort();
    }
}

void mh_sha256_hex(const struct mh_buf *parts, size_t nparts, char out[65])
{
    unsigned char md[32];
    mh_sha256(parts, nparts, md);
    mh_hex_encode(md, sizeof(md), out);
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
