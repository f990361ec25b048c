/*
 * postmark.c — Postmark webhooks (Delivery, Bounce, SpamComplaint, Open, Click,
 * SubscriptionChange).
 *
 * Verify: Postmark signs nothing. A webhook can carry HTTP Basic credentials (HttpAuth,
 * or userinfo in the URL) and custom headers (HttpHeaders); a source checks either or
 * both, as configured:
 *   basic_user = NAME    Authorization: Basic NAME:<one of the secrets>
 *   header     = X-NAME  the header's value is one of the secrets
 * With both set, both must match. Comparisons are constant-time over every secret
 * (cred.h). Neither credential is forwarded onto the raw record, and none is ever
 * put into an error text. There is no timestamp: replays are stopped by dedup.
 *
 * Parse: one JSON object per request, discriminated by RecordType. Bounce and
 * SpamComplaint records carry Postmark's bounce ID (an int64 — read as an integer,
 * never through a double), which is the event id. The other records have no id: it is
 * derived (event.h) from message id, record type, recipient, time, plus the raw time
 * text (7 fractional digits, finer than occurred_at's milliseconds), the link of a
 * click and the direction of a subscription change. The table of bounce types and the
 * SubscriptionChange mapping are in docs/providers/postmark.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/event.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/cred.h"

/* Postmark's placeholder message id (e.g. manual suppressions): not a message id. */
#define NIL_MESSAGE_ID "00000000-0000-0000-0000-000000000000"

static const struct mh_option_def options[] = {
    MH_CRED_OPT_BASIC_USER,
    MH_CRED_OPT_HEADER,
    {0},
};

/* ---- parse: bounce types ---- */

struct bounce_map {
    json_int_t code;      /* TypeCode */
    const char *name;     /* Type */
    const char *type;     /* canonical type */
    const char *cls;      /* bounce.class; NULL: the codes (or Inactive) decide */
    const char *category; /* NULL: the classifier decides */
    int forced;           /* 1: category as given; 0: only when the classifier finds none */
};

/* Postmark's BounceTypeCode enum; docs/providers/postmark.md explains each row. */
static const struct bounce_map bounce_types[] = {
    {1, "HardBounce", "email.bounced", "hard", NULL, 0},
    {2, "Transient", "email.delivery_delayed", "soft", "transient_failure", 0},
    {16, "Unsubscribe", "email.unsubscribed", NULL, NULL, 0},
    {32, "Subscribe", "other", NULL, NULL, 0},
    {64, "AutoResponder", "email.auto_reply", NULL, NULL, 0},
    {128, "AddressChange", "email.auto_reply", NULL, NULL, 0},
    {256, "DnsError", "email.bounced", "soft", "dns_failure", 1},
    {512, "SpamNotification", "email.bounced", "soft", "spam_block", 0},
    {1024, "OpenRelayTest", "other", NULL, NULL, 0},
    {2048, "Unknown", "email.bounced", NULL, NULL, 0},
    {4096, "SoftBounce", "email.bounced", "soft", "transient_failure", 0},
    {8192, "VirusNotification", "email.bounced", "soft", "spam_content", 1},
    {16384, "ChallengeVerification", "email.auto_reply", NULL, NULL, 0},
    {100000, "BadEmailAddress", "email.bounced", "hard", "invalid_recipient", 1},
    {100001, "SpamComplaint", "email.complained", NULL, NULL, 0},
    {100002, "ManuallyDeactivated", "email.suppressed", NULL, NULL, 0},
    {100003, "Unconfirmed", "email.bounced", "hard", "policy_rejection", 1},
    {100006, "Blocked", "email.bounced", "soft", "spam_block", 0},
    {100007, "SMTPApiError", "email.failed", NULL, NULL, 0},
    {100008, "InboundError", "other", NULL, NULL, 0},
    {100009, "DMARCPolicy", "email.failed", "soft", "policy_rejection", 1},
    {100010, "TemplateRenderingFailed", "email.failed", NULL, NULL, 0},
    {0, NULL, NULL, NULL, NULL, 0},
};

/* A bounce type Postmark adds later: a bounce all the same, judged by its text. */
static const struct bounce_map unknown_bounce = {0, NULL, "email.bounced", NULL, NULL, 0};

static const struct bounce_map *find_bounce_code(json_int_t code)
{
    for (const struct bounce_map *m = bounce_types; m->name; m++)
        if (m->code == code) return m;
    return NULL;
}

/* By TypeCode (stable) first, then by the Type name. */
static const struct bounce_map *find_bounce(json_t *obj)
{
    json_t *code = json_object_get(obj, "TypeCode");
    const char *name = mh_json_str(obj, "Type");
    const struct bounce_map *m = json_is_integer(code) ? find_bounce_code(json_integer_value(code))
                                                       : NULL;
    if (m) return m;
    if (name)
        for (const struct bounce_map *r = bounce_types; r->name; r++)
            if (!strcasecmp(r->name, name)) return r;
    return &unknown_bounce;
}

