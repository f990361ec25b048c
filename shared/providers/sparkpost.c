/*
 * sparkpost.c — SparkPost (and Bird Email, the same platform) event webhooks.
 *
 * Verify: SparkPost signs nothing and sends no timestamp. A webhook can carry HTTP Basic
 * credentials (auth_type "basic") and custom headers (custom_headers, or the deprecated
 * auth_token sent as X-MessageSystems-Webhook-Token); the source checks either or both
 * with the shared credential check (cred.h, mh_cred_*): basic_user and/or header,
 * every secret tried in constant time, no credential ever in an error text or on the
 * raw record. OAuth 2 (auth_type "oauth2") would need mailhook to run a token endpoint
 * and is not offered. Replays are stopped by dedup on SparkPost's event_id.
 *
 * Parse: a JSON array of wrappers {"msys": {"<class>_event": {...}}, "cust": {...}}.
 * A wrapper with an empty msys is the ping SparkPost posts when a webhook is created or
 * validated: it yields no event (there is nothing about any message in it). Every
 * member of msys is one event, mapped by its "type" (docs/providers/sparkpost.md);
 * an unknown type is "other". bounce_class drives the bounce class and category (the
 * table below). A malformed wrapper or event fails the whole record, which goes to the
 * dead-letter topic intact.
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

static const struct mh_option_def options[] = {
    MH_CRED_OPT_BASIC_USER,
    MH_CRED_OPT_HEADER,
    {0},
};
/* The batch id is not a credential: kept on the raw record for audits of retries. */
static const char *const forward[] = {"x-messagesystems-batch-id", NULL};

/* ---- event types ---- */

static const struct {
    const char *name;
    const char *type;
} event_types[] = {
    {"injection", "email.accepted"},
    {"delivery", "email.delivered"},
    {"bounce", "email.bounced"},
    {"out_of_band", "email.bounced"}, /* an asynchronous bounce, after acceptance */
    {"delay", "email.delivery_delayed"},
    {"policy_rejection", "email.failed"}, /* or email.suppressed: refusal_type() */
    {"spam_complaint", "email.complained"},
    {"open", "email.opened"},
    {"initial_open", "email.opened"},
    {"amp_open", "email.opened"},
    {"amp_initial_open", "email.opened"},
    {"click", "email.clicked"},
    {"amp_click", "email.clicked"},
    {"generation_failure", "email.failed"},
    {"generation_rejection", "email.failed"},
    {"list_unsubscribe", "email.unsubscribed"},
    {"link_unsubscribe", "email.unsubscribed"},
    {"relay_injection", "email.received"},
};

static const char *base_type(const char *name)
{
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (!strcmp(event_types[i].name, name)) return event_types[i].type;
    return "other";
}

/* ---- bounce classes ---- */

enum kind {
    K_BOUNCE,     /* a bounce with the class and category below */
    K_ADMIN,      /* SparkPost itself refused (its policy, its suppression list) */
    K_AUTO_REPLY, /* not a failure: an auto-reply or a challenge */
    K_UNSUB,      /* the reply was an unsubscribe request */
    K_OTHER,      /* a subscribe request */
};

struct bounce_class {
    int code;
    enum kind kind;
    const char *cls;      /* NULL: the codes decide */
    const char *category; /* NULL: the classifier decides */
    int forced;           /* 1: category as given; 0: only when the classifier finds none */
};

/* SparkPost's Bounce Classification Codes; docs/providers/sparkpost.md explains each row. */
static const struct bounce_class classes[] = {
    {1, K_BOUNCE, "undetermined", NULL, 0},
    {10, K_BOUNCE, "hard", "invalid_recipient", 1},
    {20, K_BOUNCE, "soft", "transient_failure", 0},
    {21, K_BOUNCE, "soft", "dns_failure", 1},
    {22, K_BOUNCE, "soft", "mailbox_full", 1},
    {23, K_BOUNCE, "soft", "protocol_error", 1},
    {24, K_BOUNCE, "soft", "connection_error", 1},
    {25, K_ADMIN, NULL, "policy_rejection", 1},
    {26, K_ADMIN, NULL, "policy_rejection", 1},
    {30, K_BOUNCE, "hard", "invalid_recipient", 1},
    {40, K_BOUNCE, "soft", "unclassified", 0},
    /* Blocks: SparkPost calls them usually temporary; the address is not at fault. */
    {50, K_BOUNCE, "soft", "policy_rejection", 0},
    {51, K_BOUNCE, "soft", "spam_block", 1},
    {52, K_BOUNCE, "soft", "spam_content", 1},
    {53, K_BOUNCE, "soft", "spam_content", 1},
    {54, K_BOUNCE, "soft", "routing_error", 1},
    {60, K_AUTO_REPLY, NULL, NULL, 0},
    {70, K_BOUNCE, "soft", "transient_failure", 0},
    {80, K_OTHER, NULL, NULL, 0},
    {90, K_UNSUB, NULL, NULL, 0},
    {100, K_AUTO_REPLY, NULL, NULL, 0},
};

