/*
 * tls.c — HTTPS on the ingest's listener ([ingest] tls_cert_file, tls_key_file).
 *
 * With both keys set, every connection a loop accepts is an OpenSSL bufferevent
 * (accept.c's bevcb makes it here) and evhttp speaks HTTP over it; the connection cap
 * and the whole-request deadline count it from accept() on as before, the TLS handshake
 * included. One SSL_CTX serves every loop: OpenSSL counts its references, the process
 * holds one (proc->tls), each config generation one (ingest_cfg.tls, what a loop's new
 * connections use) and each SSL one, so a context lives until its last connection ends.
 *
 * SIGHUP reads the pair again: a good new pair serves the connections accepted after
 * the reload; a broken one is logged and the previous context stays. Turning TLS on or
 * off needs a restart (the listener's clients expect one or the other).
 */
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <string.h>

#include "ingest.h"
#include "mailhook/log.h"
#include "mailhook/tls.h"

static int tls_configured(const struct mh_config *cfg)
{
    return cfg->ingest.tls_cert_file && cfg->ingest.tls_key_file;
}

/* The pair of cfg, or NULL with "FILE:LINE: [ingest] problem" in err. */
static SSL_CTX *load_pair(const struct mh_config *cfg, char *err, size_t errlen)
{
    char problem[900];
    SSL_CTX *ctx = mh_tls_server_ctx(cfg->ingest.tls_cert_file, cfg->ingest.tls_key_file,
                                     problem, sizeof(problem));
    if (ctx) return ctx;
    const char *key = strncmp(problem, "tls_key_file", 12) ? "tls_cert_file" : "tls_key_file";
    snprintf(err, errlen, "%s:%d: [ingest] %s", cfg->path,
             mh_config_key_line(cfg, "ingest", key), problem);
    return NULL;
}

int tls_init(struct ingest_proc *p, const struct mh_config *cfg, char *err, size_t errlen)
{
    p->tls = NULL;
    if (!tls_configured(cfg)) return 0;
    p->tls = load_pair(cfg, err, errlen);
    if (!p->tls) return -1;
    mh_info("serving HTTPS with %s", cfg->ingest.tls_cert_file);
    return 0;
}

void tls_reload(struct ingest_proc *p, const struct mh_config *cfg)
{
    char err[1024];
    if (!p->tls != !tls_configured(cfg)) {
        mh_error("reload: turning TLS %s needs a restart; new connections stay %s",
                 p->tls ? "off" : "on", p->tls ? "HTTPS" : "plain HTTP");
        return;
    }
    if (!p->tls) return;
    SSL_CTX *ctx = load_pair(cfg, err, sizeof(err));
    if (!ctx) {
        mh_error("reload: keeping the previous TLS certificate: %s", err);
        return;
    }
    SSL_CTX_free(p->tls); /* configs and connections still using it hold their own */
    p->tls = ctx;
    mh_info("reload: new connections use the certificate in %s", cfg->ingest.tls_cert_file);
}

void tls_fini(struct ingest_proc *p)
{
    SSL_CTX_free(p->tls);
    p->tls = NULL;
}

SSL_CTX *tls_ref(SSL_CTX *ctx)
{
    if (ctx) SSL_CTX_up_ref(ctx);
    return ctx;
}

struct bufferevent *tls_conn_new(struct event_base *base, SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return NULL;
    /* The socket comes later (evhttp sets it); the handshake starts then. */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) return NULL; /* libevent 2.1 may have freed ssl: leak it rather than risk it */
    /* A client that closes without close_notify has still sent its whole request. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}
