/*
 * tenant.c — the tenant a command's --tenant defaults to: the one tenant of the config,
 * when every source and every [suppression.T] section names the same one.
 */
#include <string.h>

#include "cli.h"

const char *cli_default_tenant(const struct mh_config *cfg)
{
    const char *only = NULL;
    if (!cfg) return NULL;
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const char *t = cfg->sources[i]->tenant;
        if (!t) continue;
        if (only && strcmp(only, t)) return NULL;
        only = t;
    }
    for (size_t i = 0; i < cfg->n_tenant_policies; i++) {
        const char *t = cfg->tenant_policies[i]->tenant;
        if (!t) continue;
        if (only && strcmp(only, t)) return NULL;
        only = t;
    }
    return only;
}