/* A class SparkPost adds later, or none given: the codes and the text decide. */
static const struct bounce_class unknown_class = {0, K_BOUNCE, NULL, NULL, 0};

static const struct bounce_class *find_class(json_t *obj)
{
    json_int_t code;
    if (mh_json_int(obj, "bounce_class", &code) < 0) return &unknown_class;
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        if (classes[i].code == code) return &classes[i];
    return &unknown_class;
}

/* The full SMTP text (raw_reason) when present, else SparkPost's redacted reason. */
static const char *reason_of(json_t *obj)
{
    const char *r = mh_json_str(obj, "raw_reason");
    return r && *r ? r : mh_json_str(obj, "reason");
}

/*
 * A refusal by SparkPost itself (policy_rejection, or a bounce of class 25/26) is
 * email.suppressed when it names the suppression list, else email.failed.
 */
static const char *refusal_type(json_t *obj, const struct bounce_class *bc)
{
    const char *r = reason_of(obj);
    if (bc->code == 26 || (r && strcasestr(r, "suppress"))) return "email.suppressed";
    return "email.failed";
}

/* The canonical type of a bounce, out_of_band or policy_rejection by its class. */
static const char *failure_type(const char *name, json_t *obj, const struct bounce_class *bc)
{
    if (!strcmp(name, "policy_rejection") || bc->kind == K_ADMIN) return refusal_type(obj, bc);
    switch (bc->kind) {
    case K_AUTO_REPLY: return "email.auto_reply";
    case K_UNSUB: return "email.unsubscribed";
    case K_OTHER: return "other";
    default: return "email.bounced";
    }
}

/* Fills ev's bounce object: codes, diagnostic, then class and category. */
static void add_bounce(json_t *ev, json_t *obj, const char *cls, const char *category,
                       int forced)
{
    json_t *b = mh_event_sub(ev, "bounce");
    json_int_t code;
    if (cls) mh_event_set_str(b, "class", cls);
    if (category && forced) mh_event_set_str(b, "category", category);
    if (mh_json_int(obj, "error_code", &code) == 0 && code >= 200 && code <= 599)
        mh_event_set_int(b, "smtp_code", code);
    mh_event_set_str(b, "diagnostic", reason_of(obj));
    mh_bounce_classify(b);
    if (category && !forced && !strcmp(mh_json_str(b, "category"), "unclassified"))
        mh_event_set_str(b, "category", category);
}

/* delay: SparkPost retries. num_retries counts the failed attempts before this one. */
static void add_delay(json_t *ev, json_t *obj, const struct bounce_class *bc)
{
    add_bounce(ev, obj, "soft", bc->kind == K_BOUNCE ? bc->category : NULL, bc->forced);
    json_t *d = mh_event_sub(ev, "delay");
    json_int_t retries;
    mh_event_set_str(d, "reason", reason_of(obj));
    if (mh_json_int(obj, "num_retries", &retries) == 0 && retries >= 0 && retries < 1000000)
        mh_event_set_int(d, "attempt", retries + 1);
    if (json_object_size(d) == 0) json_object_del(ev, "delay");
}

/*
 * delivery of a delivery, delay or bounce event: queue_time (ms from injection to this
 * attempt), num_retries (failed attempts before this one), outbound_tls ("1" / "0"),
 * sending_ip (the IP SparkPost sent from).
 */
