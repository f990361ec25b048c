/*
 * mailjet.c — Mailjet (Sinch Mailjet) Event API webhooks ("event tracking").
 *
 * Verify: Mailjet signs nothing and sends no timestamp. Its documentation recommends
 * HTTP Basic credentials in the webhook URL (https://user:password@host/...), which
 * arrive as an Authorization: Basic header; a source checks them (basic_user) and/or a
 * header holding a secret (header, for a proxy in front that adds one), with the shared
 * credential check (cred.h, mh_cred_*): every secret tried in constant time, no
 * credential ever in an error text or on the raw record. Replays are stopped by dedup.
 *
 * Parse: one event object per request, or a JSON array of them (the "grouped" mode,
 * eventcallbackurl Version 2: all events of the last second, types mixed). Each object
 * is mapped by its "event" (docs/providers/mailjet.md); an unknown event is "other".
 * Mailjet has no event id: it is derived (event.h) from MessageID, event, email and
 * time, plus Message_GUID, the clicked url, ip, agent and mj_list_id — all fixed for one
 * event, so a retry of it gets the same id. A bounce's class comes from hard_bounce,
 * its codes and category from the raw SMTP text (comment) and Mailjet's own error
 * classification (the table below). A malformed object fails the whole record, which
 * goes to the dead-letter topic intact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/event.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/cred.h"

static const struct mh_option_def options[] = {
    MH_CRED_OPT_BASIC_USER,
    MH_CRED_OPT_HEADER,
    {0},
};

/* ---- event types ---- */

static const struct {
    const char *name; /* Mailjet's `event` */
    const char *type; /* canonical type; blocked is refined by blocked_type() */
} event_types[] = {
    {"sent", "email.delivered"}, /* the recipient's server accepted it (SMTP 250) */
    {"open", "email.opened"},
    {"click", "email.clicked"},
    {"bounce", "email.bounced"},
    {"blocked", "email.failed"}, /* or email.suppressed: blocked_type() */
    {"spam", "email.complained"},
    {"unsub", "email.unsubscribed"},
};

static const char *base_type(const char *name)
{
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (!strcmp(event_types[i].name, name)) return event_types[i].type;
    return "other";
}

/*
 * A blocked message was never attempted. When Mailjet names the recipient's standing
 * as the cause (an earlier bounce or spam report, the account's exclusion list) the
 * message went to an address Mailjet keeps suppressed: email.suppressed. Anything else
 * (a duplicate in a campaign, a template error, a spam or policy block, a system
 * problem, a bad domain, no reason at all) is a refusal before sending: email.failed.
 */
static const char *blocked_type(const char *related_to, const char *error)
{
    static const char *const suppressed[] = {"preblocked", "spam preblocked", "blacklisted",
                                             "spam reporter", NULL};
    for (const char *const *e = suppressed; error && *e; e++)
        if (!strcmp(*e, error)) return "email.suppressed";
    if (related_to && !strcmp(related_to, "recipient")) return "email.suppressed";
    return "email.failed";
}

/* ---- bounce categories ---- */

/*
 * Mailjet's error values (the "Possible values for errors" table of its Event API
 * guide) as bounce categories. forced: the category as given (Mailjet read the SMTP
 * reply and named the cause precisely); else only when the codes and the text of
 * comment name none. Errors not listed (template errors, ones Mailjet adds later) leave
 * the classifier to decide.
 */
static const struct {
    const char *error;
    const char *category;
    int forced;
} error_categories[] = {
    {"user unknown", "invalid_recipient", 1},
    {"mailbox inactive", "inactive_mailbox", 1},
    {"quota exceeded", "mailbox_full", 1},
    {"blacklisted", "policy_rejection", 1},
    {"spam reporter", "policy_rejection", 1},
    {"invalid domain", "invalid_domain", 1},
    {"typofix", "invalid_domain", 1},
    {"no mail host", "dns_failure", 0},
    {"relay/access denied", "policy_rejection", 0},
    {"greylisted", "transient_failure", 1},
    {"sender blocked", "spam_block", 1},
    {"content blocked", "spam_content", 1},
    {"policy issue", "policy_rejection", 0},
    {"system issue", "transient_failure", 0},
    {"protocol issue", "protocol_error", 0},
    {"connection issue", "connection_error", 0},
    {"preblocked", "policy_rejection", 1},
    {"spam preblocked", "policy_rejection", 1},
    {"duplicate in campaign", "policy_rejection", 1},
};

