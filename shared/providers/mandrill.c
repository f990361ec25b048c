/*
 * mandrill.c — Mandrill (Mailchimp Transactional) webhooks: the form-encoded batch, its
 * HMAC-SHA1 signature over the webhook URL and the POST parameters, and the mapping of
 * message, sync and inbound events onto canonical events.
 *
 * Body: application/x-www-form-urlencoded with one parameter, mandrill_events, whose
 * value is a JSON array of events, decoded strictly by mailhook/form.h (a NUL byte, a
 * "%00" escape, an unparseable pair or a repeated key is refused: each could make two
 * parties read one body two ways).
 *
 * Verify: X-Mandrill-Signature = base64(HMAC-SHA1(webhook key, url + key1 + value1 +
 * key2 + value2 ...)), parameters sorted by key in byte order, values percent-decoded.
 * url is the source's `url` option — the URL exactly as entered in Mandrill, which need
 * not be the one mailhook sees behind a proxy. Every secret (webhook key, ASCII as
 * shown) is tried, in constant time. The scheme has no timestamp: replays are absorbed
 * by dedup only. When a webhook is added Mandrill checks the URL with an unsigned HEAD
 * (answered by ingest, see answers_head) and may post an empty batch: a request without
 * a signature is answered 200 without being published (MH_VERIFY_ACK) when it holds
 * exactly mandrill_events=[], and refused otherwise; with a signature, every request is
 * checked.
 *
 * Parse: docs/providers/mandrill.md has the mapping. Mandrill sends no event id and one
 * message has several events under the same _id, so ids are derived from the message
 * id, the event name, the recipient and ts, plus the URL for clicks (the sync events'
 * action; the raw message for inbound mail, which has no _id).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/crypto.h"
#include "mailhook/event.h"
#include "mailhook/form.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"
#include "mailhook/verify.h"

#define SIG_HEADER "x-mandrill-signature"
#define EVENTS_KEY "mandrill_events"

static const struct mh_option_def options[] = {
    {.name = "url", .type = MH_OPT_STRING,
     .help = "the webhook URL exactly as entered in Mandrill (required; it is signed)"},
    {0},
};
static const char *const forward[] = {SIG_HEADER, NULL};

static int mandrill_init(struct mh_source *src, char *err, size_t errlen)
{
    const char *url = mh_source_opt(src, "url");
    struct evhttp_uri *uri = url ? evhttp_uri_parse(url) : NULL;
    const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
    const char *host = uri ? evhttp_uri_get_host(uri) : NULL;
    int ok = scheme && host && *host && (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
    if (uri) evhttp_uri_free(uri);
    if (!url) {
        snprintf(err, errlen, "needs url (the webhook URL exactly as entered in Mandrill)");
        return -1;
    }
    if (!ok) {
        src->err_line = mh_source_opt_line(src, "url");
        snprintf(err, errlen, "url: not an http(s) URL with a host");
        return -1;
    }
    return 0;
}

/* ---- the form (mailhook/form.h) ---- */

/* What Mandrill signs: url, then key and value of every parameter in sorted order. */
static size_t signed_parts(const char *url, const struct mh_form *f, struct mh_buf *parts)
{
    size_t n = 0;
    parts[n++] = (struct mh_buf){url, strlen(url)};
    for (size_t i = 0; i < f->n; i++) {
        parts[n++] = (struct mh_buf){f->params[i].key, f->params[i].key_len};
        parts[n++] = (struct mh_buf){f->params[i].value, strlen(f->params[i].value)};
    }
    return n;
}

/* 1 when the form is exactly mandrill_events=[] (white space allowed): a setup check. */
static int empty_batch(const struct mh_form *f)
{
    const char *events = mh_form_get(f, EVENTS_KEY);
    if (f->n != 1 || !events) return 0;
    json_t *root = json_loads(events, 0, NULL);
    int empty = json_is_array(root) && json_array_size(root) == 0;
    json_decref(root);
    return empty;
}

/* ---- verify and sign ---- */

