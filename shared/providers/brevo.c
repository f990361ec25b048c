/*
 * brevo.c — Brevo (ex-Sendinblue) transactional email webhooks.
 *
 * Verify: Brevo signs nothing. A webhook can carry HTTP Basic credentials (userinfo in
 * its URL), a bearer token (the webhook's `auth` object) and custom headers; a source
 * checks one or more of them, as configured:
 *   basic_user = NAME    Authorization: Basic NAME:<one of the secrets>
 *   bearer = true        Authorization: Bearer <one of the secrets>
 *   header = X-NAME      the header's value is one of the secrets
 * basic_user and bearer both use the Authorization header, so only one may be set;
 * every configured check must pass. The check is the shared mh_cred_* one (cred.h):
 * constant-time over every secret; no credential is forwarded onto the raw record or put in an error text.
 * There is no timestamp: replays are stopped by dedup.
 *
 * Parse: one event object per request, or a JSON array of them (a "batched" webhook).
 * Brevo has no event id: it is derived (event.h) from message-id, event, email and
 * ts_epoch (milliseconds, UTC — ts, ts_event and date are in the account's time zone
 * and are not used as occurred_at), plus the link of a click. The mapping table and the
 * decisions are in docs/providers/brevo.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/event.h"
#include "mailhook/headers.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/cred.h"

static const struct mh_option_def options[] = {
    MH_CRED_OPT_BASIC_USER,
    MH_CRED_OPT_BEARER,
    MH_CRED_OPT_HEADER,
    {0},
};

/* ---- parse ---- */

/* What an event carries besides the common fields. */
enum detail { D_NONE, D_BOUNCE_HARD, D_BOUNCE_SOFT, D_INVALID, D_DELAY, D_CLICK };

static const struct {
    const char *name; /* Brevo's `event` */
    const char *type; /* canonical type */
    enum detail detail;
} event_types[] = {
    {"request", "email.accepted", D_NONE},
    {"delivered", "email.delivered", D_NONE},
    {"hard_bounce", "email.bounced", D_BOUNCE_HARD},
    {"soft_bounce", "email.bounced", D_BOUNCE_SOFT},   /* Brevo gave up; retries are "deferred" */
    {"invalid_email", "email.bounced", D_INVALID}, /* address refused before sending */
    {"deferred", "email.delivery_delayed", D_DELAY},
    {"blocked", "email.suppressed", D_NONE},         /* on Brevo's blocklist: not sent */
    {"spam", "email.complained", D_NONE},
    {"complaint", "email.complained", D_NONE},
    {"opened", "email.opened", D_NONE},
    {"unique_opened", "email.opened", D_NONE},
    {"proxy_open", "email.opened", D_NONE},
    {"unique_proxy_open", "email.opened", D_NONE},
    {"click", "email.clicked", D_CLICK},
    {"unsubscribed", "email.unsubscribed", D_NONE},
    {"unsubscribe", "email.unsubscribed", D_NONE},
    {"error", "email.failed", D_NONE},
};

/* Metadata is set with mh_event_meta_set: the sender's own custom data, set first, wins. */

/*
 * X-Mailin-custom is the sender's custom header value: a JSON object there is the
 * message's metadata; any other text is kept as metadata.custom.
 */
static void set_custom(json_t *ev, const char *custom)
{
    if (!custom || !*custom) return;
    json_t *v = json_loads(custom, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(v) && json_object_size(v)) {
        json_object_set_new(ev, "metadata", v);
        return;
    }
    json_decref(v);
    json_t *s = json_string(custom);
    mh_event_meta_set(ev, "custom", s);
    json_decref(s);
}

/* tags[] then tag, each once. */
static void set_tags(json_t *ev, json_t *obj)
{
    json_t *tags = json_array(), *item;
    size_t i;
    json_array_foreach(json_object_get(obj, "tags"), i, item) {
        if (json_is_string(item) && *json_string_value(item)) json_array_append(tags, item);
    }
    const char *tag = mh_json_str(obj, "tag");
    int seen = 0;
    json_array_foreach(tags, i, item) seen |= tag && !strcmp(json_string_value(item), tag);
    if (tag && *tag && !seen) json_array_append_new(tags, json_string(tag));
    if (json_array_size(tags)) json_object_set_new(ev, "tags", tags);
    else json_decref(tags);
}

