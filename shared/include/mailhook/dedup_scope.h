/*
 * dedup_scope.h — the scope an event id is unique in: what dedup keys a claim on.
 *
 * A claim's key is (tenant, dedup scope, event_id), the scope stored in the claim's
 * `provider` column (migrations/0006). For a provider with its own platform (IvyMail,
 * SendGrid, ...) the scope is the provider's name: its ids — its own or derived — name
 * an event of that platform, so the same event reaching a tenant through two of its
 * sources is one event. A generic provider (struct mh_provider.dedup_per_source: hmac,
 * standard) serves any number of unrelated senders whose ids are unique only per
 * sender; its scope is "provider/source", so two senders that both number their events
 * 1, 2, 3 do not swallow each other's events. Source names never hold '/' (config.c),
 * so the two forms cannot meet. A scope is at most 64 + 1 + 256 bytes (event_limits.h),
 * well inside the claim indexes' row limit. docs/design.md, "Dedup scope", says why.
 */
#ifndef MH_DEDUP_SCOPE_H
#define MH_DEDUP_SCOPE_H

#include <jansson.h>

/*
 * The dedup scope of an event of provider (by name) from source, malloc'd (the caller
 * frees it): "provider/source" when the provider dedups per source, else the name. An
 * unknown provider scopes by its name. NULL strings count as "".
 */
char *mh_dedup_scope(const char *provider, const char *source);

/* The same for a canonical event, from its "provider" and "source" members. */
char *mh_event_dedup_scope(const json_t *ev);

/* A claim key's length in bytes. */
#define MH_CLAIM_KEY_LEN 16

/*
 * The key of the claim of (tenant, scope, event_id) in mh_claims: the first 16 bytes of
 * SHA-256 over the three UTF-8 strings joined by a zero byte, as the database's
 * mh_claim_key (migrations/0008) computes it. The worker sends the keys it computes here,
 * so PostgreSQL hashes nothing for a claim. NULL strings count as "".
 */
void mh_claim_key(const char *tenant, const char *scope, const char *event_id,
                  unsigned char out[MH_CLAIM_KEY_LEN]);

#endif
