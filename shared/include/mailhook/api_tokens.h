/*
 * api_tokens.h — mailhook-api's bearer tokens and the tenants each may act for
 * (shared/api_tokens.c); docs/api.md "Tokens" is the reference.
 *
 * A token entry is "TOKEN [TENANTS]": TENANTS is "*" (an operator token) or tenant
 * names separated by commas; without TENANTS the token is an operator token, as every
 * token was before tokens had tenants. [api] token = ENTRY, token_env = VAR [TENANTS]
 * (the variable holds the token), token_file = PATH (one entry per line; blank lines
 * and lines starting with # are skipped). Tokens are kept as keyed digests only, and
 * no error message quotes one.
 */
#ifndef MH_API_TOKENS_H
#define MH_API_TOKENS_H

#include <stddef.h>

#include "mailhook/config.h"

/*
 * Adds token (kept as its digest) with scope (NULL or "": operator). 0, or -1 with the
 * problem in err (which never quotes the token or the scope).
 */
int mh_api_token_add(struct mh_config *cfg, const char *token, const char *scope, char *err,
                     size_t errlen);
/* Adds one "TOKEN [TENANTS]" entry. 0, or -1 with the problem in err. */
int mh_api_token_add_entry(struct mh_config *cfg, const char *entry, char *err, size_t errlen);
/* Adds every entry of a token file. 0, or -1 with "PATH:LINE: problem" in err. */
int mh_api_token_add_file(struct mh_config *cfg, const char *path, char *err, size_t errlen);

/*
 * The configured token equal to the len bytes of presented, or NULL. Compares keyed
 * digests with CRYPTO_memcmp against every configured token, without stopping at a
 * match: the time taken says nothing about the tokens' contents or lengths.
 */
const struct mh_api_token *mh_api_token_find(const struct mh_config *cfg, const char *presented,
                                             size_t len);

/* 1 when t may act for tenant; tenant NULL (every tenant) only for an operator token. */
int mh_api_token_allows(const struct mh_api_token *t, const char *tenant);

void mh_api_tokens_free(struct mh_config *cfg);

#endif
