/*
 * tls.c — OpenSSL server contexts (see tls.h).
 */
#include "mailhook/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

/* TLS 1.2 suites with forward secrecy and AEAD; TLS 1.3 keeps OpenSSL's own list. */
#define TLS12_CIPHERS                                                                         \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                              \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                              \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                              \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/* "what: the oldest queued OpenSSL error" (or errno's, when OpenSSL queued none). */
static void openssl_problem(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];
    if (e) ERR_error_string_n(e, buf, sizeof(buf));
    else snprintf(buf, sizeof(buf), "%s", strerror(errno ? errno : EINVAL));
    snprintf(err, errlen, "%s: %s", what, buf);
    ERR_clear_error();
}

static int readable(const char *path, const char *key, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot read %s: %s", key, path, strerror(errno));
        return 0;
    }
    fclose(fp);
    return 1;
}

SSL_CTX *mh_tls_server_ctx(const char *cert_file, const char *key_file, char *err,
                           size_t errlen)
{
    char what[600];
    ERR_clear_error();
    if (!readable(cert_file, "tls_cert_file", err, errlen) ||
        !readable(key_file, "tls_key_file", err, errlen))
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_problem(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        openssl_problem(err, errlen, "cannot set the TLS 1.2 ciphers");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(what, sizeof(what), "tls_cert_file: %s is no PEM certificate chain", cert_file);
        openssl_problem(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(what, sizeof(what), "tls_key_file: %s does not match %s", key_file,
                     cert_file);
        else
            snprintf(what, sizeof(what), "tls_key_file: %s is no PEM private key", key_file);
        openssl_problem(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof(what), "tls_key_file: %s does not match %s", key_file, cert_file);
        openssl_problem(err, errlen, what);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