static enum mh_verdict mandrill_verify(const struct mh_source *src, const struct mh_request *req,
                                       char *err, size_t errlen)
{
    const char *sig = mh_headers_get(req->headers, SIG_HEADER);
    struct mh_form f;
    if (mh_form_decode(req->body, req->body_len, &f, err, errlen) < 0) {
        mh_form_free(&f);
        return MH_VERIFY_MALFORMED;
    }
    enum mh_verdict v = MH_VERIFY_OK;
    if (!sig || !*sig) {
        /* The unsigned setup post is answered 200 and not published (MH_VERIFY_ACK):
         * an unsigned request never reaches the raw topic. */
        if (empty_batch(&f)) {
            v = MH_VERIFY_ACK;
        } else {
            snprintf(err, errlen, "header \"%s\" missing", SIG_HEADER);
            v = MH_VERIFY_REJECT;
        }
    } else {
        struct mh_buf parts[1 + 2 * MH_FORM_MAX_PARAMS];
        size_t n = signed_parts(mh_source_opt(src, "url"), &f, parts);
        if (!mh_verify_hmac_any(src, "sha1", parts, n, sig, MH_SIG_BASE64)) {
            snprintf(err, errlen, "signature does not match any webhook key for the source's url");
            v = MH_VERIFY_REJECT;
        }
    }
    mh_form_free(&f);
    return v;
}

/* The signature Mandrill would send for the body, with the source's newest key. The
 * body is the form, or a JSON array of events, which is sent as mandrill_events=. */
static int mandrill_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                         size_t errlen)
{
    struct mh_form f;
    char sig[2 * MH_MAX_MD + 1];
    int rc = -1;
    json_t *batch = json_loadb((const char *)sr->body, sr->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_array(batch)) {
        /* A JSON array of events is what Mandrill posts as mandrill_events: form-encode it. */
        char *enc = evhttp_uriencode((const char *)sr->body, (ev_ssize_t)sr->body_len, 0);
        if (!enc) mh_oom();
        size_t n = strlen(EVENTS_KEY "=") + strlen(enc);
        sr->new_body = mh_malloc(n + 1);
        snprintf((char *)sr->new_body, n + 1, "%s=%s", EVENTS_KEY, enc);
        sr->new_body_len = n;
        sr->body = sr->new_body;
        sr->body_len = n;
        free(enc);
    }
    json_decref(batch);
    if (mh_form_decode(sr->body, sr->body_len, &f, err, errlen) == 0) {
        struct mh_buf parts[1 + 2 * MH_FORM_MAX_PARAMS];
        size_t n = signed_parts(mh_source_opt(src, "url"), &f, parts);
        if (mh_sign_hmac(src, "sha1", parts, n, MH_SIG_BASE64, sig) < 0) {
            snprintf(err, errlen, "source has no webhook key");
        } else {
            mh_headers_add(sr->headers, "Content-Type", "application/x-www-form-urlencoded");
            mh_headers_add(sr->headers, "X-Mandrill-Signature", sig);
            rc = 0;
        }
    }
    mh_form_free(&f);
    return rc;
}

/* ---- parse ---- */

static const struct {
    const char *event;
    const char *type;
} message_types[] = {
    {"send", "email.sent"},
    {"deferral", "email.delivery_delayed"},
    {"hard_bounce", "email.bounced"},
    {"soft_bounce", "email.bounced"},
    {"open", "email.opened"},
    {"click", "email.clicked"},
    {"spam", "email.complained"},
    {"unsub", "email.unsubscribed"},
    {"reject", "email.suppressed"},
    {"inbound", "email.received"},
};

/* Reject reasons that are not a deny-list entry: Mandrill refused the message itself. */
static const char *const failed_reject_reasons[] = {"invalid-sender", "invalid", "test-mode-limit",
                                                    "unsigned", "rule", NULL};

/* Deny-list reasons whose cause reaches mailhook as its own event (bounce, spam, unsub). */
static const char *const caused_list_reasons[] = {"hard-bounce", "soft-bounce", "spam", "unsub",
                                                  NULL};

