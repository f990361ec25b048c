/*
 * smtp2go.c — SMTP2GO email webhooks (Settings > Webhooks, output type JSON).
 *
 * Verify: SMTP2GO signs nothing. A webhook can carry an Authorization header (Basic or
 * Bearer, set on the webhook, or Basic from user:password in its URL); a source checks
 * it with the shared credential check (cred.h):
 *   basic_user = NAME    Authorization: Basic NAME:<one of the secrets>
 *   bearer = true        Authorization: Bearer <one of the secrets>
 *   header = X-NAME      a header holding one of the secrets
 *   query_param = NAME   a URL query parameter holding one of the secrets
 * No timestamp is signed: replays are stopped by dedup.
 *
 * Parse: one event object per request, or a JSON array of them: event, time, sendtime,
 * sender, from, rcpt, recipients, email_id, bounce (hard | soft), host, message,
 * context, subject, user-agent, read-secs, client... SMTP2GO has no event id: it is
 * derived (event.h) from email_id, event, rcpt and time, plus the link of a click. The
 * form-encoded output type is not read: choose JSON. The mapping table and decisions
 * are in docs/providers/smtp2go.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/cred.h"
#include "mailhook/event.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"

static const struct mh_option_def options[] = {
    MH_CRED_OPT_BASIC_USER,
    MH_CRED_OPT_BEARER,
    MH_CRED_OPT_HEADER,
    MH_CRED_OPT_QUERY_PARAM,
    {0},
};

static const struct {
    const char *event; /* SMTP2GO's `event` */
    const char *type;
} event_types[] = {
    {"processed", "email.accepted"},
    {"delivered", "email.delivered"},
    {"open", "email.opened"},
    {"click", "email.clicked"},
    {"bounce", "email.bounced"},
    {"spam", "email.complained"},
    {"unsubscribe", "email.unsubscribed"},
    {"resubscribe", "email.resubscribed"},
    {"reject", "email.suppressed"}, /* sent to an address on the suppression list */
};

/* A time member: a string any form mh_time_parse knows, or a number of Unix seconds. */
static void set_time(json_t *ev, const char *key, json_t *v)
{
    if (json_is_string(v)) mh_event_set_time(ev, key, json_string_value(v));
    else if (json_is_number(v) && json_number_value(v) > 0 &&
             json_number_value(v) < 253402300800.0) /* before year 10000 */
        mh_event_set_time_ms(ev, key, (int64_t)(json_number_value(v) * 1000.0));
}

/*
 * delivery of a delivered or bounced message: host (the receiving server, "HOST" or
 * "HOST [IP]") and message (its SMTP reply).
 */
static void add_delivery(json_t *ev, json_t *obj)
{
    struct mh_delivery d = MH_DELIVERY_INIT;
    const char *host = mh_json_str(obj, "host");
    const char *open = host ? strstr(host, " [") : NULL;
    size_t len = host ? strlen(host) : 0;
    char *name = NULL, *ip = NULL;
    if (open && len > 0 && host[len - 1] == ']') {
        name = mh_malloc((size_t)(open - host) + 1);
        memcpy(name, host, (size_t)(open - host));
        name[open - host] = '\0';
        size_t iplen = (size_t)(host + len - 1 - (open + 2));
        ip = mh_malloc(iplen + 1);
        memcpy(ip, open + 2, iplen);
        ip[iplen] = '\0';
        d.remote_host = name;
        d.remote_ip = ip;
    } else {
        d.remote_host = host;
    }
    d.smtp_response = mh_json_str(obj, "message");
    mh_event_set_delivery(ev, &d);
    free(name);
    free(ip);
}