/* true / false as a JSON boolean, 1 / 0, or the strings "true" / "false"; -1 otherwise. */
static int flag(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_boolean(v)) return json_is_true(v);
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
        return (int)json_integer_value(v);
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "true")) return 1;
    if (s && !strcmp(s, "false")) return 0;
    return -1;
}

static void add_bounce(json_t *ev, json_t *obj)
{
    json_t *b = mh_event_sub(ev, "bounce");
    int hard = flag(obj, "hard_bounce");
    if (hard >= 0) mh_event_set_str(b, "class", hard ? "hard" : "soft");

    const char *error = mh_json_str(obj, "error");
    const char *category = NULL;
    int forced = 0;
    for (size_t i = 0; error && i < sizeof(error_categories) / sizeof(error_categories[0]); i++)
        if (!strcmp(error_categories[i].error, error)) {
            category = error_categories[i].category;
            forced = error_categories[i].forced;
        }
    if (category && forced) mh_event_set_str(b, "category", category);

    /* comment is the raw SMTP reply; without it, Mailjet's error text is all there is. */
    const char *comment = mh_json_str(obj, "comment");
    mh_event_set_str(b, "diagnostic", comment && *comment ? comment : error);
    mh_bounce_classify(b);
    if (category && !forced && !strcmp(mh_json_str(b, "category"), "unclassified"))
        mh_event_set_str(b, "category", category);
    /* Mailjet's own classification: what the error relates to, and the error. */
    mh_event_set_str(b, "provider_type", mh_json_str(obj, "error_related_to"));
    mh_event_set_str(b, "provider_subtype", error);
}

/* ---- common fields ---- */

/* Metadata is set with mh_event_meta_set: the sender's own Payload, set first, wins. */

/* Mailjet ids where 0 means "none" (a transactional message has no campaign). */
static void meta_set_id(json_t *ev, json_t *obj, const char *key)
{
    json_int_t id;
    if (mh_json_int(obj, key, &id) == 0 && id == 0) return;
    mh_event_meta_set(ev, key, json_object_get(obj, key));
}

/*
 * Payload is the sender's EventPayload, a string given at send time: a JSON object
 * there is the message's metadata; any other text is kept as metadata.Payload.
 */
static void set_payload(json_t *ev, const char *payload)
{
    if (!payload || !*payload) return;
    json_t *v = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(v) && json_object_size(v)) {
        json_object_set_new(ev, "metadata", v);
        return;
    }
    json_decref(v);
    json_t *s = json_string(payload);
    mh_event_meta_set(ev, "Payload", s);
    json_decref(s);
}

/*
 * Mailjet details with no canonical field, kept in metadata under Mailjet's names
 * (smtp_reply is delivery.smtp_response; a bounce's error_related_to and error are its
 * provider_type and provider_subtype).
 */
static const char *const meta_keys[] = {
    "CustomID", "Message_GUID", "blocked", "source", "geo", NULL,
};

static void set_metadata(json_t *ev, json_t *obj, const char *name, const char *type)
{
    set_payload(ev, mh_json_str(obj, "Payload"));
    for (const char *const *k = meta_keys; *k; k++)
        mh_event_meta_set(ev, *k, json_object_get(obj, *k));
    if (strcmp(type, "email.bounced")) {
        mh_event_meta_set(ev, "error_related_to", json_object_get(obj, "error_related_to"));
        mh_event_meta_set(ev, "error", json_object_get(obj, "error"));
    }
    meta_set_id(ev, obj, "mj_campaign_id");
    meta_set_id(ev, obj, "mj_contact_id");
    meta_set_id(ev, obj, "mj_list_id");
    /* A bounce's comment is bounce.diagnostic; elsewhere (blocked) it is kept here. */
    if (strcmp(type, "email.bounced"))
        mh_event_meta_set(ev, "comment", json_object_get(obj, "comment"));
    /* ip and agent have canonical fields on opens and clicks only. */
    if (strcmp(name, "open") && strcmp(name, "click")) {
        mh_event_meta_set(ev, "ip", json_object_get(obj, "ip"));
        mh_event_meta_set(ev, "agent", json_object_get(obj, "agent"));
    }
}

/* MessageID: a JSON number (as sent) or a string of digits; 0 is no id. */
static const char *message_id(json_t *obj, char *buf, size_t len)
{
    json_int_t id;
    if (mh_json_int(obj, "MessageID", &id) == 0) {
        if (id <= 0) return NULL;
        snprintf(buf, len, "%lld", (long long)id);
        return buf;
    }
    const char *s = mh_json_str(obj, "MessageID");
    if (s && *s) return s;
    s = mh_json_str(obj, "mj_message_id"); /* deprecated string twin of MessageID */
    return s && *s && strcmp(s, "0") ? s : NULL;
}

