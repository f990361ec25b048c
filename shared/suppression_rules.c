/*
 * suppression_rules.c — which canonical event does what to its recipient's suppression
 * state, under the tenant's [suppression] rules. Pure functions of the event and the
 * rules, so they are unit-tested without a database.
 *
 *   email.bounced, bounce.class hard        suppress, reason "bounce"     (hard_bounce)
 *   email.bounced, class soft/undetermined  counts toward the soft rule   (soft_bounce_*)
 *   email.delivery_delayed                  counts too, unless soft_bounce_count_delays=false
 *   email.complained                        suppress, reason "complaint"  (complaint)
 *   email.unsubscribed                      suppress, reason "unsubscribe" (unsubscribe)
 *   email.resubscribed                      lift                          (resubscribe)
 *   email.delivered                         resets the soft count; ends a soft-bounce
 *                                           suppression whose window it falls in
 *   email.sent of a provider whose "sent"   the same as email.delivered (GetMailer: its
 *   is the recipient server's acceptance    email.sent is "accepted by recipient's mail
 *                                           server"; its email.delivered, an inbox
 *                                           confirmation, "not all mail servers report")
 *   email.suppressed                        nothing: the provider refused to send to an
 *                                           address it had suppressed; the event is
 *                                           logged, the state it reports is not copied
 * A bounce without a class is undetermined. The soft rule itself (distinct messages
 * within the window, reset by a delivery) runs in PostgreSQL over the event log.
 */
#include <ctype.h>
#include <string.h>

#include "mailhook/log.h"
#include "mailhook/suppression_rules.h"

/* Providers whose email.sent reports the recipient's server accepting the message: the
 * proof of a deliverable address that other providers give as email.delivered. The same
 * list is in mh_is_reset (migrations/0007_accepted_resets_soft_count.sql), which finds the
 * last reset when the soft rule counts. */
static int sent_is_acceptance(json_t *ev)
{
    const char *provider = json_string_value(json_object_get(ev, "provider"));
    return provider && !strcmp(provider, "getmailer");
}

enum supp_op supp_rule(const struct mh_suppression_policy *pol, json_t *ev, const char **reason)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *rcpt = json_string_value(json_object_get(ev, "recipient"));
    *reason = NULL;
    if (!type || !rcpt || !*rcpt) return SUPP_NONE;

    int soft_rule = pol->soft_bounce_threshold > 0;
    if (!strcmp(type, "email.bounced")) {
        const char *cls = json_string_value(json_object_get(json_object_get(ev, "bounce"), "class"));
        if (cls && !strcmp(cls, "hard")) {
            if (!pol->hard_bounce) return SUPP_NONE;
            *reason = "bounce";
            return SUPP_SUPPRESS;
        }
        if (!soft_rule) return SUPP_NONE;
        *reason = "soft_bounce";
        return SUPP_SOFT;
    }
    if (!strcmp(type, "email.delivery_delayed")) {
        if (!soft_rule || !pol->soft_bounce_count_delays) return SUPP_NONE;
        *reason = "soft_bounce";
        return SUPP_SOFT;
    }
    if (!strcmp(type, "email.delivered") || (!strcmp(type, "email.sent") && sent_is_acceptance(ev))) {
        if (!soft_rule) return SUPP_NONE;
        *reason = "delivered";
        return SUPP_RESET;
    }
    if (!strcmp(type, "email.complained")) {
        if (!pol->complaint) return SUPP_NONE;
        *reason = "complaint";
        return SUPP_SUPPRESS;
    }
    if (!strcmp(type, "email.unsubscribed")) {
        if (!pol->unsubscribe) return SUPP_NONE;
        *reason = "unsubscribe";
        return SUPP_SUPPRESS;
    }
    if (!strcmp(type, "email.resubscribed")) {
        if (!pol->resubscribe) return SUPP_NONE;
        *reason = "resubscribe";
        return SUPP_LIFT;
    }
    return SUPP_NONE;
}

const char *supp_op_name(enum supp_op op)
{
    switch (op) {
    case SUPP_SUPPRESS: return "suppress";
    case SUPP_LIFT: return "lift";
    case SUPP_SOFT: return "soft";
    case SUPP_RESET: return "reset";
    case SUPP_NONE: break;
    }
    return NULL;
}

json_t *supp_effect(const struct mh_suppression_policy *pol, json_t *ev, int fresh)
{
    const char *reason;
    enum supp_op op = supp_rule(pol, ev, &reason);
    if (op == SUPP_NONE) return NULL;
    json_t *at = json_object_get(ev, "occurred_at");
    if (!json_is_string(at)) at = json_object_get(ev, "received_at");
    if (!json_is_string(at)) return NULL; /* no time, no place in the register */
    /* Only an address the API and the CLI can name again gets state. */
    char addr[SUPP_ADDRESS_MAX + 1];
    const char *rcpt = json_string_value(json_object_get(ev, "recipient"));
    if (supp_address_normalize(rcpt, addr, sizeof(addr)) < 0) return NULL;

    json_t *e = json_object();
    json_object_set(e, "tenant", json_object_get(ev, "tenant"));
    json_object_set_new(e, "address", json_string(addr));
    json_object_set_new(e, "op", json_string(supp_op_name(op)));
    json_object_set_new(e, "reason", json_string(reason));
    json_object_set(e, "at", at);
    json_object_set(e, "event_id", json_object_get(ev, "event_id"));
    json_object_set(e, "source", json_object_get(ev, "type"));
    json_object_set_new(e, "fresh", json_boolean(fresh));
    if (op == SUPP_SOFT || op == SUPP_RESET) {
        json_object_set_new(e, "threshold", json_integer(pol->soft_bounce_threshold));
        json_object_set_new(e, "window_hours", json_integer(pol->soft_bounce_window_hours));
        json_object_set_new(e, "duration_hours", json_integer(pol->soft_bounce_suppress_hours));
        json_object_set_new(e, "count_delays", json_boolean(pol->soft_bounce_count_delays));
    }
    if (!json_is_string(json_object_get(e, "tenant"))) json_object_set_new(e, "tenant", json_string(""));
    return e;
}

int supp_reason_valid(const char *reason)
{
    static const char *const ok[] = {"bounce", "complaint", "unsubscribe", "manual", NULL};
    for (const char *const *r = ok; reason && *r; r++)
        if (!strcmp(*r, reason)) return 1;
    return 0;
}

int supp_address_normalize(const char *in, char *out, size_t outlen)
{
    if (!in) return -1;
    while (isspace((unsigned char)*in)) in++;
    size_t n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1])) n--;
    if (n == 0 || n > SUPP_ADDRESS_MAX || n + 1 > outlen) return -1;
    int at = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f || c == ' ') return -1;
        if (c == '@') at = 1;
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return at ? 0 : -1;
}
