/*
 * getmailer.c — GetMailer (getmailer.co) webhooks.
 *
 * Verify: `X-GetMailer-Signature: sha256=<hex>`, the hex HMAC-SHA256 of the request
 * body with the endpoint's signing secret. GetMailer's two pages disagree on details:
 * both show the "sha256=" prefix and hex, but the docs' Node sample hashes
 * JSON.stringify(req.body) (re-serialized JSON) rather than the bytes received. We verify
 * the exact raw body only — re-serializing JSON in C cannot reproduce another runtime's
 * serializer, and for the compact bodies a webhook sender emits the two are the same
 * bytes. The prefix is optional (either case) and the hex may be upper case; nothing
 * else is accepted. The scheme carries no timestamp, and the payload's own `timestamp`
 * is the event's time, which stays the same over GetMailer's retries (up to 24 h later),
 * so it cannot serve as a freshness check: replays are stopped by dedup on the event id.
 *
 * Parse: {"id": "evt_...", "type": "email.delivered", "timestamp" | "created_at": ...,
 * "data": {...}} — one object, or a batch as a JSON array (or {"events": [...]}), since
 * the batch format is not documented. `data` comes in camelCase (docs page: emailId,
 * deliveredAt) or snake_case (features page: email_id, smtp_response); both are read.
 * The event id is the payload's `id`. GetMailer's type names are mailhook's own
 * (email.*, contact.*, domain.*), so the mapping is mostly identity. The exception is
 * contact.deleted, GetMailer's signal for what ends a contact's mail: its reason
 * unsubscribed, bounced (a hard bounce) or complained makes it email.unsubscribed,
 * email.bounced (class hard) or email.complained, so the suppression rules see it;
 * provider_event stays contact.deleted. Reason manual (or none) stays contact.deleted.
 *
 * What has no canonical field goes into metadata, next to the sender's own metadata
 * (whose keys win on a clash): suppression reason (BOUNCE | COMPLAINT | MANUAL) and the
 * time of the event that caused it, a bounce's bounceReason (next to its
 * diagnosticCode, which is bounce.diagnostic), contact and audience ids, contact deletion reason
 * (unsubscribed | manual | bounced | complained), domain ids and DNS verification flags,
 * the schedule of a scheduled email, and attachment metadata (name, type, size — never
 * content) of a received email.
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
#include "mailhook/verify.h"

#define SIG_HEADER "x-getmailer-signature"

static const char *const forward[] = {SIG_HEADER, NULL};

static enum mh_verdict getmailer_verify(const struct mh_source *src,
                                        const struct mh_request *req, char *err, size_t errlen)
{
    const char *sig = mh_headers_get(req->headers, SIG_HEADER);
    if (!sig || !*sig) {
        snprintf(err, errlen, "signature header \"%s\" missing", SIG_HEADER);
        return MH_VERIFY_REJECT;
    }
    while (*sig == ' ') sig++;
    if (!strncasecmp(sig, "sha256=", 7)) sig += 7;
    if (strlen(sig) != 64) {
        snprintf(err, errlen, "signature in \"%s\" is not a hex SHA-256 HMAC", SIG_HEADER);
        return MH_VERIFY_REJECT;
    }
    struct mh_buf body = {req->body, req->body_len};
    if (mh_verify_hmac_any(src, "sha256", &body, 1, sig, MH_SIG_HEX)) return MH_VERIFY_OK;
    snprintf(err, errlen, "signature in \"%s\" does not match any active secret", SIG_HEADER);
    return MH_VERIFY_REJECT;
}

/* What GetMailer would send: "sha256=" and the hex HMAC with the newest secret. */
static int getmailer_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                          size_t errlen)
{
    char sig[2 * MH_MAX_MD + 1], value[2 * MH_MAX_MD + 16];
    struct mh_buf body = {sr->body, sr->body_len};
    if (mh_sign_hmac(src, "sha256", &body, 1, MH_SIG_HEX, sig) < 0) {
        snprintf(err, errlen, "source has no secret to sign with");
        return -1;
    }
    snprintf(value, sizeof(value), "sha256=%s", sig);
    mh_headers_add(sr->headers, "X-GetMailer-Signature", value);
    return 0;
}

/* ---- parse ---- */

