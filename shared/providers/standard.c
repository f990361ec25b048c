/*
 * standard.c — the generic Standard Webhooks provider, for any sender that signs per
 * the Standard Webhooks spec v1 (https://www.standardwebhooks.com) and posts the small
 * payload shape documented in docs/providers/standard.md.
 *
 * Verify: webhook-id / webhook-timestamp / webhook-signature (or the svix-* names),
 * checked with the shared mh_stdwh_* functions (stdwh.c) against every `secret`
 * ("whsec_..."; repeat it during a rotation), timestamp within timestamp_tolerance_s
 * (default 300 s; 0 turns the check off). All six headers ride on the raw record.
 *
 * Parse: one object per request, {"type", "timestamp", "data"}, the spec's recommended
 * envelope. The spec leaves type names and data open; this provider fixes them: `type`
 * is a mailhook canonical type name (design.md) — any other name becomes "other" with
 * provider_event — and `data` holds the canonical event's own fields (recipient,
 * message_id, bounce, ...). parse has no config (it must give the same result on
 * replay), so the mapping is this fixed one rather than a per-source table. The event
 * id is the webhook-id header (the same over every retry, covered by the signature).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/crypto.h"
#include "mailhook/event.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/stdwh.h"

static const char *const forward[] = {"webhook-id", "webhook-timestamp", "webhook-signature",
                                      "svix-id", "svix-timestamp", "svix-signature", NULL};

/* ---- init / verify / sign ---- */

/* The headers a Standard Webhooks sender sends (webhook-*), stamped now (stdwh.h). */
static int standard_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                         size_t errlen)
{
    return mh_stdwh_source_sign(src, sr, "webhook", err, errlen);
}

/* ---- parse ---- */

/* The canonical types (design.md); a payload type among them is taken as it is. */
static const char *const canonical[] = {
    "email.accepted", "email.sent", "email.delivered", "email.delivery_delayed",
    "email.bounced", "email.complained", "email.opened", "email.clicked",
    "email.unsubscribed", "email.resubscribed", "email.suppressed", "email.failed",
    "email.held", "email.scheduled", "email.received", "email.auto_reply",
    "domain.created", "domain.updated", "domain.deleted", "domain.verified",
    "domain.dns_error", "contact.created", "contact.updated", "contact.deleted",
    "account.send_limit", NULL,
};

static const char *type_of(const char *name)
{
    for (const char *const *t = canonical; *t; t++)
        if (!strcmp(*t, name)) return *t;
    return "other";
}

/* Copies the string members keys of from into the sub-object key of ev (if any). */
static void copy_strs(json_t *ev, const char *key, json_t *from, const char *const *keys)
{
    if (!json_is_object(from)) return;
    for (; *keys; keys++) {
        const char *v = mh_json_str(from, *keys);
        if (v && *v) mh_event_set_str(mh_event_sub(ev, key), *keys, v);
    }
}

static void add_bounce(json_t *ev, const char *type, json_t *src)
{
    static const char *const keys[] = {"class", "category", "enhanced_code", "diagnostic",
                                       "remote_host", NULL};
    json_t *b = mh_event_sub(ev, "bounce");
    copy_strs(ev, "bounce", src, keys);
    const char *cls = mh_json_str(b, "class");
    if (cls && strcmp(cls, "hard") && strcmp(cls, "soft") && strcmp(cls, "undetermined"))
        json_object_del(b, "class");
    json_int_t code;
    if (mh_json_int(src, "smtp_code", &code) == 0) mh_event_set_int(b, "smtp_code", code);
    /* A delay is a soft failure the sender will retry. */
    if (!strcmp(type, "email.delivery_delayed") && !json_object_get(b, "class"))
        mh_event_set_str(b, "class", "soft");
    mh_bounce_classify(b);
}

static void add_delay(json_t *ev, json_t *src)
{
    if (!json_is_object(src)) return;
    json_t *d = mh_event_sub(ev, "delay");
    json_int_t attempt;
    mh_event_set_str(d, "reason", mh_json_str(src, "reason"));
    if (mh_json_int(src, "attempt", &attempt) == 0) mh_event_set_int(d, "attempt", attempt);
    mh_event_set_time(d, "next_retry_at", mh_json_str(src, "next_retry_at"));
    if (json_object_size(d) == 0) json_object_del(ev, "delay");
}