static void add_delivery(json_t *ev, json_t *obj)
{
    struct mh_delivery d = MH_DELIVERY_INIT;
    json_int_t n;
    if (mh_json_int(obj, "queue_time", &n) == 0 && n >= 0) d.duration_ms = n;
    if (mh_json_int(obj, "num_retries", &n) == 0 && n >= 0 && n < 1000000) d.attempt = n + 1;
    if (mh_json_int(obj, "outbound_tls", &n) == 0 && (n == 0 || n == 1)) d.tls = (int)n;
    d.sending_ip = mh_json_str(obj, "sending_ip");
    mh_event_set_delivery(ev, &d);
}

/* ---- common fields ---- */

/* Metadata is set with mh_event_meta_set: rcpt_meta, copied first, wins. */

/* SparkPost details with no canonical field, kept in metadata beside rcpt_meta. */
static const char *const meta_keys[] = {
    "transmission_id", "campaign_id", "template_id", "subaccount_id", "customer_id",
    "ip_pool", "report_by", "report_to", NULL,
};

static void set_metadata(json_t *ev, json_t *obj, const char *event_class, const char *type)
{
    json_t *meta = json_object_get(obj, "rcpt_meta");
    /* A copy: SparkPost details are added to it. */
    if (json_is_object(meta) && json_object_size(meta))
        json_object_set_new(ev, "metadata", json_deep_copy(meta));
    json_t *cls = json_string(event_class);
    mh_event_meta_set(ev, "event_class", cls);
    json_decref(cls);
    for (const char *const *k = meta_keys; *k; k++)
        mh_event_meta_set(ev, *k, json_object_get(obj, *k));
    /* bounce_class is the bounce's provider_subtype; without a bounce it is kept here. */
    if (!json_object_get(ev, "bounce"))
        mh_event_meta_set(ev, "bounce_class", json_object_get(obj, "bounce_class"));
    /* sending_ip is delivery.sending_ip where there is a delivery attempt. */
    if (!json_object_get(ev, "delivery"))
        mh_event_meta_set(ev, "sending_ip", json_object_get(obj, "sending_ip"));
    /* A generation failure has no bounce object: its reason is kept here. */
    const char *reason = reason_of(obj);
    if (!strcmp(type, "email.failed") && !json_object_get(ev, "bounce") && reason) {
        json_t *r = json_string(reason);
        mh_event_meta_set(ev, "reason", r);
        json_decref(r);
    }
}

/* occurred_at from timestamp: Unix seconds as a string (as sent) or a number. */
static void set_occurred(json_t *ev, json_t *ts)
{
    if (json_is_string(ts)) mh_event_set_time(ev, "occurred_at", json_string_value(ts));
    else if (json_is_integer(ts) && json_integer_value(ts) > 0 &&
             json_integer_value(ts) < 253402300800LL) /* before 9999-12-31 */
        mh_event_set_time_ms(ev, "occurred_at", (int64_t)json_integer_value(ts) * 1000);
}