static const char *const known_types[] = {
    "email.sent",        "email.delivered",        "email.bounced",     "email.complained",
    "email.opened",      "email.clicked",          "email.unsubscribed", "email.delivery_delayed",
    "email.suppressed",  "email.scheduled",        "email.received",    "contact.created",
    "contact.updated",   "contact.deleted",        "domain.created",    "domain.updated",
    "domain.deleted",    "domain.verified",        NULL,
};

static const char *canonical_type(const char *type)
{
    for (const char *const *t = known_types; *t; t++)
        if (!strcmp(*t, type)) return *t;
    return "other";
}

/* data's member under its camelCase or snake_case name. */
static json_t *field(json_t *data, const char *camel, const char *snake)
{
    json_t *v = json_object_get(data, camel);
    if ((!v || json_is_null(v)) && snake) v = json_object_get(data, snake);
    return json_is_null(v) ? NULL : v;
}

static const char *field_str(json_t *data, const char *camel, const char *snake)
{
    return json_string_value(field(data, camel, snake));
}

/* Sets metadata[key] to data's member (any JSON value) unless the key is already set. */
static void meta_copy(json_t *ev, json_t *data, const char *key, const char *camel,
                      const char *snake)
{
    json_t *v = field(data, camel, snake);
    if (!v || (json_is_string(v) && !*json_string_value(v))) return;
    json_t *meta = mh_event_sub(ev, "metadata");
    if (!json_object_get(meta, key)) json_object_set(meta, key, v);
}

static void meta_time(json_t *ev, json_t *data, const char *key, const char *camel,
                      const char *snake)
{
    json_t *tmp = json_object();
    if (mh_event_set_time(tmp, key, field_str(data, camel, snake)) == 0) {
        json_t *meta = mh_event_sub(ev, "metadata");
        if (!json_object_get(meta, key)) json_object_set(meta, key, json_object_get(tmp, key));
    }
    json_decref(tmp);
}

/* The recipient: a string, or an array holding exactly one string. */
static const char *single_address(json_t *v)
{
    if (json_is_array(v) && json_array_size(v) == 1) v = json_array_get(v, 0);
    return json_string_value(v);
}

/* When it happened: the type's own "<verb>At" time, else the envelope's time. */
static void set_occurred(json_t *ev, json_t *root, json_t *data)
{
    static const char *const at[][2] = {
        {"deliveredAt", "delivered_at"}, {"openedAt", "opened_at"},
        {"clickedAt", "clicked_at"},     {"complainedAt", "complained_at"},
        {"delayedAt", "delayed_at"},     {"suppressedAt", "suppressed_at"},
        {"receivedAt", "received_at"},   {"bouncedAt", "bounced_at"},
        {"sentAt", "sent_at"},           {"unsubscribedAt", "unsubscribed_at"},
        {"verifiedAt", "verified_at"},   {"deletedAt", "deleted_at"},
        {"updatedAt", "updated_at"},     {"createdAt", "created_at"},
    };
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        if (mh_event_set_time(ev, "occurred_at", field_str(data, at[i][0], at[i][1])) == 0) return;
    if (mh_event_set_time(ev, "occurred_at", mh_json_str(root, "timestamp")) == 0) return;
    mh_event_set_time(ev, "occurred_at", mh_json_str(root, "created_at"));
}

static void add_message_fields(json_t *ev, json_t *data)
{
    mh_event_set_str(ev, "message_id", field_str(data, "emailId", "email_id"));
    mh_event_set_address(ev, "recipient", single_address(field(data, "to", NULL)));
    mh_event_set_str(ev, "sender", field_str(data, "from", NULL));
    mh_event_set_str(ev, "subject", field_str(data, "subject", NULL));
    mh_event_set_tags(ev, field(data, "tags", NULL));
    json_t *meta = field(data, "metadata", NULL);
    if (json_is_object(meta) && json_object_size(meta)) {
        json_t *copy = json_deep_copy(meta);
        json_object_set_new(ev, "metadata", copy);
    }
}

