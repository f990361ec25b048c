/*
 * dedup_scope.c — the scope an event id is unique in (dedup_scope.h).
 */
#include <stdio.h>
#include <string.h>

#include "mailhook/crypto.h"
#include "mailhook/dedup_scope.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"

char *mh_dedup_scope(const char *provider, const char *source)
{
    if (!provider) provider = "";
    if (!source) source = "";
    const struct mh_provider *p = mh_provider_find(provider);
    if (!p || !p->dedup_per_source) return mh_strdup(provider);
    size_t n = strlen(provider) + 1 + strlen(source) + 1;
    char *scope = mh_malloc(n);
    snprintf(scope, n, "%s/%s", provider, source);
    return scope;
}

char *mh_event_dedup_scope(const json_t *ev)
{
    return mh_dedup_scope(json_string_value(json_object_get(ev, "provider")),
                          json_string_value(json_object_get(ev, "source")));
}

void mh_claim_key(const char *tenant, const char *scope, const char *event_id,
                  unsigned char out[MH_CLAIM_KEY_LEN])
{
    if (!tenant) tenant = "";
    if (!scope) scope = "";
    if (!event_id) event_id = "";
    const struct mh_buf parts[] = {
        {tenant, strlen(tenant)}, {"", 1}, {scope, strlen(scope)}, {"", 1},
        {event_id, strlen(event_id)},
    };
    unsigned char md[32];
    mh_sha256(parts, sizeof(parts) / sizeof(parts[0]), md);
    memcpy(out, md, MH_CLAIM_KEY_LEN);
}