/* time: Unix seconds, a number (as sent) or a string of digits. */
static void set_occurred(json_t *ev, json_t *obj)
{
    json_int_t t;
    if (mh_json_int(obj, "time", &t) == 0 && t > 0 && t < 253402300800LL) /* < year 10000 */
        mh_event_set_time_ms(ev, "occurred_at", (int64_t)t * 1000);
}

static void add_engagement(json_t *ev, json_t *obj, const char *sub_key)
{
    json_t *sub = mh_event_sub(ev, sub_key);
    if (!strcmp(sub_key, "click")) mh_event_set_str(sub, "url", mh_json_str(obj, "url"));
    mh_event_set_str(sub, "user_agent", mh_json_str(obj, "agent"));
    mh_event_set_str(sub, "ip", mh_json_str(obj, "ip"));
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

/* A member as text for the derived id: strings as they are, numbers in decimal. */
static const char *id_part(json_t *obj, const char *key, char *buf, size_t len)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return "";
}

/* ---- parse ---- */

static int parse_object(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                        size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "mailjet: event is not a JSON object");
        return -1;
    }
    const char *name = mh_json_str(obj, "event");
    if (!name || !*name) {
        snprintf(err, errlen, "mailjet: event object without \"event\"");
        return -1;
    }
    const char *type = base_type(name);
    if (!strcmp(name, "blocked"))
        type = blocked_type(mh_json_str(obj, "error_related_to"), mh_json_str(obj, "error"));
    const char *email = mh_json_str(obj, "email");
    if (strcmp(type, "other") && (!email || !*email)) {
        snprintf(err, errlen, "mailjet: %.64s event without \"email\"", name);
        return -1;
    }

    json_t *ev = mh_event_new(raw, type, name);
    char idbuf[32];
    mh_event_set_str(ev, "message_id", message_id(obj, idbuf, sizeof(idbuf)));
    mh_event_set_address(ev, "recipient", email);
    set_occurred(ev, obj);
    const char *campaign = mh_json_str(obj, "customcampaign");
    if (campaign && *campaign) {
        json_t *tags = json_array();
        json_array_append_new(tags, json_string(campaign));
        json_object_set_new(ev, "tags", tags);
    }

    if (!strcmp(type, "email.bounced")) add_bounce(ev, obj);
    else if (!strcmp(type, "email.opened")) add_engagement(ev, obj, "open");
    else if (!strcmp(type, "email.clicked")) add_engagement(ev, obj, "click");
    set_metadata(ev, obj, name, type);
    /* The receiving server's reply to a sent message is all Mailjet says of a delivery. */
    struct mh_delivery d = MH_DELIVERY_INIT;
    d.smtp_response = mh_json_str(obj, "smtp_reply");
    mh_event_set_delivery(ev, &d);

    /*
     * Derived id: besides message, event, recipient and time (event.h), the parts that
     * tell two events of one message apart within the same second — the link of a
     * click, the device (ip, agent) of an open, the list of an unsubscribe.
     */
    static const char *const extra_keys[] = {"Message_GUID", "url", "ip", "agent",
                                             "mj_list_id", NULL};
    size_t len = 1;
    for (const char *const *k = extra_keys; *k; k++) {
        const char *s = mh_json_str(obj, *k);
        len += (s ? strlen(s) : 0) + 24;
    }
    char *extra = mh_malloc(len), *p = extra;
    *p = '\0';
    for (const char *const *k = extra_keys; *k; k++) {
        char nbuf[24];
        int n = snprintf(p, len - (size_t)(p - extra), "%s\n", id_part(obj, *k, nbuf, sizeof(nbuf)));
        if (n > 0) p += n;
    }
    mh_event_finish(ev, NULL, extra);
    free(extra);
    json_array_append_new(events, ev);
    return 0;
}

static int mailjet_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "mailjet", NULL, parse_object, events, err, errlen);
}

const struct mh_provider mh_provider_mailjet = {
    .name = "mailjet",
    .options = options,
    .forward_headers = NULL, /* the credentials stay out of Kafka */
    .needs_secret = 1,
    .init = mh_cred_init, /* cred.h: Basic and custom-header credentials */
    .fini = NULL,
    .verify = mh_cred_verify,
    .parse = mailjet_parse,
    .sign = mh_cred_sign,
};
