/*
 * resend.c — Resend webhooks, delivered through Svix (Standard Webhooks v1).
 *
 * Verify: svix-id / svix-timestamp / svix-signature (or the webhook-* names) checked
 * with the shared Standard Webhooks functions in stdwh.c against every `secret`
 * (Resend's "whsec_..." signing secret; repeat it during a rotation). The timestamp must
 * be within timestamp_tolerance_s (default 300 s, the reference libraries' window; 0
 * turns the check off). All six headers ride on the raw record.
 *
 * Parse: one JSON object per request, {"type", "created_at", "data"}. Resend's payload
 * has no event id; the Svix message id (svix-id, the same over every retry and covered
 * by the signature) is the event id. A record without it (never from ingest) gets a
 * derived id. The mapping table and the decisions are in docs/providers/resend.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/crypto.h"
#include "mailhook/event.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/stdwh.h"

static const char *const forward[] = {"svix-id", "svix-timestamp", "svix-signature",
                                      "webhook-id", "webhook-timestamp", "webhook-signature",
                                      NULL};

/* ---- init / verify / sign ---- */

/* The headers Resend sends (svix-*), stamped now (stdwh.h). */
static int resend_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                       size_t errlen)
{
    return mh_stdwh_source_sign(src, sr, "svix", err, errlen);
}

/* ---- parse ---- */

static const struct {
    const char *name;
    const char *type;
} event_types[] = {
    {"email.sent", "email.accepted"}, /* Resend accepted the API request */
    {"email.scheduled", "email.scheduled"},
    {"email.delivered", "email.delivered"},
    {"email.delivery_delayed", "email.delivery_delayed"},
    {"email.bounced", "email.bounced"},
    {"email.complained", "email.complained"},
    {"email.opened", "email.opened"},
    {"email.clicked", "email.clicked"},
    {"email.received", "email.received"},
    {"email.failed", "email.failed"},
    {"email.suppressed", "email.suppressed"},
    {"contact.created", "contact.created"},
    {"contact.updated", "contact.updated"},
    {"contact.deleted", "contact.deleted"},
    {"domain.created", "domain.created"},
    {"domain.updated", "domain.updated"},
    {"domain.deleted", "domain.deleted"},
};

static const char *type_of(const char *name, json_t *data)
{
    if (!strcmp(name, "email.bounced")) {
        /* SES subtypes that are no bounce: docs/providers/resend.md, "Bounces". */
        const char *sub = mh_json_str(json_object_get(data, "bounce"), "subType");
        if (sub && !strcasecmp(sub, "OnAccountSuppressionList")) return "email.suppressed";
        if (sub && !strcasecmp(sub, "UnsubscribedRecipient")) return "email.unsubscribed";
    }
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (!strcmp(event_types[i].name, name)) return event_types[i].type;
    return "other";
}

/* Metadata is set with mh_event_meta_set: the message's own tags, set first, win. */

/*
 * Resend's tags (name -> value, as set when sending) are the message's custom data:
 * metadata. An array of {"name", "value"} (the API's shape) is accepted too.
 */
static void set_tags(json_t *ev, json_t *tags)
{
    const char *key;
    json_t *v, *item;
    size_t i;
    json_object_foreach(tags, key, v) mh_event_meta_set(ev, key, v);
    json_array_foreach(tags, i, item) {
        const char *name = mh_json_str(item, "name");
        if (name && *name) mh_event_meta_set(ev, name, json_object_get(item, "value"));
    }
}

/* Recipient strings of data.to (an array, or one string) into out; their count. */
static size_t recipients(json_t *to, json_t *out)
{
    json_t *item;
    size_t i;
    if (json_is_string(to) && *json_string_value(to)) json_array_append(out, to);
    json_array_foreach(to, i, item) {
        if (json_is_string(item) && *json_string_value(item)) json_array_append(out, item);
    }
    return json_array_size(out);
}

/*
 * One recipient: the event's. Several: the event is about the message and does not say
 * which of them it concerns, so recipient stays absent and metadata.to lists them all.
 */
static void set_recipients(json_t *ev, json_t *rcpts)
{
    if (json_array_size(rcpts) == 1)
        mh_event_set_address(ev, "recipient", json_string_value(json_array_get(rcpts, 0)));
    else if (json_array_size(rcpts) > 1)
        mh_event_meta_set(ev, "to", rcpts);
}

static void add_bounce(json_t *ev, json_t *data)
{
    json_t *src = json_object_get(data, "bounce");
    const char *kind = mh_json_str(src, "type"), *sub = mh_json_str(src, "subType");
    json_t *b = mh_event_sub(ev, "bounce");
    mh_bounce_ses_kind(b, kind, sub);
    mh_bounce_set_provider_kind(b, kind, sub);
    mh_event_set_str(b, "diagnostic", mh_json_str(src, "message"));
    /* Resend: email.bounced is a permanent rejection unless the type says otherwise. */
    mh_bounce_classify_as(b, "hard");
    mh_event_meta_set(ev, "bounce_type", json_object_get(src, "type"));
    mh_event_meta_set(ev, "bounce_subtype", json_object_get(src, "subType"));
}

/* Resend will retry: a soft bounce whose reason Resend does not give. */
static void add_delay(json_t *ev)
{
    json_t *b = mh_event_sub(ev, "bounce");
    mh_bounce_classify_as(b, "soft");
    if (!strcmp(mh_json_str(b, "category"), "unclassified"))
        mh_event_set_str(b, "category", "transient_failure");
}