static void add_engagement(json_t *ev, json_t *obj, const char *sub_key)
{
    json_t *sub = mh_event_sub(ev, sub_key);
    if (!strcmp(sub_key, "click")) mh_event_set_str(sub, "url", mh_json_str(obj, "target_link_url"));
    mh_event_set_str(sub, "user_agent", mh_json_str(obj, "user_agent"));
    mh_event_set_str(sub, "ip", mh_json_str(obj, "ip_address"));
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

static void add_complaint(json_t *ev, json_t *obj)
{
    const char *fbtype = mh_json_str(obj, "fbtype");
    if (fbtype && *fbtype) mh_event_set_str(mh_event_sub(ev, "complaint"), "feedback_type", fbtype);
}

/* event_id: a string of digits as sent, or an integer. */
static const char *event_id(json_t *obj, char *buf, size_t len)
{
    json_t *v = json_object_get(obj, "event_id");
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return json_string_value(v);
}

/* ---- parse ---- */

static int parse_event(const struct mh_raw *raw, const char *event_class, json_t *obj,
                       json_t *events, char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "sparkpost: msys.%s is not a JSON object", event_class);
        return -1;
    }
    const char *name = mh_json_str(obj, "type");
    if (!name || !*name) {
        snprintf(err, errlen, "sparkpost: msys.%s has no \"type\"", event_class);
        return -1;
    }
    const struct bounce_class *bc = find_class(obj);
    const char *type = base_type(name);
    int failure = !strcmp(name, "bounce") || !strcmp(name, "out_of_band") ||
                  !strcmp(name, "policy_rejection");
    if (failure) type = failure_type(name, obj, bc);

    const char *rcpt = mh_json_str(obj, "rcpt_to");
    if (!rcpt || !*rcpt) rcpt = mh_json_str(obj, "raw_rcpt_to");
    if (strcmp(type, "other") && (!rcpt || !*rcpt)) {
        snprintf(err, errlen, "sparkpost: %s event without \"rcpt_to\"", name);
        return -1;
    }

    json_t *ev = mh_event_new(raw, type, name);
    mh_event_set_str(ev, "message_id", mh_json_str(obj, "message_id"));
    mh_event_set_address(ev, "recipient", rcpt);
    const char *from = mh_json_str(obj, "friendly_from");
    mh_event_set_str(ev, "sender", from && *from ? from : mh_json_str(obj, "msg_from"));
    mh_event_set_str(ev, "subject", mh_json_str(obj, "subject"));
    set_occurred(ev, json_object_get(obj, "timestamp"));
    mh_event_set_tags(ev, json_object_get(obj, "rcpt_tags"));

    if (!strcmp(type, "email.bounced"))
        add_bounce(ev, obj, bc->cls, bc->category, bc->forced);
    else if (failure && (!strcmp(type, "email.failed") || !strcmp(type, "email.suppressed")))
        add_bounce(ev, obj, NULL, "policy_rejection", 1);
    else if (!strcmp(type, "email.delivery_delayed"))
        add_delay(ev, obj, bc);
    else if (!strcmp(type, "email.complained"))
        add_complaint(ev, obj);
    else if (!strcmp(type, "email.opened"))
        add_engagement(ev, obj, "open");
    else if (!strcmp(type, "email.clicked"))
        add_engagement(ev, obj, "click");
    /*
     * SparkPost's own classification of a failure: the event type (bounce, out_of_band,
     * delay, policy_rejection) and its bounce_class code, both as sent.
     */
    json_t *b = json_object_get(ev, "bounce");
    if (b) {
        char cls[32];
        json_int_t code;
        const char *bclass = mh_json_str(obj, "bounce_class");
        if (!bclass && mh_json_int(obj, "bounce_class", &code) == 0) {
            snprintf(cls, sizeof(cls), "%lld", (long long)code);
            bclass = cls;
        }
        mh_bounce_set_provider_kind(b, name, bclass);
    }
    if (!strcmp(type, "email.delivered") || !strcmp(type, "email.delivery_delayed") ||
        !strcmp(type, "email.bounced"))
        add_delivery(ev, obj);
    set_metadata(ev, obj, event_class, type);

    char idbuf[32];
    const char *id = event_id(obj, idbuf, sizeof(idbuf));
    /* No event_id (never seen): the raw time and a click's link tell events apart. */
    const char *ts = mh_json_str(obj, "timestamp");
    const char *link = mh_json_str(obj, "target_link_url");
    size_t len = 8 + (ts ? strlen(ts) : 0) + (link ? strlen(link) : 0);
    char *extra = mh_malloc(len);
    snprintf(extra, len, "%s\n%s", ts ? ts : "", link ? link : "");
    mh_event_finish(ev, id, extra);
    free(extra);
    json_array_append_new(events, ev);
    return 0;
}

/* One wrapper of the batch: {"msys": {...}}; an empty msys is the ping. */
static int parse_wrapper(const struct mh_raw *raw, json_t *item, json_t *events, char *err,
                         size_t errlen)
{
    if (!json_is_object(item)) {
        snprintf(err, errlen, "sparkpost: batch element is not a JSON object");
        return -1;
    }
    json_t *msys = json_object_get(item, "msys");
    if (!json_is_object(msys)) {
        snprintf(err, errlen, "sparkpost: batch element without an \"msys\" object");
        return -1;
    }
    const char *event_class;
    json_t *obj;
    json_object_foreach(msys, event_class, obj) {
        if (parse_event(raw, event_class, obj, events, err, errlen) < 0) return -1;
    }
    return 0;
}

static int sparkpost_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "sparkpost", NULL, parse_wrapper, events, err, errlen);
}

const struct mh_provider mh_provider_sparkpost = {
    .name = "sparkpost",
    .options = options,
    .forward_headers = forward, /* never the credentials */
    .needs_secret = 1,
    .init = mh_cred_init,
    .fini = NULL,
    .verify = mh_cred_verify,
    .parse = sparkpost_parse,
    .sign = mh_cred_sign,
};
