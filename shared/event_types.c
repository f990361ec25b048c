/* event_types.c — the canonical event types (event_types.h). */
#include "mailhook/event_types.h"

#include <string.h>

const char *const mh_event_types[] = {
    "email.accepted",   "email.sent",         "email.delivered",
    "email.delivery_delayed", "email.bounced", "email.complained",
    "email.opened",     "email.clicked",      "email.unsubscribed",
    "email.resubscribed", "email.suppressed", "email.failed",
    "email.held",       "email.scheduled",    "email.received",
    "email.auto_reply", "domain.created",     "domain.updated",
    "domain.deleted",   "domain.verified",    "domain.dns_error",
    "contact.created",  "contact.updated",    "contact.deleted",
    "account.send_limit", "other",
};
const size_t mh_event_types_n = sizeof(mh_event_types) / sizeof(mh_event_types[0]);

size_t mh_event_type_index(const char *type)
{
    /* A linear scan over 26 short strings: cheaper than hashing at this size. */
    if (type)
        for (size_t i = 0; i + 1 < mh_event_types_n; i++)
            if (!strcmp(type, mh_event_types[i])) return i;
    return mh_event_types_n - 1;
}
