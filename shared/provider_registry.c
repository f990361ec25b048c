/*
 * provider_registry.c — the table of providers, expanded from providers/providers.def
 * (the one list that names them) in the list's order. Nothing here changes when a
 * provider is added: see docs/providers/README.md.
 */
#include <string.h>

#include "mailhook/provider.h"

#define MH_PROVIDER(name) extern const struct mh_provider mh_provider_##name;
#include "providers/providers.def"
#undef MH_PROVIDER

const struct mh_provider *const mh_providers[] = {
#define MH_PROVIDER(name) &mh_provider_##name,
#include "providers/providers.def"
#undef MH_PROVIDER
    NULL,
};

const struct mh_provider *mh_provider_find(const char *name)
{
    for (const struct mh_provider *const *p = mh_providers; *p; p++)
        if (strcmp((*p)->name, name) == 0) return *p;
    return NULL;
}
