/*
 * cred.h — credentials of providers that sign nothing (a shared secret sent as it is).
 */
#ifndef MH_CRED_H
#define MH_CRED_H

#include <stddef.h>

#include "mailhook/provider.h"
#include "mailhook/provider_options.h"

struct mh_source;

/*
 * The whole credential check of a provider that signs nothing (Postmark, SparkPost,
 * Brevo), driven by the source options the provider lists:
 *   basic_user = NAME    Authorization: Basic NAME:<one of the secrets>
 *   bearer = true        Authorization: Bearer <one of the secrets>
 *   header     = X-NAME  the header's value is one of the secrets
 *   query_param = NAME   the URL's query parameter NAME (percent-decoded) is one of the
 *                        secrets: for senders whose webhook URL is the only place a
 *                        secret can go (Event Grid's `?code=...`)
 * basic_user and bearer share the Authorization header, so only one may be set. Every
 * configured check must pass. Error texts never contain a credential.
 */

/* The option rows of those providers' tables (provider_options.h). */
#define MH_CRED_OPT_BASIC_USER                                                                 \
    {.name = "basic_user", .type = MH_OPT_STRING,                                              \
     .help = "expect Authorization: Basic with this user and one of the secrets"}
#define MH_CRED_OPT_BEARER                                                                     \
    {.name = "bearer", .type = MH_OPT_BOOL, .def = "false", .flags = MH_OPT_STRICT,            \
     .help = "expect Authorization: Bearer with one of the secrets"}
#define MH_CRED_OPT_HEADER                                                                     \
    {.name = "header", .type = MH_OPT_STRING,                                                  \
     .help = "expect this request header (not Authorization) to hold one of the secrets"}

#define MH_CRED_OPT_QUERY_PARAM                                                                \
    {.name = "query_param", .type = MH_OPT_STRING,                                             \
     .help = "expect this URL query parameter to hold one of the secrets"}

/* For init: basic_user non-empty without ':', header a token other than Authorization,
 * not both basic_user and bearer, at least one set. 0, or -1 with err (and
 * src->err_line). */
int mh_cred_init(struct mh_source *src, char *err, size_t errlen);

/* For verify: MH_VERIFY_OK, or MH_VERIFY_REJECT with the failed check named in err. */
enum mh_verdict mh_cred_verify(const struct mh_source *src, const struct mh_request *req,
                               char *err, size_t errlen);

/* For sign: the credentials the source expects, with its first (newest) secret. */
int mh_cred_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err, size_t errlen);

#endif
