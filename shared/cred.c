/*
 * cred.c — the credential check of providers that sign nothing (see cred.h).
 */
#include "mailhook/cred.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h> /* TAILQ_INIT, before libevent's fallback TAILQ macros */

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mailhook/config.h"
#include "mailhook/headers.h"
#include "mailhook/log.h"
#include "mailhook/provider_options.h"
#include "mailhook/verify.h"

/* 1 when s is an HTTP header name (an RFC 9110 token). */
static int is_header_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return 0;
    return 1;
}

/* The bearer option: 0 for providers without one. */
static int bearer_opt(const struct mh_source *src)
{
    return mh_source_takes(src, "bearer") && mh_source_opt_bool(src, "bearer");
}

/* The query_param option: NULL for providers without one. */
static const char *query_opt(const struct mh_source *src)
{
    return mh_source_takes(src, "query_param") ? mh_source_opt(src, "query_param") : NULL;
}

int mh_cred_init(struct mh_source *src, char *err, size_t errlen)
{
    const char *user = mh_source_opt(src, "basic_user");
    const char *header = mh_source_opt(src, "header");
    const char *query = query_opt(src);
    if (query && (!*query || strpbrk(query, "&=#?% "))) {
        src->err_line = mh_source_opt_line(src, "query_param");
        snprintf(err, errlen, "query_param: must be a plain parameter name");
        return -1;
    }
    int bearer = bearer_opt(src);
    if (user && (!*user || strchr(user, ':'))) {
        src->err_line = mh_source_opt_line(src, "basic_user");
        snprintf(err, errlen, "basic_user: must be non-empty and contain no ':'");
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
    if (!user && !bearer && !header && !query) {
        snprintf(err, errlen, "%s: set the credential the webhook carries (options: %s%s); "
                              "the provider signs nothing, so one of them is the credential",
                 src->provider->name,
                 mh_source_takes(src, "bearer")
                     ? "basic_user, bearer = true, header"
                     : "basic_user, header",
                 mh_source_takes(src, "query_param") ? ", query_param" : "");
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

/*
 * The value of the query parameter name of uri, percent-decoded (libevent's query
 * parser), or NULL when there is none. Caller frees.
 */
static char *query_value(const char *uri, const char *name)
{
    const char *q = uri ? strchr(uri, '?') : NULL;
    if (!q) return NULL;
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    char *query = mh_strndup(q + 1, strcspn(q + 1, "#"));
    char *out = NULL;
    if (evhttp_parse_query_str(query, &params) == 0) {
        const char *v = evhttp_find_header(&params, name);
        if (v) out = mh_strdup(v);
    }
    evhttp_clear_headers(&params);
    memset(query, 0, strlen(query));
    free(query);
    return out;
}

enum mh_verdict mh_cred_verify(const struct mh_source *src, const struct mh_request *req,
                               char *err, size_t errlen)
{
    const char *query = query_opt(src);
    if (query) {
        char *v = query_value(req->uri, query);
        int ok = v && *v && mh_verify_secret_any(src, v, strlen(v));
        if (v) memset(v, 0, strlen(v));
        if (!ok) {
            snprintf(err, errlen, "URL query parameter \"%s\" %s", query,
                     v ? "does not match any active secret" : "missing");
            free(v);
            return MH_VERIFY_REJECT;
        }
        free(v);
    }
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
    const char *query = query_opt(src);
    if (query) {
        char *enc = evhttp_uriencode(src->secrets[0], -1, 0);
        if (!enc) mh_oom();
        size_t len = strlen(sr->url);
        int fits = len + strlen(query) + strlen(enc) + 3 <= sr->url_cap;
        if (fits)
            snprintf(sr->url + len, sr->url_cap - len, "%c%s=%s",
                     strchr(sr->url, '?') ? '&' : '?', query, enc);
        memset(enc, 0, strlen(enc));
        free(enc);
        if (!fits) {
            snprintf(err, errlen, "URL too long to add the %s parameter", query);
            return -1;
        }
    }
    return 0;
}
