/*
 * acs.c — Azure Communication Services Email: delivery and engagement reports
 * (Microsoft.Communication.EmailDeliveryReportReceived and
 * EmailEngagementTrackingReportReceived) delivered by Azure Event Grid to a webhook.
 *
 * Verify: Event Grid signs nothing. A source checks a shared secret, as configured,
 * with the shared credential check (cred.h):
 *   query_param = code   the webhook URL's query parameter (Event Grid keeps the query
 *                        of the endpoint URL on every delivery: `...?code=<secret>`)
 *   header = X-NAME      a header set as a delivery property of the event subscription
 *   bearer = true        Authorization: Bearer <secret> set as a delivery property
 * Entra ID (AAD) protected delivery sends a signed JWT bearer token: it is not checked
 * here (no key fetching at request time); put the URL secret next to it.
 * Event Grid proves the endpoint before it delivers, and ingest answers that proof
 * without publishing anything, once the credential passed:
 *   - Event Grid schema: a POST whose one event is Microsoft.EventGrid.
 *     SubscriptionValidationEvent gets 200 with {"validationResponse": <validationCode>}
 *     (MH_VERIFY_ACK with a reply body);
 *   - CloudEvents schema: an OPTIONS with WebHook-Request-Origin gets 200 with
 *     WebHook-Allowed-Origin (and WebHook-Allowed-Rate: * when a rate was asked).
 * There is no timestamp to check: replays are stopped by dedup (the event id).
 *
 * Parse: an array of Event Grid events, a CloudEvents batch (array) or one CloudEvent
 * (object). Event Grid schema: id, eventType, eventTime, data; CloudEvents: id, type,
 * time, data. The event id is Event Grid's id, the same over retries. The mapping table
 * and decisions are in docs/providers/acs.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/cred.h"
#include "mailhook/event.h"
#include "mailhook/headers.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"

#define VALIDATION_EVENT "Microsoft.EventGrid.SubscriptionValidationEvent"
#define DELIVERY_EVENT "Microsoft.Communication.EmailDeliveryReportReceived"
#define ENGAGEMENT_EVENT "Microsoft.Communication.EmailEngagementTrackingReportReceived"

static const struct mh_option_def options[] = {
    MH_CRED_OPT_QUERY_PARAM,
    MH_CRED_OPT_HEADER,
    MH_CRED_OPT_BEARER,
    {0},
};

/* The event's type: Event Grid's eventType or CloudEvents' type. */
static const char *event_type(json_t *ev)
{
    const char *t = mh_json_str(ev, "eventType");
    return t ? t : mh_json_str(ev, "type");
}

/* ---- verify ---- */

/* CloudEvents webhook abuse protection (the OPTIONS handshake). */
static enum mh_verdict answer_options(const struct mh_request *req, char *err, size_t errlen)
{
    const char *origin = mh_headers_get(req->headers, "webhook-request-origin");
    if (!origin || !*origin) {
        snprintf(err, errlen, "OPTIONS without WebHook-Request-Origin");
        return MH_VERIFY_MALFORMED;
    }
    if (req->reply_headers) {
        mh_headers_add(req->reply_headers, "WebHook-Allowed-Origin", origin);
        if (mh_headers_get(req->headers, "webhook-request-rate"))
            mh_headers_add(req->reply_headers, "WebHook-Allowed-Rate", "*");
    }
    snprintf(err, errlen, "CloudEvents validation request from %.128s", origin);
    return MH_VERIFY_ACK;
}

/*
 * The Event Grid validation handshake: a body whose only event is the validation event
 * is answered with its code. MH_VERIFY_OK for anything else.
 */
static enum mh_verdict answer_validation(json_t *root, const struct mh_request *req, char *err,
                                         size_t errlen)
{
    json_t *first = json_is_array(root) ? json_array_get(root, 0) : root;
    const char *type = event_type(first);
    if (!type || strcmp(type, VALIDATION_EVENT)) return MH_VERIFY_OK;
    const char *code = mh_json_str(json_object_get(first, "data"), "validationCode");
    if ((json_is_array(root) && json_array_size(root) != 1) || !code || !*code) {
        snprintf(err, errlen, "validation event without a validationCode, or not alone");
        return MH_VERIFY_MALFORMED;
    }
    json_t *reply = json_pack("{s:s}", "validationResponse", code);
    if (!reply) mh_oom();
    char *text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    if (!text) mh_oom();
    if (req->reply_body) *req->reply_body = text;
    else free(text);
    snprintf(err, errlen, "Event Grid subscription validation answered");
    return MH_VERIFY_ACK;
}

static enum mh_verdict acs_verify(const struct mh_source *src, const struct mh_request *req,
                                  char *err, size_t errlen)
{
    enum mh_verdict v = mh_cred_verify(src, req, err, errlen);
    if (v != MH_VERIFY_OK) return v;
    if (req->method && !strcmp(req->method, "OPTIONS")) return answer_options(req, err, errlen);
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_array(root) && !json_is_object(root)) {
        json_decref(root);
        snprintf(err, errlen, "body is not a JSON array or object of events");
        return MH_VERIFY_MALFORMED;
    }
    v = answer_validation(root, req, err, errlen);
    json_decref(root);
    return v;
}

/* ---- parse ---- */