/*
 * Postmark's bounce ID as decimal text into buf: a JSON integer (jansson reads it as
 * int64) or a string of digits. -1 when absent or anything else.
 */
static int bounce_id(json_t *obj, char *buf, size_t len)
{
    json_t *v = json_object_get(obj, "ID");
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) >= len || strspn(s, "0123456789") != strlen(s)) return -1;
    snprintf(buf, len, "%s", s);
    return 0;
}

/* ---- parse: fields ---- */

/* Metadata is set with mh_event_meta_set: the sender's own Metadata, set first, wins. */

/* What every record type has: message id, recipient, time, tag, metadata, stream. */
static void add_common(json_t *ev, json_t *obj, const char *rcpt, const char *time_text)
{
    const char *mid = mh_json_str(obj, "MessageID");
    if (mid && strcmp(mid, NIL_MESSAGE_ID)) mh_event_set_str(ev, "message_id", mid);
    mh_event_set_address(ev, "recipient", rcpt);
    mh_event_set_time(ev, "occurred_at", time_text);
    const char *tag = mh_json_str(obj, "Tag");
    if (tag && *tag) {
        json_t *tags = json_array();
        json_array_append_new(tags, json_string(tag));
        json_object_set_new(ev, "tags", tags);
    }
    json_t *meta = json_object_get(obj, "Metadata");
    /* A copy: Postmark details are added to it below. */
    if (json_is_object(meta) && json_object_size(meta))
        json_object_set_new(ev, "metadata", json_deep_copy(meta));
    mh_event_meta_set(ev, "message_stream", json_object_get(obj, "MessageStream"));
}

static void add_bounce(json_t *ev, json_t *obj, const struct bounce_map *m)
{
    const char *details = mh_json_str(obj, "Details");
    json_t *b = mh_event_sub(ev, "bounce");
    const char *cls = m->cls;
    /* Postmark deactivated the address: its own verdict that the failure is permanent. */
    if (!cls && json_is_true(json_object_get(obj, "Inactive"))) cls = "hard";
    if (cls) mh_event_set_str(b, "class", cls);
    if (m->category && m->forced) mh_event_set_str(b, "category", m->category);
    mh_event_set_str(b, "diagnostic", details);
    mh_bounce_set_provider_kind(b, mh_json_str(obj, "Type"), NULL);
    mh_bounce_classify(b);
    if (m->category && !strcmp(mh_json_str(b, "category"), "unclassified"))
        mh_event_set_str(b, "category", m->category);
    if (!strcmp(json_string_value(json_object_get(ev, "type")), "email.delivery_delayed") &&
        details && *details)
        mh_event_set_str(mh_event_sub(ev, "delay"), "reason", details);
}

/* Bounce and SpamComplaint records: the same shape. NULL with err when malformed. */
static json_t *parse_bounce(const struct mh_raw *raw, json_t *obj, const char *record, char *err,
                            size_t errlen)
{
    char id[32];
    if (bounce_id(obj, id, sizeof(id)) < 0) {
        snprintf(err, errlen, "postmark: %s record without an integer \"ID\"", record);
        return NULL;
    }
    const char *email = mh_json_str(obj, "Email");
    if (!email || !*email) {
        snprintf(err, errlen, "postmark: %s record without \"Email\"", record);
        return NULL;
    }
    /* A SpamComplaint record is a complaint whatever its Type says. */
    const struct bounce_map *m = !strcmp(record, "SpamComplaint") ? find_bounce_code(100001)
                                                                   : find_bounce(obj);
    const char *name = mh_json_str(obj, "Type");
    json_t *ev = mh_event_new(raw, m->type, name && *name ? name : record);
    add_common(ev, obj, email, mh_json_str(obj, "BouncedAt"));
    mh_event_set_str(ev, "sender", mh_json_str(obj, "From"));
    mh_event_set_str(ev, "subject", mh_json_str(obj, "Subject"));
    if (!strcmp(m->type, "email.bounced") || !strcmp(m->type, "email.delivery_delayed") || m->cls)
        add_bounce(ev, obj, m);
    mh_event_finish(ev, id, NULL);
    return ev;
}

/* SubscriptionChange: docs/providers/postmark.md, "Subscription changes". */
static const char *subscription_type(json_t *obj)
{
    if (!json_is_true(json_object_get(obj, "SuppressSending"))) return "email.resubscribed";
    const char *reason = mh_json_str(obj, "SuppressionReason");
    /* The cause arrives as its own Bounce / SpamComplaint record, which suppresses. */
    if (reason && (!strcasecmp(reason, "HardBounce") || !strcasecmp(reason, "SpamComplaint")))
        return "email.suppressed";
    return "email.unsubscribed";
}

