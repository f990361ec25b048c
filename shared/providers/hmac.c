/*
 * hmac.c — the generic HMAC provider, for platforms that sign the raw body with a shared
 * secret in one header (the MailDog-style scheme; the local stack's source "maildog").
 *
 * Verify, configured per source:
 *   header     = x-maildog-signature   (header holding the signature)
 *   algorithm  = sha256                (sha1 | sha256 | sha512)
 *   encoding   = hex                   (hex | base64)
 *   prefix     =                       (e.g. "sha256=", stripped when present)
 * The signature covers the raw body only and carries no timestamp: replays are stopped
 * by dedup on the event id.
 *
 * Parse: one JSON object per request (or an array of them) with event, timestamp,
 * message_id, recipient and, for bounces, reason (SMTP text) and smtp_code. There is
 * no event id: ids are derived from provider, tenant, message id, event, recipient and
 * timestamp (plus the URL for clicks).
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
#include "mailhook/provider_options.h"
#include "mailhook/verify.h"

struct hmac_state {
    char *header;
    char *algorithm;
    char *prefix;
    enum mh_sig_encoding encoding;
};

static const struct mh_option_def options[] = {
    {.name = "header", .type = MH_OPT_STRING, .def = "x-maildog-signature",
     .flags = MH_OPT_NONEMPTY, .help = "the request header holding the signature"},
    {.name = "algorithm", .type = MH_OPT_CHOICE, .def = "sha256", .choices = "sha1|sha256|sha512",
     .help = "the HMAC's hash function"},
    {.name = "encoding", .type = MH_OPT_CHOICE, .def = "hex", .choices = "hex|base64",
     .help = "how the signature is written"},
    {.name = "prefix", .type = MH_OPT_STRING, .def = "",
     .help = "text before the signature (e.g. \"sha256=\"), stripped when present"},
    {0},
};

static int hmac_init(struct mh_source *src, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct hmac_state *st = mh_calloc(1, sizeof(*st));
    st->header = mh_strdup(mh_source_opt(src, "header"));
    st->algorithm = mh_strdup(mh_source_opt(src, "algorithm"));
    st->prefix = mh_strdup(mh_source_opt(src, "prefix"));
    st->encoding = strcmp(mh_source_opt(src, "encoding"), "base64") ? MH_SIG_HEX : MH_SIG_BASE64;
    src->state = st;
    mh_source_forward(src, st->header);
    return 0;
}

static void hmac_fini(struct mh_source *src)
{
    struct hmac_state *st = src->state;
    if (!st) return;
    free(st->header);
    free(st->algorithm);
    free(st->prefix);
    free(st);
    src->state = NULL;
}

static enum mh_verdict hmac_verify(const struct mh_source *src, const struct mh_request *req,
                                   char *err, size_t errlen)
{
    const struct hmac_state *st = src->state;
    const char *sig = mh_headers_get(req->headers, st->header);
    if (!sig || !*sig) {
        snprintf(err, errlen, "signature header \"%s\" missing", st->header);
        return MH_VERIFY_REJECT;
    }
    size_t plen = strlen(st->prefix);
    if (plen && strncasecmp(sig, st->prefix, plen) == 0) sig += plen;
    struct mh_buf body = {req->body, req->body_len};
    if (mh_verify_hmac_any(src, st->algorithm, &body, 1, sig, st->encoding)) return MH_VERIFY_OK;
    snprintf(err, errlen, "signature in \"%s\" does not match any active secret", st->header);
    return MH_VERIFY_REJECT;
}

static int hmac_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err, size_t errlen)
{
    const struct hmac_state *st = src->state;
    char sig[2 * MH_MAX_MD + 1], value[2 * MH_MAX_MD + 64];
    struct mh_buf body = {sr->body, sr->body_len};
    if (mh_sign_hmac(src, st->algorithm, &body, 1, st->encoding, sig) < 0) {
        snprintf(err, errlen, "source has no secret to sign with");
        return -1;
    }
    snprintf(value, sizeof(value), "%s%s", st->prefix, sig);
    mh_headers_add(sr->headers, st->header, value);
    return 0;
}

struct type_map {
    const char *provider_event;
    const char *type;
    const char *bounce_class;
};

/* The article's event names, with the spellings platforms commonly use for them. */
static const struct type_map types[] = {
    {"delivered", "email.delivered", NULL},
    {"hard_bounce", "email.bounced", "hard"},
    {"bounced", "email.bounced", NULL},
    {"bounce", "email.bounced", NULL},
    {"soft_bounce", "email.delivery_delayed", "soft"},
    {"deferred", "email.delivery_delayed", "soft"},
    {"spam_complaint", "email.complained", NULL},
    {"complaint", "email.complained", NULL},
    {"spam", "email.complained", NULL},
    {"opened", "email.opened", NULL},
    {"open", "email.opened", NULL},
    {"clicked", "email.clicked", NULL},
    {"click", "email.clicked", NULL},
    {"unsubscribed", "email.unsubscribed", NULL},
    {"unsubscribe", "email.unsubscribed", NULL},
    {"sent", "email.sent", NULL},
    {NULL, NULL, NULL},
};