static void add_bounce(json_t *ev, json_t *data)
{
    json_t *b = mh_event_sub(ev, "bounce");
    const char *kind = field_str(data, "bounceType", "bounce_type");
    const char *diag = field_str(data, "diagnosticCode", "diagnostic_code");
    if (!diag) diag = field_str(data, "smtpResponse", "smtp_response");
    if (!diag) diag = field_str(data, "bounceReason", "bounce_reason");
    else meta_copy(ev, data, "bounce_reason", "bounceReason", "bounce_reason");
    if (kind && !strcasecmp(kind, "hard")) mh_event_set_str(b, "class", "hard");
    if (kind && !strcasecmp(kind, "soft")) mh_event_set_str(b, "class", "soft");
    mh_bounce_set_provider_kind(b, kind, NULL);
    mh_event_set_str(b, "diagnostic", diag);
    mh_bounce_classify(b);
}

/* contact.deleted: the type its reason means for the address (see the top). */
static const char *deleted_type(json_t *data)
{
    const char *reason = field_str(data, "reason", NULL);
    if (!reason) return "contact.deleted";
    if (!strcasecmp(reason, "unsubscribed")) return "email.unsubscribed";
    if (!strcasecmp(reason, "bounced")) return "email.bounced";
    if (!strcasecmp(reason, "complained")) return "email.complained";
    return "contact.deleted";
}

/* A contact removed for a hard bounce: GetMailer's verdict, without codes or text. */
static void add_contact_bounce(json_t *ev)
{
    json_t *b = mh_event_sub(ev, "bounce");
    mh_bounce_classify_as(b, "hard");
}

static void add_delay(json_t *ev, json_t *data)
{
    json_t *d = mh_event_sub(ev, "delay");
    json_int_t attempt;
    mh_event_set_str(d, "reason", field_str(data, "reason", NULL));
    if ((mh_json_int(data, "retryCount", &attempt) == 0 ||
         mh_json_int(data, "retry_count", &attempt) == 0) &&
        attempt >= 0)
        mh_event_set_int(d, "attempt", attempt);
    mh_event_set_time(d, "next_retry_at", field_str(data, "nextRetryAt", "next_retry_at"));
    if (json_object_size(d) == 0) json_object_del(ev, "delay");
}