static const struct {
    const char *status; /* data.status of a delivery report */
    const char *type;
} statuses[] = {
    {"Delivered", "email.delivered"},
    {"Bounced", "email.bounced"},         /* a hard bounce, per the SDKs' status list */
    {"Failed", "email.failed"},
    {"FilteredSpam", "email.failed"},     /* refused as spam by the service */
    {"Quarantined", "email.failed"},      /* held as spam, bulk or phishing */
    {"Suppressed", "email.suppressed"},   /* on the resource's suppression list */
    {"Expanded", "other"},                /* a distribution list was expanded */
};

/* Case-insensitive lookup: the docs print both "view" and "View". */
static const char *delivery_type(const char *status)
{
    for (size_t i = 0; status && i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (!strcasecmp(statuses[i].status, status)) return statuses[i].type;
    return "other";
}

/* A member under either spelling (the docs say ...TimeStamp, the SDKs ...Timestamp). */
static const char *str_either(json_t *obj, const char *a, const char *b)
{
    const char *v = mh_json_str(obj, a);
    return v ? v : mh_json_str(obj, b);
}

static void set_delivery(json_t *ev, json_t *data, const char *type)
{
    json_t *details = json_object_get(data, "deliveryStatusDetails");
    const char *message = mh_json_str(details, "statusMessage");
    if (!strcmp(type, "email.bounced")) {
        json_t *b = mh_event_sub(ev, "bounce");
        mh_event_set_str(b, "class", "hard"); /* "Bounced" is a hard bounce */
        mh_event_set_str(b, "diagnostic", message);
        mh_bounce_classify(b);
    } else {
        /* Failed, FilteredSpam, Quarantined, Suppressed...: what the service said. */
        mh_event_meta_set(ev, "status_message", json_object_get(details, "statusMessage"));
    }
    /*
     * The receiving server, and its reply when statusMessage is one ("550 5.1.1 ...";
     * a Delivered report's "No error." is ACS's own wording, not the server's).
     */
    struct mh_delivery d = MH_DELIVERY_INIT;
    d.remote_host = mh_json_str(details, "recipientMailServerHostName");
    if (message && mh_bounce_find_smtp(message)) d.smtp_response = message;
    mh_event_set_delivery(ev, &d);
}

static int parse_object(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                        size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "acs: event is not a JSON object");
        return -1;
    }
    const char *name = event_type(obj);
    const char *id = mh_json_str(obj, "id");
    if (!name || !*name || !id || !*id) {
        snprintf(err, errlen, "acs: event without \"id\" and \"eventType\" (or \"type\")");
        return -1;
    }
    json_t *data = json_object_get(obj, "data");
    const char *type = "other", *when = NULL, *provider_event = name;
    char sub[96];
    if (!strcmp(name, DELIVERY_EVENT) || !strcmp(name, ENGAGEMENT_EVENT)) {
        if (!json_is_object(data)) {
            snprintf(err, errlen, "acs: %s without a \"data\" object", name);
            return -1;
        }
    }
    if (!strcmp(name, DELIVERY_EVENT)) {
        const char *status = mh_json_str(data, "status");
        type = delivery_type(status);
        when = str_either(data, "deliveryAttemptTimeStamp", "deliveryAttemptTimestamp");
        snprintf(sub, sizeof(sub), "EmailDeliveryReportReceived.%.48s", status ? status : "");
        provider_event = sub;
    } else if (!strcmp(name, ENGAGEMENT_EVENT)) {
        const char *kind = mh_json_str(data, "engagementType");
        if (kind && !strcasecmp(kind, "view")) type = "email.opened";
        else if (kind && !strcasecmp(kind, "click")) type = "email.clicked";
        when = str_either(data, "userActionTimeStamp", "userActionTimestamp");
        snprintf(sub, sizeof(sub), "EmailEngagementTrackingReportReceived.%.48s",
                 kind ? kind : "");
        provider_event = sub;
    }
    json_t *ev = mh_event_new(raw, type, provider_event);
    mh_event_set_str(ev, "message_id", mh_json_str(data, "messageId"));
    mh_event_set_address(ev, "recipient", mh_json_str(data, "recipient"));
    mh_event_set_address(ev, "sender", mh_json_str(data, "sender"));
    if (!when || mh_event_set_time(ev, "occurred_at", when) < 0)
        mh_event_set_time(ev, "occurred_at", str_either(obj, "eventTime", "time"));
    mh_event_meta_set(ev, "internet_message_id", json_object_get(data, "internetMessageId"));
    mh_event_meta_set(ev, "event_subject", json_object_get(obj, "subject"));
    if (!strcmp(name, DELIVERY_EVENT)) set_delivery(ev, data, type);
    const char *link = mh_json_str(data, "engagementContext");
    if (!strcmp(type, "email.clicked") && link && *link)
        mh_event_set_str(mh_event_sub(ev, "click"), "url", link);
    if (!strcmp(type, "email.opened") || !strcmp(type, "email.clicked")) {
        /* The engagement's own object, as other providers fill it (not metadata). */
        const char *agent = mh_json_str(data, "userAgent");
        if (agent && *agent)
            mh_event_set_str(mh_event_sub(ev, !strcmp(type, "email.opened") ? "open" : "click"),
                             "user_agent", agent);
    }
    mh_event_finish(ev, id, NULL);
    json_array_append_new(events, ev);
    return 0;
}

static int acs_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "acs", NULL, parse_object, events, err, errlen);
}

const struct mh_provider mh_provider_acs = {
    .name = "acs",
    .options = options,
    .forward_headers = NULL, /* the credentials stay out of Kafka */
    .needs_secret = 1,
    .answers_options = 1,
    .init = mh_cred_init,
    .fini = NULL,
    .verify = acs_verify,
    .parse = acs_parse,
    .sign = mh_cred_sign,
};