/* click {link, ipAddress, userAgent}; an open object of that shape is read the same way. */
static void add_engagement(json_t *ev, json_t *data, const char *key)
{
    json_t *src = json_object_get(data, key);
    json_t *sub = mh_event_sub(ev, key);
    if (!strcmp(key, "click")) mh_event_set_str(sub, "url", mh_json_str(src, "link"));
    mh_event_set_str(sub, "user_agent", mh_json_str(src, "userAgent"));
    mh_event_set_str(sub, "ip", mh_json_str(src, "ipAddress"));
    if (json_object_size(sub) == 0) json_object_del(ev, key);
}

/* The fields of an email.* event's data. */
static void add_email(json_t *ev, const char *name, const char *type, json_t *data, json_t *rcpts)
{
    mh_event_set_str(ev, "message_id", mh_json_str(data, "email_id"));
    set_tags(ev, json_object_get(data, "tags"));
    set_recipients(ev, rcpts);
    mh_event_set_str(ev, "sender", mh_json_str(data, "from"));
    mh_event_set_str(ev, "subject", mh_json_str(data, "subject"));
    mh_event_meta_set(ev, "smtp_message_id", json_object_get(data, "message_id"));
    mh_event_meta_set(ev, "broadcast_id", json_object_get(data, "broadcast_id"));
    mh_event_meta_set(ev, "template_id", json_object_get(data, "template_id"));

    if (!strcmp(type, "email.bounced")) {
        add_bounce(ev, data);
    } else if (!strcmp(name, "email.bounced")) { /* a suppression or unsubscribe */
        json_t *src = json_object_get(data, "bounce");
        mh_event_meta_set(ev, "bounce_type", json_object_get(src, "type"));
        mh_event_meta_set(ev, "bounce_subtype", json_object_get(src, "subType"));
        mh_event_meta_set(ev, "bounce_message", json_object_get(src, "message"));
    } else if (!strcmp(type, "email.delivery_delayed")) add_delay(ev);
    else if (!strcmp(type, "email.clicked")) add_engagement(ev, data, "click");
    else if (!strcmp(type, "email.opened")) add_engagement(ev, data, "open");
    json_t *failed = json_object_get(data, "failed");
    json_t *supp = json_object_get(data, "suppressed");
    mh_event_meta_set(ev, "failed_reason", json_object_get(failed, "reason"));
    mh_event_meta_set(ev, "suppressed_type", json_object_get(supp, "type"));
    mh_event_meta_set(ev, "suppressed_message", json_object_get(supp, "message"));
}

/* contact.*, domain.*, suppression.* and unknown types: what identifies the object. */
static void add_other(json_t *ev, const char *name, json_t *data)
{
    const char *prefix = !strncmp(name, "domain.", 7)        ? "domain_id"
                         : !strncmp(name, "contact.", 8)     ? "contact_id"
                         : !strncmp(name, "suppression.", 12) ? "suppression_id"
                                                              : "id";
    mh_event_set_address(ev, "recipient", mh_json_str(data, "email"));
    mh_event_meta_set(ev, prefix, json_object_get(data, "id"));
    if (!strncmp(name, "domain.", 7))
        mh_event_meta_set(ev, "domain", json_object_get(data, "name"));
    mh_event_meta_set(ev, "status", json_object_get(data, "status"));
    mh_event_meta_set(ev, "audience_id", json_object_get(data, "audience_id"));
    mh_event_meta_set(ev, "unsubscribed", json_object_get(data, "unsubscribed"));
    mh_event_meta_set(ev, "origin", json_object_get(data, "origin"));
}

static json_t *event_of(const struct mh_raw *raw, json_t *root, char *err, size_t errlen)
{
    const char *name = mh_json_str(root, "type");
    if (!json_is_object(root)) {
        snprintf(err, errlen, "resend: body is not a JSON object");
        return NULL;
    }
    if (!name || !*name) {
        snprintf(err, errlen, "resend: body without \"type\"");
        return NULL;
    }
    json_t *data = json_object_get(root, "data");
    int email = !strncmp(name, "email.", 6);
    if (email && !json_is_object(data)) {
        snprintf(err, errlen, "resend: %.64s without a \"data\" object", name);
        return NULL;
    }
    json_t *rcpts = json_array();
    if (email && recipients(json_object_get(data, "to"), rcpts) == 0) {
        snprintf(err, errlen, "resend: %.64s without a recipient in data.to", name);
        json_decref(rcpts);
        return NULL;
    }

    const char *type = type_of(name, data);
    json_t *ev = mh_event_new(raw, type, name);
    const char *created = mh_json_str(root, "created_at");
    const char *clicked = mh_json_str(json_object_get(data, "click"), "timestamp");
    /* A click says when it happened; every other event is as of created_at. */
    if (!(email && clicked && mh_event_set_time(ev, "occurred_at", clicked) == 0))
        mh_event_set_time(ev, "occurred_at", created);
    if (email) add_email(ev, name, type, data, rcpts);
    else if (json_is_object(data)) add_other(ev, name, data);
    json_decref(rcpts);

    /* Derived id (no svix-id): the raw creation time and the link tell events apart. */
    const char *link = mh_json_str(json_object_get(data, "click"), "link");
    mh_stdwh_event_finish(ev, raw, created, link);
    return ev;
}

/* One event object per request. */
static int parse_object(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                        size_t errlen)
{
    json_t *ev = event_of(raw, obj, err, errlen);
    if (!ev) return -1;
    json_array_append_new(events, ev);
    return 0;
}

static int resend_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "resend", mh_batch_none, parse_object, events, err, errlen);
}

const struct mh_provider mh_provider_resend = {
    .name = "resend",
    .options = mh_stdwh_options,
    .forward_headers = forward,
    .needs_secret = 1,
    .init = mh_stdwh_source_init,
    .verify = mh_stdwh_source_verify,
    .parse = resend_parse,
    .sign = resend_sign,
};