static void add_engagement(json_t *ev, json_t *data, const char *sub_key)
{
    json_t *sub = mh_event_sub(ev, sub_key);
    if (!strcmp(sub_key, "click")) {
        const char *url = field_str(data, "link", "url");
        mh_event_set_str(sub, "url", url ? url : field_str(data, "url", NULL));
    }
    mh_event_set_str(sub, "user_agent", field_str(data, "userAgent", "user_agent"));
    mh_event_set_str(sub, "ip", field_str(data, "ipAddress", "ip_address"));
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

/* Attachment metadata of an inbound email: name, type and size of each, nothing else. */
static void add_attachments(json_t *ev, json_t *data)
{
    json_t *list = field(data, "attachments", NULL), *out = json_array(), *item;
    size_t i;
    json_int_t size;
    json_array_foreach(list, i, item) {
        json_t *a = json_object();
        mh_event_set_str(a, "filename", field_str(item, "filename", "file_name"));
        mh_event_set_str(a, "content_type", field_str(item, "contentType", "content_type"));
        if (mh_json_int(item, "size", &size) == 0 && size >= 0) mh_event_set_int(a, "size", size);
        if (json_object_size(a)) json_array_append_new(out, a);
        else json_decref(a);
    }
    json_t *meta = json_array_size(out) ? mh_event_sub(ev, "metadata") : NULL;
    if (meta && !json_object_get(meta, "attachments")) json_object_set(meta, "attachments", out);
    json_decref(out);
}

static void add_contact(json_t *ev, json_t *data)
{
    mh_event_set_address(ev, "recipient", field_str(data, "email", NULL));
    meta_copy(ev, data, "contact_id", "contactId", "contact_id");
    meta_copy(ev, data, "audience_id", "audienceId", "audience_id");
    meta_copy(ev, data, "audience_name", "audienceName", "audience_name");
    meta_copy(ev, data, "first_name", "firstName", "first_name");
    meta_copy(ev, data, "last_name", "lastName", "last_name");
    meta_copy(ev, data, "contact_source", "source", NULL);
    meta_copy(ev, data, "custom_fields", "customFields", "custom_fields");
    meta_copy(ev, data, "changes", "changes", NULL);
    meta_copy(ev, data, "deletion_reason", "reason", NULL);
}

static void add_domain(json_t *ev, json_t *data)
{
    meta_copy(ev, data, "domain", "domain", NULL);
    meta_copy(ev, data, "domain_id", "domainId", "domain_id");
    meta_copy(ev, data, "domain_status", "status", NULL);
    meta_copy(ev, data, "dns_records", "dnsRecords", "dns_records");
    meta_copy(ev, data, "changes", "changes", NULL);
    meta_copy(ev, data, "dkim_verified", "dkimVerified", "dkim_verified");
    meta_copy(ev, data, "spf_verified", "spfVerified", "spf_verified");
    meta_copy(ev, data, "dmarc_verified", "dmarcVerified", "dmarc_verified");
}

/* delivery: the receiving server's reply (features page: smtp_response), all GetMailer says. */
static void add_delivery(json_t *ev, json_t *data)
{
    struct mh_delivery d = MH_DELIVERY_INIT;
    d.smtp_response = field_str(data, "smtpResponse", "smtp_response");
    mh_event_set_delivery(ev, &d);
}

static void add_type_fields(json_t *ev, const char *type, json_t *data)
{
    if (!strcmp(type, "email.sent") || !strcmp(type, "email.delivered") ||
        !strcmp(type, "email.bounced") || !strcmp(type, "email.delivery_delayed"))
        add_delivery(ev, data);
    if (!strcmp(type, "email.bounced")) add_bounce(ev, data);
    else if (!strcmp(type, "email.delivery_delayed")) add_delay(ev, data);
    else if (!strcmp(type, "email.opened")) add_engagement(ev, data, "open");
    else if (!strcmp(type, "email.clicked")) add_engagement(ev, data, "click");
    else if (!strcmp(type, "email.received")) add_attachments(ev, data);
    else if (!strcmp(type, "email.suppressed")) {
        meta_copy(ev, data, "suppression_reason", "reason", NULL);
        meta_time(ev, data, "original_event_at", "originalEventAt", "original_event_at");
    } else if (!strcmp(type, "email.scheduled")) {
        meta_time(ev, data, "scheduled_for", "scheduledFor", "scheduled_for");
        meta_copy(ev, data, "timezone", "timezone", NULL);
    } else if (!strncmp(type, "contact.", 8)) add_contact(ev, data);
    else if (!strncmp(type, "domain.", 7)) add_domain(ev, data);
}

/* The envelope's id ("evt_..."); an integer id is taken as its decimal text. */
static const char *event_id(json_t *obj, char *buf, size_t len)
{
    json_t *v = json_object_get(obj, "id");
    if (json_is_string(v)) return json_string_value(v);
    if (!json_is_integer(v)) return NULL;
    snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    return buf;
}

static int parse_one(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                     size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "getmailer: event is not a JSON object");
        return -1;
    }
    const char *name = mh_json_str(obj, "type");
    if (!name || !*name) {
        snprintf(err, errlen, "getmailer: event without \"type\"");
        return -1;
    }
    json_t *data = json_object_get(obj, "data");
    if (!json_is_object(data)) data = NULL;
    const char *type = canonical_type(name);
    int deleted = !strcmp(type, "contact.deleted");
    if (deleted) type = deleted_type(data);

    json_t *ev = mh_event_new(raw, type, name);
    add_message_fields(ev, data);
    set_occurred(ev, obj, data);
    if (deleted) {
        add_contact(ev, data);
        if (!strcmp(type, "email.bounced")) add_contact_bounce(ev);
    } else {
        add_type_fields(ev, type, data);
    }
    char idbuf[32];
    mh_event_finish(ev, event_id(obj, idbuf, sizeof(idbuf)), NULL);
    json_array_append_new(events, ev);
    return 0;
}

/* A batch is a top-level array, or {"events": [...]} when the object is no event itself. */
static json_t *batch_of(json_t *root)
{
    json_t *list = json_is_array(root) ? root : json_object_get(root, "events");
    return json_is_array(list) && !json_object_get(root, "type") ? list : NULL;
}

static int getmailer_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "getmailer", batch_of, parse_one, events, err, errlen);
}

const struct mh_provider mh_provider_getmailer = {
    .name = "getmailer",
    .options = NULL,
    .forward_headers = forward,
    .needs_secret = 1,
    .verify = getmailer_verify,
    .parse = getmailer_parse,
    .sign = getmailer_sign,
};