/* The record's time field by RecordType (an unknown type: the first one present). */
static const char *time_text(json_t *obj, const char *record)
{
    static const char *const keys[] = {"DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt", NULL};
    if (!strcmp(record, "Delivery")) return mh_json_str(obj, "DeliveredAt");
    if (!strcmp(record, "Open") || !strcmp(record, "Click")) return mh_json_str(obj, "ReceivedAt");
    if (!strcmp(record, "SubscriptionChange")) return mh_json_str(obj, "ChangedAt");
    for (const char *const *k = keys; *k; k++)
        if (mh_json_str(obj, *k)) return mh_json_str(obj, *k);
    return NULL;
}

static void add_engagement(json_t *ev, json_t *obj, const char *sub_key)
{
    json_t *sub = mh_event_sub(ev, sub_key);
    if (!strcmp(sub_key, "click")) mh_event_set_str(sub, "url", mh_json_str(obj, "OriginalLink"));
    mh_event_set_str(sub, "user_agent", mh_json_str(obj, "UserAgent"));
    mh_event_set_str(sub, "ip", mh_json_str(json_object_get(obj, "Geo"), "IP"));
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

/* Delivery, Open, Click, SubscriptionChange and unknown record types: no event id. */
static json_t *parse_other(const struct mh_raw *raw, json_t *obj, const char *record, char *err,
                           size_t errlen)
{
    const char *type = "other";
    if (!strcmp(record, "Delivery")) type = "email.delivered";
    else if (!strcmp(record, "Open")) type = "email.opened";
    else if (!strcmp(record, "Click")) type = "email.clicked";
    else if (!strcmp(record, "SubscriptionChange")) type = "SubscriptionChange";

    const char *rcpt = mh_json_str(obj, "Recipient");
    if (!rcpt || !*rcpt) rcpt = mh_json_str(obj, "Email");
    if (strcmp(type, "other") && (!rcpt || !*rcpt)) {
        snprintf(err, errlen, "postmark: %s record without \"Recipient\"", record);
        return NULL;
    }
    json_t *suppress = json_object_get(obj, "SuppressSending");
    if (!strcmp(type, "SubscriptionChange")) {
        if (!json_is_boolean(suppress)) {
            snprintf(err, errlen,
                     "postmark: SubscriptionChange without a boolean \"SuppressSending\"");
            return NULL;
        }
        type = subscription_type(obj);
    }

    const char *when = time_text(obj, record);
    json_t *ev = mh_event_new(raw, type, record);
    add_common(ev, obj, rcpt, when);
    if (!strcmp(type, "email.delivered")) {
        /* Details: the receiving server's answer ("smtp;250 2.0.0 OK ..."). */
        struct mh_delivery d = MH_DELIVERY_INIT;
        d.smtp_response = mh_json_str(obj, "Details");
        mh_event_set_delivery(ev, &d);
    } else if (!strcmp(type, "email.opened")) {
        add_engagement(ev, obj, "open");
        mh_event_meta_set(ev, "first_open", json_object_get(obj, "FirstOpen"));
    } else if (!strcmp(type, "email.clicked")) {
        add_engagement(ev, obj, "click");
        mh_event_meta_set(ev, "click_location", json_object_get(obj, "ClickLocation"));
    } else if (!strcmp(record, "SubscriptionChange")) {
        mh_event_meta_set(ev, "suppress_sending", suppress);
        mh_event_meta_set(ev, "suppression_reason", json_object_get(obj, "SuppressionReason"));
        mh_event_meta_set(ev, "origin", json_object_get(obj, "Origin"));
    }

    /* The raw time (finer than ms), the link and the direction tell events apart. */
    const char *link = mh_json_str(obj, "OriginalLink");
    size_t len = 64 + (when ? strlen(when) : 0) + (link ? strlen(link) : 0);
    char *extra = mh_malloc(len);
    snprintf(extra, len, "%s\n%s\n%s", when ? when : "",
             !strcmp(type, "email.clicked") && link ? link : "",
             json_is_boolean(suppress) ? (json_is_true(suppress) ? "suppress" : "reactivate") : "");
    mh_event_finish(ev, NULL, extra);
    free(extra);
    return ev;
}

static int postmark_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)raw->body, raw->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "postmark: invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    json_t *ev = NULL;
    const char *record = mh_json_str(root, "RecordType");
    if (!json_is_object(root))
        snprintf(err, errlen, "postmark: body is not a JSON object");
    else if (!record || !*record)
        snprintf(err, errlen, "postmark: body without \"RecordType\"");
    else if (!strcmp(record, "Bounce") || !strcmp(record, "SpamComplaint"))
        ev = parse_bounce(raw, root, record, err, errlen);
    else
        ev = parse_other(raw, root, record, err, errlen);
    json_decref(root);
    if (!ev) return -1;
    json_array_append_new(events, ev);
    return 0;
}

const struct mh_provider mh_provider_postmark = {
    .name = "postmark",
    .options = options,
    .forward_headers = NULL, /* the credentials stay out of Kafka */
    .needs_secret = 1,
    .init = mh_cred_init, /* cred.h: the Basic / custom-header credentials */
    .fini = NULL,
    .verify = mh_cred_verify,
    .parse = postmark_parse,
    .sign = mh_cred_sign,
};
