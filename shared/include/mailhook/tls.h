/*
 * tls.h — the server side of TLS: an OpenSSL context from a certificate/key pair, as
 * mailhook-ingest serves HTTPS with it ([ingest] tls_cert_file, tls_key_file) and
 * `mailhook config check` checks the pair.
 */
#ifndef MH_TLS_H
#define MH_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/*
 * A server context: TLS 1.2 and later only, the server's cipher preference, no
 * compression or renegotiation; cert_file is a PEM chain (the certificate first), key_file
 * its PEM private key, which must match. NULL with the problem in err (naming the file
 * it is about; never key material).
 */
SSL_CTX *mh_tls_server_ctx(const char *cert_file, const char *key_file, char *err,
                           size_t errlen);

#endif