static int parse_one(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                     size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "hmac: event is not a JSON object");
        return -1;
    }
    const char *name = mh_json_str(obj, "event");
    if (!name || !*name) {
        snprintf(err, errlen, "hmac: missing \"event\"");
        return -1;
    }
    const struct type_map *tm = NULL;
    for (const struct type_map *t = types; t->provider_event; t++)
        if (!strcasecmp(name, t->provider_event)) tm = t;

    json_t *ev = mh_event_new(raw, tm ? tm->type : "other", name);
    mh_event_set_str(ev, "message_id", mh_json_str(obj, "message_id"));
    const char *rcpt = mh_json_str(obj, "recipient");
    if (!rcpt) rcpt = mh_json_str(obj, "email");
    mh_event_set_address(ev, "recipient", rcpt);
    mh_event_set_str(ev, "sender", mh_json_str(obj, "sender"));
    mh_event_set_str(ev, "subject", mh_json_str(obj, "subject"));
    mh_event_set_time(ev, "occurred_at", mh_json_str(obj, "timestamp"));
    mh_event_set_tags(ev, json_object_get(obj, "tags"));
    mh_event_copy(ev, "metadata",
                  json_is_object(json_object_get(obj, "metadata")) ? json_object_get(obj, "metadata") : NULL);

    const char *type = json_string_value(json_object_get(ev, "type"));
    if (!strcmp(type, "email.bounced") || !strcmp(type, "email.delivery_delayed")) {
        json_t *b = mh_event_sub(ev, "bounce");
        json_int_t code;
        if (mh_json_int(obj, "smtp_code", &code) == 0 && code >= 200 && code < 600)
            mh_event_set_int(b, "smtp_code", code);
        mh_event_set_str(b, "diagnostic", mh_json_str(obj, "reason"));
        mh_bounce_classify_as(b, tm ? tm->bounce_class : NULL);
        const char *reason = mh_json_str(obj, "reason");
        if (!strcmp(type, "email.delivery_delayed") && reason && *reason)
            mh_event_set_str(mh_event_sub(ev, "delay"), "reason", reason);
    }
    const char *feedback = mh_json_str(obj, "feedback_type");
    if (!strcmp(type, "email.complained") && feedback && *feedback)
        mh_event_set_str(mh_event_sub(ev, "complaint"), "feedback_type", feedback);
    const char *url = NULL;
    if (!strcmp(type, "email.clicked")) {
        url = mh_json_str(obj, "url");
        mh_event_set_str(mh_event_sub(ev, "click"), "url", url);
    }
    if (!strcmp(type, "email.opened") || !strcmp(type, "email.clicked")) {
        json_t *sub = mh_event_sub(ev, !strcmp(type, "email.opened") ? "open" : "click");
        mh_event_set_str(sub, "user_agent", mh_json_str(obj, "user_agent"));
        mh_event_set_str(sub, "ip", mh_json_str(obj, "ip"));
        if (json_object_size(sub) == 0) json_object_del(ev, !strcmp(type, "email.opened") ? "open" : "click");
    }

    mh_event_finish(ev, mh_json_str(obj, "id"), url);
    json_array_append_new(events, ev);
    return 0;
}

static int hmac_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "hmac", NULL, parse_one, events, err, errlen);
}

const struct mh_provider mh_provider_hmac = {
    .name = "hmac",
    .options = options,
    .forward_headers = NULL,
    .needs_secret = 1,
    .dedup_per_source = 1,
    .init = hmac_init,
    .fini = hmac_fini,
    .verify = hmac_verify,
    .parse = hmac_parse,
    .sign = hmac_sign,
};
