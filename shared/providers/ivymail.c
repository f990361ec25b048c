/*
 * ivymail.c — IvyMail (ivymail.io) webhooks.
 *
 * Verify: `x-ivymail-signature` carries HMAC-SHA256 of the raw body with the webhook
 * secret. IvyMail names the header but not the encoding, so it is an option:
 *   encoding = hex        (hex | base64)
 *   prefix   = sha256=    (text before the signature, stripped when present)
 * The scheme has no timestamp: replays are stopped by dedup on the event id.
 *
 * Parse: one flat JSON object per request (an array of them is accepted too):
 * event, message_id, to, from, subject, timestamp, workspace_id; bounces add
 * bounce_type / bounce_subtype (Amazon SES vocabulary) and diagnostic_code; complaints
 * add feedback_type. IvyMail has no event id, so ids are derived (see event.h). Its
 * page says "bounced" means permanently rejected: without a bounce_type the class is
 * hard (codes in diagnostic_code still come first, docs/bounces.md); bounce_type and
 * bounce_subtype are kept as bounce.provider_type / provider_subtype.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/event.h"
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"
#include "mailhook/verify.h"

#define SIG_HEADER "x-ivymail-signature"

static const char *const forward[] = {SIG_HEADER, NULL};

static const struct mh_option_def ivymail_options[] = {
    {.name = "encoding", .type = MH_OPT_CHOICE, .def = "hex", .choices = "hex|base64",
     .help = "how the signature is written (IvyMail does not document it)"},
    {.name = "prefix", .type = MH_OPT_STRING, .def = "sha256=",
     .help = "text before the signature, stripped when present (any case)"},
    {0},
};

/* The source's signature encoding (the "encoding" option). */
static enum mh_sig_encoding sig_encoding(const struct mh_source *src)
{
    const char *enc = mh_source_opt(src, "encoding");
    return enc && !strcmp(enc, "base64") ? MH_SIG_BASE64 : MH_SIG_HEX;
}

/* sig past the source's prefix, when it starts with it. */
static const char *past_prefix(const struct mh_source *src, const char *sig)
{
    const char *prefix = mh_source_opt(src, "prefix");
    size_t plen = prefix ? strlen(prefix) : 0;
    return plen && strncasecmp(sig, prefix, plen) == 0 ? sig + plen : sig;
}

static enum mh_verdict ivymail_verify(const struct mh_source *src, const struct mh_request *req,
                                      char *err, size_t errlen)
{
    const char *sig = mh_headers_get(req->headers, SIG_HEADER);
    if (!sig || !*sig) {
        snprintf(err, errlen, "signature header \"%s\" missing", SIG_HEADER);
        return MH_VERIFY_REJECT;
    }
    sig = past_prefix(src, sig);
    struct mh_buf body = {req->body, req->body_len};
    if (mh_verify_hmac_any(src, "sha256", &body, 1, sig, sig_encoding(src))) return MH_VERIFY_OK;
    snprintf(err, errlen, "signature in \"%s\" does not match any active secret", SIG_HEADER);
    return MH_VERIFY_REJECT;
}

static int ivymail_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                        size_t errlen)
{
    char sig[2 * MH_MAX_MD + 1];
    struct mh_buf body = {sr->body, sr->body_len};
    if (mh_sign_hmac(src, "sha256", &body, 1, sig_encoding(src), sig) < 0) {
        snprintf(err, errlen, "source has no secret to sign with");
        return -1;
    }
    mh_headers_add(sr->headers, SIG_HEADER, sig);
    return 0;
}

struct type_map {
    const char *provider_event;
    const char *type;
};

static const struct type_map types[] = {
    {"delivered", "email.delivered"},   {"bounced", "email.bounced"},
    {"complained", "email.complained"}, {"suppressed", "email.suppressed"},
    {"failed", "email.failed"},         {"sent", "email.sent"},
    {NULL, NULL},
};

static int parse_one(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                     size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "ivymail: event is not a JSON object");
        return -1;
    }
    const char *name = mh_json_str(obj, "event");
    if (!name || !*name) {
        snprintf(err, errlen, "ivymail: missing \"event\"");
        return -1;
    }
    const char *type = "other";
    for (const struct type_map *t = types; t->provider_event; t++)
        if (!strcmp(name, t->provider_event)) type = t->type;

    json_t *ev = mh_event_new(raw, type, name);
    mh_event_set_str(ev, "message_id", mh_json_str(obj, "message_id"));
    mh_event_set_address(ev, "recipient", mh_json_str(obj, "to"));
    mh_event_set_str(ev, "sender", mh_json_str(obj, "from"));
    mh_event_set_str(ev, "subject", mh_json_str(obj, "subject"));
    mh_event_set_time(ev, "occurred_at", mh_json_str(obj, "timestamp"));
    const char *ws = mh_json_str(obj, "workspace_id");
    if (ws) mh_event_set_str(mh_event_sub(ev, "metadata"), "workspace_id", ws);

    if (!strcmp(type, "email.bounced") || mh_json_str(obj, "bounce_type")) {
        json_t *b = mh_event_sub(ev, "bounce");
        const char *kind = mh_json_str(obj, "bounce_type"), *sub = mh_json_str(obj, "bounce_subtype");
        mh_bounce_ses_kind(b, kind, sub);
        mh_bounce_set_provider_kind(b, kind, sub);
        mh_event_set_str(b, "diagnostic", mh_json_str(obj, "diagnostic_code"));
        /* IvyMail: "bounced" means the address was permanently rejected. */
        mh_bounce_classify_as(b, !strcmp(type, "email.bounced") ? "hard" : NULL);
    }
    const char *feedback = mh_json_str(obj, "feedback_type");
    if (!strcmp(type, "email.complained") && feedback && *feedback)
        mh_event_set_str(mh_event_sub(ev, "complaint"), "feedback_type", feedback);

    mh_event_finish(ev, NULL, NULL);
    json_array_append_new(events, ev);
    return 0;
}

static int ivymail_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "ivymail", NULL, parse_one, events, err, errlen);
}

const struct mh_provider mh_provider_ivymail = {
    .name = "ivymail",
    .options = ivymail_options,
    .forward_headers = forward,
    .needs_secret = 1,
    .verify = ivymail_verify,
    .parse = ivymail_parse,
    .sign = ivymail_sign,
};