/* data -> the canonical fields; -1 with err when a field has the wrong shape. */
static int add_data(json_t *ev, const char *type, json_t *data, char *err, size_t errlen)
{
    static const char *const engagement[] = {"url", "user_agent", "ip", NULL};
    static const char *const complaint[] = {"feedback_type", NULL};
    json_t *tags = json_object_get(data, "tags"), *meta = json_object_get(data, "metadata");
    if (tags && !json_is_array(tags)) {
        snprintf(err, errlen, "standard: data.tags is not an array");
        return -1;
    }
    if (meta && !json_is_object(meta)) {
        snprintf(err, errlen, "standard: data.metadata is not an object");
        return -1;
    }
    mh_event_set_str(ev, "message_id", mh_json_str(data, "message_id"));
    mh_event_set_address(ev, "recipient", mh_json_str(data, "recipient"));
    mh_event_set_str(ev, "sender", mh_json_str(data, "sender"));
    mh_event_set_str(ev, "subject", mh_json_str(data, "subject"));
    json_t *out = json_array(), *item;
    size_t i;
    json_array_foreach(tags, i, item) {
        if (json_is_string(item) && *json_string_value(item)) json_array_append(out, item);
    }
    if (json_array_size(out)) json_object_set_new(ev, "tags", out);
    else json_decref(out);
    if (json_object_size(meta)) json_object_set_new(ev, "metadata", json_deep_copy(meta));

    if (!strcmp(type, "email.bounced") || !strcmp(type, "email.delivery_delayed"))
        add_bounce(ev, type, json_object_get(data, "bounce"));
    if (!strcmp(type, "email.delivery_delayed")) add_delay(ev, json_object_get(data, "delay"));
    if (!strcmp(type, "email.complained"))
        copy_strs(ev, "complaint", json_object_get(data, "complaint"), complaint);
    if (!strcmp(type, "email.clicked"))
        copy_strs(ev, "click", json_object_get(data, "click"), engagement);
    if (!strcmp(type, "email.opened"))
        copy_strs(ev, "open", json_object_get(data, "open"), engagement + 1);
    return 0;
}

static json_t *event_of(const struct mh_raw *raw, json_t *root, char *err, size_t errlen)
{
    if (!json_is_object(root)) {
        snprintf(err, errlen, "standard: body is not a JSON object");
        return NULL;
    }
    const char *name = mh_json_str(root, "type");
    if (!name || !*name) {
        snprintf(err, errlen, "standard: body without \"type\"");
        return NULL;
    }
    json_t *data = json_object_get(root, "data");
    if (data && !json_is_object(data)) {
        snprintf(err, errlen, "standard: \"data\" is not an object");
        return NULL;
    }
    const char *type = type_of(name);
    const char *rcpt = mh_json_str(data, "recipient");
    if (!strncmp(type, "email.", 6) && (!rcpt || !*rcpt)) {
        snprintf(err, errlen, "standard: %.64s without data.recipient", name);
        return NULL;
    }
    json_t *ts = json_object_get(root, "timestamp");
    const char *when = json_string_value(ts);
    json_t *ev = mh_event_new(raw, type, name);
    if (ts && !json_is_null(ts) && (!when || mh_event_set_time(ev, "occurred_at", when) < 0)) {
        snprintf(err, errlen, "standard: \"timestamp\" is not an RFC 3339 time");
        json_decref(ev);
        return NULL;
    }
    if (data && add_data(ev, type, data, err, errlen) < 0) {
        json_decref(ev);
        return NULL;
    }
    /* Derived id (no webhook-id): the raw time text and the link tell events apart. */
    const char *url = mh_json_str(json_object_get(data, "click"), "url");
    mh_stdwh_event_finish(ev, raw, when, url);
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

static int standard_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "standard", mh_batch_none, parse_object, events, err, errlen);
}

const struct mh_provider mh_provider_standard = {
    .name = "standard",
    .options = mh_stdwh_options,
    .forward_headers = forward,
    .needs_secret = 1,
    .dedup_per_source = 1,
    .init = mh_stdwh_source_init,
    .verify = mh_stdwh_source_verify,
    .parse = standard_parse,
    .sign = standard_sign,
};
