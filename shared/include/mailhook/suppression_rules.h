/*
 * suppression_rules.h — which canonical event does what to an address's suppression
 * state (shared/suppression_rules.c). Pure: no database, no Kafka, so unit tests link it.
 */
#ifndef MH_SUPPRESSION_RULES_H
#define MH_SUPPRESSION_RULES_H

#include <jansson.h>
#include <stddef.h>

#include "mailhook/config.h"

/*
 * The longest address suppression state is kept for, in bytes (RFC 5321 allows 254;
 * mailhook is lenient, but bounded so every stored address fits a URL, a cursor and a
 * PostgreSQL index entry). The worker keeps no state for a longer recipient, and the API
 * and the CLI refuse longer input.
 */
#define SUPP_ADDRESS_MAX 1024

enum supp_op {
    SUPP_NONE = 0, /* the event does not touch suppression state (it is still logged) */
    SUPP_SUPPRESS, /* main register: suppressed, with a reason */
    SUPP_LIFT,     /* main register: lifted */
    SUPP_SOFT,     /* counts toward the soft-bounce rule */
    SUPP_RESET,    /* a delivery: may end a soft-bounce suppression it predates */
};

/*
 * What a canonical event does under a tenant's rules. Sets *reason to a static string
 * ("bounce", "complaint", "unsubscribe", "resubscribe", "soft_bounce", "delivered") for every op but
 * SUPP_NONE. An event without a recipient does nothing; provider `email.suppressed`
 * events are only recorded.
 */
enum supp_op supp_rule(const struct mh_suppression_policy *pol, json_t *ev, const char **reason);

/* "suppress", "lift", "soft", "reset" (the op names mh_suppression_apply takes), or NULL. */
const char *supp_op_name(enum supp_op op);

/*
 * The effect object mh_suppression_apply takes for ev (see the migration), or NULL when
 * the event does nothing (also when its recipient is not an address that
 * supp_address_normalize accepts: such a recipient cannot be mailed, looked up or lifted). fresh: apply it (1) or only report the address's state (0).
 * The time is occurred_at, else received_at. Returns a new reference.
 */
json_t *supp_effect(const struct mh_suppression_policy *pol, json_t *ev, int fresh);

/* Reasons a manual add may give: bounce, complaint, unsubscribe, manual. */
int supp_reason_valid(const char *reason);

/*
 * An address as mailhook keys it: trimmed and lower-cased into out (SUPP_ADDRESS_MAX + 1
 * bytes hold every address). Returns -1 when it is empty, longer than SUPP_ADDRESS_MAX
 * bytes, has no "@", holds a space or a control character, or does not fit outlen.
 */
int supp_address_normalize(const char *in, char *out, size_t outlen);

#endif
