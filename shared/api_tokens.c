/*
 * api_tokens.c — mailhook-api's bearer tokens with the tenants each may act for
 * (api_tokens.h). A token is kept only as HMAC-SHA-256 under a key drawn at load time,
 * so a presented token is judged by comparing two digests of the same length: neither
 * the contents nor the length of a configured token shows in how long that takes.
 */
#include "mailhook/api_tokens.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/crypto.h"
#include "mailhook/cursor.h"
#include "mailhook/log.h"

#define TOKEN_MAX 4096

static void digest(const struct mh_config *cfg, const char *token, size_t len,
                   unsigned char out[32])
{
    unsigned char mac[MH_MAX_MD];
    struct mh_buf part = {token, len};
    if (mh_hmac("sha256", cfg->api.token_key, sizeof(cfg->api.token_key), &part, 1, mac) != 32)
        mh_oom(); /* sha256 is always there: only allocation can fail */
    memcpy(out, mac, 32);
    OPENSSL_cleanse(mac, sizeof(mac));
}

static void tenants_free(char **tenants, size_t n)
{
    for (size_t i = 0; i < n; i++) free(tenants[i]);
    free(tenants);
}

/* Splits scope into t; -1 with err. */
static int parse_scope(const char *scope, struct mh_api_token *t, char *err, size_t errlen)
{
    if (!scope || !*scope || !strcmp(scope, "*")) {
        t->operator = 1;
        return 0;
    }
    const char *p = scope;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 0) {
            snprintf(err, errlen, "tenants: an empty name (two commas, or one at an end)");
            return -1;
        }
        if (n > MH_TENANT_MAX) {
            snprintf(err, errlen, "tenants: a name longer than %d bytes", MH_TENANT_MAX);
            return -1;
        }
        if (n == 1 && *p == '*') {
            snprintf(err, errlen, "tenants: \"*\" (every tenant) stands alone");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f) {
                snprintf(err, errlen, "tenants: a name holds a space or a control character");
                return -1;
            }
        }
        t->tenants = mh_realloc(t->tenants, (t->n_tenants + 1) * sizeof(char *));
        t->tenants[t->n_tenants++] = mh_strndup(p, n);
        if (!p[n]) return 0;
        p += n + 1;
    }
}

static int same_scope(const struct mh_api_token *a, const struct mh_api_token *b)
{
    if (a->operator || b->operator) return a->operator == b->operator;
    if (a->n_tenants != b->n_tenants) return 0;
    for (size_t i = 0; i < a->n_tenants; i++)
        if (strcmp(a->tenants[i], b->tenants[i])) return 0;
    return 1;
}

int mh_api_token_add(struct mh_config *cfg, const char *token, const char *scope, char *err,
                     size_t errlen)
{
    size_t len = token ? strlen(token) : 0;
    if (len == 0) {
        snprintf(err, errlen, "empty token");
        return -1;
    }
    if (len > TOKEN_MAX) {
        snprintf(err, errlen, "token longer than %d characters", TOKEN_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f) {
            snprintf(err, errlen, "a token holds a character that is not visible ASCII");
            return -1;
        }
    }
    if (cfg->api.n_tokens == 0 && RAND_bytes(cfg->api.token_key, sizeof(cfg->api.token_key)) != 1)
    {
        mh_error("no random bytes for the API tokens' key");
        abort();
    }
    struct mh_api_token t = {0};
    if (parse_scope(scope, &t, err, errlen) < 0) {
        tenants_free(t.tenants, t.n_tenants);
        return -1;
    }
    digest(cfg, token, len, t.digest);
    /* Load time, not request time: an ordinary comparison is fine here. */
    for (size_t i = 0; i < cfg->api.n_tokens; i++) {
        if (memcmp(cfg->api.tokens[i].digest, t.digest, sizeof(t.digest))) continue;
        int same = same_scope(&cfg->api.tokens[i], &t);
        tenants_free(t.tenants, t.n_tenants);
        if (same) return 0; /* listed twice (say, in a file and the environment) */
        snprintf(err, errlen, "a token is configured twice, with different tenants");
        return -1;
    }
    cfg->api.tokens = mh_realloc(cfg->api.tokens, (cfg->api.n_tokens + 1) * sizeof(t));
    cfg->api.tokens[cfg->api.n_tokens++] = t;
    return 0;
}

int mh_api_token_add_entry(struct mh_config *cfg, const char *entry, char *err, size_t errlen)
{
    static const char ws[] = " \t\r\n";
    const char *p = entry + strspn(entry, ws);
    size_t tlen = strcspn(p, ws);
    const char *scope = p + tlen + strspn(p + tlen, ws);
    size_t slen = strcspn(scope, ws);
    if (scope[slen + strspn(scope + slen, ws)]) {
        snprintf(err, errlen, "expected TOKEN [TENANTS], found more after the tenants");
        return -1;
    }
    char *token = mh_strndup(p, tlen), *sc = mh_strndup(scope, slen);
    int rc = mh_api_token_add(cfg, token, sc, err, errlen);
    OPENSSL_cleanse(token, tlen);
    free(token);
    free(sc);
    return rc;
}

int mh_api_token_add_file(struct mh_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL, problem[256];
    size_t cap = 0, entries = 0;
    ssize_t n;
    int lineno = 0, rc = 0;
    while ((n = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        const char *p = line + strspn(line, " \t\r\n");
        if (!*p || *p == '#') continue;
        if ((size_t)n != strlen(line)) {
            snprintf(err, errlen, "%s:%d: holds a NUL byte", path, lineno);
            rc = -1;
            break;
        }
        if (mh_api_token_add_entry(cfg, p, problem, sizeof(problem)) < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, problem);
            rc = -1;
            break;
        }
        entries++;
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        rc = -1;
    } else if (rc == 0 && entries == 0) {
        snprintf(err, errlen, "%s is empty (no token in it)", path);
        rc = -1;
    }
    if (line) OPENSSL_cleanse(line, cap);
    free(line);
    fclose(fp);
    return rc;
}

const struct mh_api_token *mh_api_token_find(const struct mh_config *cfg, const char *presented,
                                             size_t len)
{
    unsigned char d[32];
    digest(cfg, presented, len, d);
    size_t found = 0, any = 0;
    for (size_t i = 0; i < cfg->api.n_tokens; i++) {
        /* No branch on the result: every token costs the same, match or not. */
        size_t eq = (size_t)(CRYPTO_memcmp(d, cfg->api.tokens[i].digest, sizeof(d)) == 0);
        size_t mask = (size_t)0 - eq;
        found = (found & ~mask) | (i & mask);
        any |= eq;
    }
    OPENSSL_cleanse(d, sizeof(d));
    return any ? &cfg->api.tokens[found] : NULL;
}

int mh_api_token_allows(const struct mh_api_token *t, const char *tenant)
{
    if (!t) return 0;
    if (t->operator) return 1;
    if (!tenant) return 0;
    for (size_t i = 0; i < t->n_tenants; i++)
        if (!strcmp(t->tenants[i], tenant)) return 1;
    return 0;
}

void mh_api_tokens_free(struct mh_config *cfg)
{
    for (size_t i = 0; i < cfg->api.n_tokens; i++)
        tenants_free(cfg->api.tokens[i].tenants, cfg->api.tokens[i].n_tenants);
    free(cfg->api.tokens);
    cfg->api.tokens = NULL;
    cfg->api.n_tokens = 0;
    OPENSSL_cleanse(cfg->api.token_key, sizeof(cfg->api.token_key));
}