static int parse_object(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                        size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "smtp2go: event is not a JSON object");
        return -1;
    }
    const char *name = mh_json_str(obj, "event");
    if (!name || !*name) {
        snprintf(err, errlen, "smtp2go: event object without \"event\"");
        return -1;
    }
    const char *type = "other";
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (!strcmp(event_types[i].event, name)) type = event_types[i].type;
    const char *rcpt = mh_json_str(obj, "rcpt");
    if (strcmp(type, "other") && (!rcpt || !*rcpt)) {
        snprintf(err, errlen, "smtp2go: %.64s event without \"rcpt\"", name);
        return -1;
    }

    json_t *ev = mh_event_new(raw, type, name);
    mh_event_set_str(ev, "message_id", mh_json_str(obj, "email_id"));
    mh_event_set_address(ev, "recipient", rcpt);
    mh_event_set_address(ev, "sender", mh_json_str(obj, "from"));
    mh_event_set_str(ev, "subject", mh_json_str(obj, "subject"));
    json_t *time = json_object_get(obj, "time");
    set_time(ev, "occurred_at", time);
    mh_event_meta_set(ev, "envelope_from", json_object_get(obj, "sender"));
    mh_event_meta_set(ev, "sent_at", json_object_get(obj, "sendtime"));
    mh_event_meta_set(ev, "auth", json_object_get(obj, "auth"));
    mh_event_meta_set(ev, "context", json_object_get(obj, "context"));

    const char *message = mh_json_str(obj, "message");
    const char *link = mh_json_str(obj, "url");
    if (!link) link = mh_json_str(obj, "link");
    if (!strcmp(type, "email.bounced")) {
        json_t *b = mh_event_sub(ev, "bounce");
        const char *kind = mh_json_str(obj, "bounce");
        if (kind && (!strcmp(kind, "hard") || !strcmp(kind, "soft")))
            mh_event_set_str(b, "class", kind);
        mh_event_set_str(b, "diagnostic", message);
        mh_event_set_str(b, "remote_host", mh_json_str(obj, "host"));
        mh_bounce_classify(b);
        mh_event_set_str(b, "provider_type", kind); /* SMTP2GO's own hard / soft, as sent */
        add_delivery(ev, obj);
    } else if (!strcmp(type, "email.delivered")) {
        add_delivery(ev, obj);
    } else {
        mh_event_meta_set(ev, "message", json_object_get(obj, "message"));
    }
    if (!strcmp(type, "email.clicked") && link && *link)
        mh_event_set_str(mh_event_sub(ev, "click"), "url", link);
    if (!strcmp(type, "email.opened") || !strcmp(type, "email.clicked")) {
        /* The engagement's own object, as other providers fill it (not metadata). */
        const char *agent = mh_json_str(obj, "user-agent");
        if (agent && *agent)
            mh_event_set_str(mh_event_sub(ev, !strcmp(type, "email.opened") ? "open" : "click"),
                             "user_agent", agent);
        mh_event_meta_set(ev, "client", json_object_get(obj, "client"));
        mh_event_meta_set(ev, "client_device", json_object_get(obj, "client-device"));
        mh_event_meta_set(ev, "client_os", json_object_get(obj, "client-os"));
        mh_event_meta_set(ev, "read_secs", json_object_get(obj, "read-secs"));
    }

    /* Derived id: the link tells two clicks apart; the time text stands in when it is
     * not a time mailhook can read. */
    const char *time_text = json_is_string(time) ? json_string_value(time) : "";
    size_t len = 8 + (link ? strlen(link) : 0) + strlen(time_text);
    char *extra = mh_malloc(len);
    snprintf(extra, len, "%s\n%s", link ? link : "",
             json_object_get(ev, "occurred_at") ? "" : time_text);
    mh_event_finish(ev, NULL, extra);
    free(extra);
    json_array_append_new(events, ev);
    return 0;
}

static int smtp2go_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "smtp2go", NULL, parse_object, events, err, errlen);
}

const struct mh_provider mh_provider_smtp2go = {
    .name = "smtp2go",
    .options = options,
    .forward_headers = NULL, /* the credentials stay out of Kafka */
    .needs_secret = 1,
    .init = mh_cred_init,
    .fini = NULL,
    .verify = mh_cred_verify,
    .parse = smtp2go_parse,
    .sign = mh_cred_sign,
};