static int in_list(const char *s, const char *const *list)
{
    for (; s && *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
}

static const char *message_type(const char *event, json_t *msg)
{
    if (!strcmp(event, "reject") && in_list(mh_json_str(msg, "reject_reason"), failed_reject_reasons))
        return "email.failed";
    for (size_t i = 0; i < sizeof(message_types) / sizeof(message_types[0]); i++)
        if (!strcmp(message_types[i].event, event)) return message_types[i].type;
    return "other";
}

/* The canonical category of Mandrill's bounce_description, or NULL. */
static const char *description_category(const char *d)
{
    static const struct {
        const char *description, *category;
    } map[] = {
        {"bad_mailbox", "invalid_recipient"}, {"invalid_domain", "invalid_domain"},
        {"mailbox_full", "mailbox_full"},     {"spam_related", "spam_block"},
        {"policy_related", "policy_rejection"}, {"routing_error", "routing_error"},
    };
    for (size_t i = 0; d && i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(map[i].description, d)) return map[i].category;
    return NULL;
}

/* ts (Unix seconds, a number or a numeric string) as occurred_at. */
static void set_occurred(json_t *ev, json_t *obj)
{
    json_int_t ts;
    if (mh_json_int(obj, "ts", &ts) == 0 && ts > 0 && ts < 253402300800LL)
        mh_event_set_time_ms(ev, "occurred_at", (int64_t)ts * 1000);
}

/* The last SMTP attempt Mandrill lists for the message, or NULL. */
static json_t *last_smtp_event(json_t *msg)
{
    json_t *list = json_object_get(msg, "smtp_events");
    size_t n = json_array_size(list);
    json_t *last = n ? json_array_get(list, n - 1) : NULL;
    return json_is_object(last) ? last : NULL;
}

static void add_bounce(json_t *ev, json_t *msg, const char *cls)
{
    json_t *smtp = last_smtp_event(msg);
    const char *diag = mh_json_str(msg, "diag");
    if (!diag || !*diag) diag = mh_json_str(smtp, "diag");
    json_t *b = mh_event_sub(ev, "bounce");
    mh_event_set_str(b, "class", cls);
    mh_event_set_str(b, "diagnostic", diag);
    mh_event_set_str(b, "remote_host", mh_json_str(smtp, "destination_ip"));
    /*
     * An enhanced code names the category precisely; without one, Mandrill's own
     * bounce_description is better evidence than guesses from the text.
     */
    char code[16];
    const char *described = description_category(mh_json_str(msg, "bounce_description"));
    if (described && !(diag && mh_bounce_find_enhanced(diag, code, sizeof(code)) == 0))
        mh_event_set_str(b, "category", described);
    mh_bounce_classify(b);
    /* Mandrill's own classification: bounce_description and its numeric bgtools_code. */
    mh_event_set_str(b, "provider_type", mh_json_str(msg, "bounce_description"));
    json_int_t bgtools;
    if (mh_json_int(msg, "bgtools_code", &bgtools) == 0) {
        char num[32];
        snprintf(num, sizeof(num), "%lld", (long long)bgtools);
        mh_event_set_str(b, "provider_subtype", num);
    }
    if (!strcmp(mh_json_str(ev, "type"), "email.delivery_delayed") && diag && *diag)
        mh_event_set_str(mh_event_sub(ev, "delay"), "reason", diag);
}

/*
 * delivery from the last SMTP attempt Mandrill lists (smtp_events[]: diag, destination_ip,
 * source_ip); the list holds every attempt so far, so its length is this one's number.
 */
static void add_delivery(json_t *ev, json_t *msg)
{
    json_t *smtp = last_smtp_event(msg);
    if (!smtp) return;
    struct mh_delivery d = MH_DELIVERY_INIT;
    d.smtp_response = mh_json_str(smtp, "diag");
    d.remote_ip = mh_json_str(smtp, "destination_ip");
    d.sending_ip = mh_json_str(smtp, "source_ip");
    d.attempt = (json_int_t)json_array_size(json_object_get(msg, "smtp_events"));
    mh_event_set_delivery(ev, &d);
}

static void add_engagement(json_t *ev, json_t *obj, const char *sub_key)
{
    json_t *sub = mh_event_sub(ev, sub_key);
    if (!strcmp(sub_key, "click")) mh_event_set_str(sub, "url", mh_json_str(obj, "url"));
    mh_event_set_str(sub, "user_agent", mh_json_str(obj, "user_agent"));
    mh_event_set_str(sub, "ip", mh_json_str(obj, "ip"));
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

static void meta_set_str(json_t *ev, const char *key, const char *value)
{
    if (value && *value) mh_event_set_str(mh_event_sub(ev, "metadata"), key, value);
}

/* A message event (send, bounce, open, ..., inbound): the msg object describes the message. */
static void parse_message(const struct mh_raw *raw, json_t *obj, const char *name, json_t *events)
{
    json_t *msg = json_object_get(obj, "msg");
    if (!json_is_object(msg)) msg = NULL;
    const char *type = message_type(name, msg);
    int inbound = !strcmp(name, "inbound");
    json_t *ev = mh_event_new(raw, type, name);
    const char *id = mh_json_str(obj, "_id");
    mh_event_set_str(ev, "message_id", id && *id ? id : mh_json_str(msg, "_id"));
    mh_event_set_address(ev, "recipient", mh_json_str(msg, "email"));
    mh_event_set_str(ev, "sender", mh_json_str(msg, inbound ? "from_email" : "sender"));
    mh_event_set_str(ev, "subject", mh_json_str(msg, "subject"));
    mh_event_set_tags(ev, json_object_get(msg, "tags"));
    if (json_is_object(json_object_get(msg, "metadata")) &&
        json_object_size(json_object_get(msg, "metadata")))
        json_object_set_new(ev, "metadata", json_deep_copy(json_object_get(msg, "metadata")));
    set_occurred(ev, obj);

    if (!strcmp(name, "hard_bounce")) add_bounce(ev, msg, "hard");
    else if (!strcmp(name, "soft_bounce") || !strcmp(name, "deferral")) add_bounce(ev, msg, "soft");
    else if (!strcmp(name, "open")) add_engagement(ev, obj, "open");
    else if (!strcmp(name, "click")) add_engagement(ev, obj, "click");
    if (!strcmp(name, "send") || !strcmp(name, "deferral") || !strcmp(name, "hard_bounce") ||
        !strcmp(name, "soft_bounce"))
        add_delivery(ev, msg);
    if (!strcmp(name, "reject")) meta_set_str(ev, "reject_reason", mh_json_str(msg, "reject_reason"));

    const char *extra = !strcmp(name, "click") ? mh_json_str(obj, "url")
                        : inbound              ? mh_json_str(msg, "raw_msg")
                                               : NULL;
    mh_event_finish(ev, NULL, extra);
    json_array_append_new(events, ev);
}

/*
 * A sync event: a change of Mandrill's deny list (blacklist, entry in "reject") or allow
 * list (whitelist, entry in "entry").
 */
static void parse_sync(const struct mh_raw *raw, json_t *obj, const char *kind, json_t *events)
{
    const char *action = mh_json_str(obj, "action");
    json_t *entry = json_object_get(obj, "reject");
    if (!json_is_object(entry)) entry = json_object_get(obj, "entry");
    const char *reason = mh_json_str(entry, "reason");
    const char *type = "other";
    if (!strcmp(kind, "blacklist") && action && !strcmp(action, "add"))
        type = in_list(reason, caused_list_reasons) ? "email.suppressed" : "email.unsubscribed";
    else if (!strcmp(kind, "blacklist") && action && !strcmp(action, "remove"))
        type = "email.resubscribed";

    json_t *ev = mh_event_new(raw, type, kind);
    mh_event_set_address(ev, "recipient", mh_json_str(entry, "email"));
    set_occurred(ev, obj);
    meta_set_str(ev, "action", action);
    meta_set_str(ev, "reason", reason);
    meta_set_str(ev, "subaccount", mh_json_str(entry, "subaccount"));
    mh_event_finish(ev, NULL, action);
    json_array_append_new(events, ev);
}

static int parse_one(const struct mh_raw *raw, json_t *obj, size_t index, json_t *events,
                     char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "mandrill: event %zu is not a JSON object", index);
        return -1;
    }
    const char *name = mh_json_str(obj, "event");
    const char *kind = mh_json_str(obj, "type");
    if (name && *name) parse_message(raw, obj, name, events);
    else if (kind && *kind) parse_sync(raw, obj, kind, events);
    else {
        snprintf(err, errlen, "mandrill: event %zu has neither \"event\" nor \"type\"", index);
        return -1;
    }
    return 0;
}