static void add_bounce(json_t *ev, const char *cls, const char *reason, int delayed)
{
    json_t *b = mh_event_sub(ev, "bounce");
    mh_event_set_str(b, "class", cls);
    mh_event_set_str(b, "diagnostic", reason);
    mh_bounce_classify(b);
    if (delayed) {
        if (!strcmp(mh_json_str(b, "category"), "unclassified"))
            mh_event_set_str(b, "category", "transient_failure");
        if (reason && *reason) mh_event_set_str(mh_event_sub(ev, "delay"), "reason", reason);
    }
}

static int parse_object(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                        size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "brevo: event is not a JSON object");
        return -1;
    }
    const char *name = mh_json_str(obj, "event");
    if (!name || !*name) {
        snprintf(err, errlen, "brevo: event object without \"event\"");
        return -1;
    }
    const char *type = "other";
    enum detail detail = D_NONE;
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (!strcmp(event_types[i].name, name)) {
            type = event_types[i].type;
            detail = event_types[i].detail;
        }
    const char *email = mh_json_str(obj, "email");
    if (strcmp(type, "other") && (!email || !*email)) {
        snprintf(err, errlen, "brevo: %.64s event without \"email\"", name);
        return -1;
    }

    json_t *ev = mh_event_new(raw, type, name);
    mh_event_set_str(ev, "message_id", mh_json_str(obj, "message-id"));
    mh_event_set_address(ev, "recipient", email);
    json_int_t ts_epoch;
    int have_ts = mh_json_int(obj, "ts_epoch", &ts_epoch) == 0 && ts_epoch > 0;
    if (have_ts) mh_event_set_time_ms(ev, "occurred_at", ts_epoch);
    mh_event_set_str(ev, "subject", mh_json_str(obj, "subject"));
    set_tags(ev, obj);
    set_custom(ev, mh_json_str(obj, "X-Mailin-custom"));
    mh_event_meta_set(ev, "template_id", json_object_get(obj, "template_id"));
    /* Brevo reports nothing of the receiving server: only the IP it sent from. */
    struct mh_delivery d = MH_DELIVERY_INIT;
    d.sending_ip = mh_json_str(obj, "sending_ip");
    mh_event_set_delivery(ev, &d);
    mh_event_meta_set(ev, "webhook_id", json_object_get(obj, "id"));

    const char *reason = mh_json_str(obj, "reason");
    const char *link = mh_json_str(obj, "link");
    switch (detail) {
    case D_BOUNCE_HARD: add_bounce(ev, "hard", reason, 0); break;
    case D_BOUNCE_SOFT: add_bounce(ev, "soft", reason, 0); break;
    case D_INVALID:
        mh_event_set_str(mh_event_sub(ev, "bounce"), "category", "invalid_recipient");
        add_bounce(ev, "hard", reason, 0);
        break;
    case D_DELAY: add_bounce(ev, "soft", reason, 1); break;
    case D_CLICK:
        if (link && *link) mh_event_set_str(mh_event_sub(ev, "click"), "url", link);
        break;
    case D_NONE: /* blocked, error, ...: Brevo's reason, if any, is metadata */
        mh_event_meta_set(ev, "reason", json_object_get(obj, "reason"));
        break;
    }
    /* proxy_open: Brevo saw the open through a proxy (Apple Mail Privacy Protection). */
    if (strstr(name, "proxy_open")) mh_event_set_machine(ev, "open");

    /*
     * Derived id: the link tells two clicks apart; without ts_epoch, Brevo's local-time
     * stamps stand in for occurred_at (deterministic, but only as fine as they are).
     */
    json_int_t ts = 0;
    if (!have_ts && mh_json_int(obj, "ts_event", &ts) < 0) mh_json_int(obj, "ts", &ts);
    const char *date = have_ts ? NULL : mh_json_str(obj, "date");
    size_t len = 48 + (link ? strlen(link) : 0) + (date ? strlen(date) : 0);
    char *extra = mh_malloc(len);
    snprintf(extra, len, "%s\n%lld\n%s", link ? link : "", have_ts ? 0LL : (long long)ts,
             date ? date : "");
    mh_event_finish(ev, NULL, extra);
    free(extra);
    json_array_append_new(events, ev);
    return 0;
}

static int brevo_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "brevo", NULL, parse_object, events, err, errlen);
}

const struct mh_provider mh_provider_brevo = {
    .name = "brevo",
    .options = options,
    .forward_headers = NULL, /* the credentials stay out of Kafka */
    .needs_secret = 1,
    .init = mh_cred_init, /* cred.h: Basic, bearer and custom-header credentials */
    .fini = NULL,
    .verify = mh_cred_verify,
    .parse = brevo_parse,
    .sign = mh_cred_sign,
};