static int mandrill_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    struct mh_form f;
    char why[256];
    int rc = -1;
    if (mh_form_decode(raw->body, raw->body_len, &f, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "mandrill: %s", why);
        goto out;
    }
    const char *value = mh_form_get(&f, EVENTS_KEY);
    if (!value) {
        snprintf(err, errlen, "mandrill: form has no \"" EVENTS_KEY "\" parameter");
        goto out;
    }
    json_error_t jerr;
    json_t *root = json_loads(value, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "mandrill: " EVENTS_KEY " is not valid JSON (line %d column %d: %s)",
                 jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_array(root)) {
        snprintf(err, errlen, "mandrill: " EVENTS_KEY " is not a JSON array");
    } else {
        size_t i;
        json_t *item;
        rc = 0;
        json_array_foreach(root, i, item) {
            if ((rc = parse_one(raw, item, i, events, err, errlen)) < 0) break;
        }
    }
    json_decref(root);
out:
    mh_form_free(&f);
    return rc;
}

const struct mh_provider mh_provider_mandrill = {
    .name = "mandrill",
    .options = options,
    .forward_headers = forward,
    .needs_secret = 1,
    .answers_head = 1,
    .init = mandrill_init,
    .fini = NULL,
    .verify = mandrill_verify,
    .parse = mandrill_parse,
    .sign = mandrill_sign,
};
