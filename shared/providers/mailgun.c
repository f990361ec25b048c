/*
 * mailgun.c — Mailgun webhooks (the JSON webhooks, one event per request:
 * {"signature": {"timestamp", "token", "signature"}, "event-data": {...}}).
 *
 * Verify: the signature block sits in the body. signature.signature is the lower-case
 * hex HMAC-SHA256 of signature.timestamp immediately followed by signature.token, keyed
 * with the account's HTTP webhook signing key (a source secret, as ASCII; repeatable for
 * rotation). A subaccount's block may also carry parent-signature, the same MAC under
 * the primary account's key; either one matching any secret is enough. The MAC does
 * NOT cover event-data: a captured signature block authenticates any body for as long
 * as its timestamp is within timestamp_tolerance_s. mailhook keeps no token store (see
 * docs/providers/mailgun.md, "Replays"): a replayed request is absorbed by dedup on the
 * event id. The legacy form-encoded webhooks are not supported (400).
 *
 * Parse: event-data.event discriminates; failed events are split by severity and
 * reason. The event id is event-data.id. docs/providers/mailgun.md has the mapping.
 *
 * Sign: Mailgun signs inside the body, so `mailhook sign` posts a copy of the body
 * whose signature block is replaced by a fresh one (stamped now, a random token,
 * signed with the source's newest secret).
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
#include "mailhook/provider_options.h"
#include "mailhook/verify.h"

#define TOKEN_BYTES 25 /* 50 hex characters, the length of Mailgun's tokens */

/* 9 h: longer than Mailgun's retry schedule (8 h 5 min), see docs/providers/mailgun.md. */
static const struct mh_option_def options[] = {
    MH_OPT_TIMESTAMP_TOLERANCE("32400"),
    {0},
};

/* ---- verify ---- */

/* Name of the first missing or empty string member of the signature block, or NULL. */
static const char *missing_field(json_t *block)
{
    static const char *const fields[] = {"timestamp", "token", "signature", NULL};
    for (const char *const *f = fields; *f; f++) {
        const char *v = mh_json_str(block, *f);
        if (!v || !*v) return *f;
    }
    return NULL;
}

static enum mh_verdict check_block(const struct mh_source *src, const struct mh_request *req,
                                   json_t *block, char *err, size_t errlen)
{
    long tolerance_s = mh_source_opt_int(src, "timestamp_tolerance_s");
    if (!json_is_object(block)) {
        snprintf(err, errlen, "body has no \"signature\" object");
        return MH_VERIFY_REJECT;
    }
    const char *missing = missing_field(block);
    if (missing) {
        snprintf(err, errlen, "signature.%s missing, empty or not a string", missing);
        return MH_VERIFY_REJECT;
    }
    const char *ts = mh_json_str(block, "timestamp"), *token = mh_json_str(block, "token");
    const char *parent = mh_json_str(block, "parent-signature");
    struct mh_buf parts[2] = {{ts, strlen(ts)}, {token, strlen(token)}};
    int ok = mh_verify_hmac_any(src, "sha256", parts, 2, mh_json_str(block, "signature"),
                                MH_SIG_HEX);
    if (parent && *parent) ok |= mh_verify_hmac_any(src, "sha256", parts, 2, parent, MH_SIG_HEX);
    if (!ok) {
        snprintf(err, errlen, "signature does not match any active secret");
        return MH_VERIFY_REJECT;
    }
    int64_t ts_s = 0;
    if (tolerance_s > 0 && mh_unix_seconds(ts, &ts_s) < 0) {
        snprintf(err, errlen, "signature.timestamp is not Unix seconds");
        return MH_VERIFY_REJECT;
    }
    if (!mh_verify_timestamp(ts_s * 1000, req->now_ms, tolerance_s)) {
        snprintf(err, errlen, "signature.timestamp outside the tolerance of %ld s",
                 tolerance_s);
        return MH_VERIFY_REJECT;
    }
    return MH_VERIFY_OK;
}

static enum mh_verdict mailgun_verify(const struct mh_source *src, const struct mh_request *req,
                                      char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* Only the JSON webhooks are supported: the signature is in the JSON body. */
        snprintf(err, errlen, "body is not JSON (line %d column %d: %s)", jerr.line, jerr.column,
                 jerr.text);
        return MH_VERIFY_MALFORMED;
    }
    enum mh_verdict v = check_block(src, req, json_object_get(root, "signature"), err, errlen);
    json_decref(root);
    return v;
}

/* ---- sign (for `mailhook sign`) ---- */

static int mailgun_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                        size_t errlen)
{
    char ts[32], token[2 * TOKEN_BYTES + 1], sig[2 * MH_MAX_MD + 1];
    json_error_t jerr;
    json_t *root = json_loadb((const char *)sr->body, sr->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(err, errlen, "mailgun signs inside the body: it must be a JSON object");
        return -1;
    }
    snprintf(ts, sizeof(ts), "%lld", (long long)(sr->now_ms / 1000));
    mh_random_hex(TOKEN_BYTES, token);
    struct mh_buf parts[2] = {{ts, strlen(ts)}, {token, strlen(token)}};
    if (mh_sign_hmac(src, "sha256", parts, 2, MH_SIG_HEX, sig) < 0) {
        json_decref(root);
        snprintf(err, errlen, "source has no secret");
        return -1;
    }
    json_t *block = json_object();
    json_object_set_new(block, "timestamp", json_string(ts));
    json_object_set_new(block, "token", json_string(token));
    json_object_set_new(block, "signature", json_string(sig));
    /* Replacing the member keeps its place; event-data is re-serialized, not changed. */
    json_object_set_new(root, "signature", block);
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) mh_oom();
    sr->new_body = (unsigned char *)mh_strndup(text, strlen(text));
    sr->new_body_len = strlen(text);
    free(text);
    return 0;
}

/* ---- parse ---- */

static const struct {
    const char *event;
    const char *type;
} event_types[] = {
    {"accepted", "email.accepted"},
    {"rejected", "email.failed"},
    {"delivered", "email.delivered"},
    {"opened", "email.opened"},
    {"clicked", "email.clicked"},
    {"unsubscribed", "email.unsubscribed"},
    {"complained", "email.complained"},
    {"stored", "email.received"},
};

static int has_prefix(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

static int str_is(const char *s, const char *want)
{
    return s && !strcmp(s, want);
}

/* failed: split by severity and reason (docs/providers/mailgun.md, "Failures"). */
static const char *failed_type(json_t *ed)
{
    const char *severity = mh_json_str(ed, "severity");
    if (str_is(severity, "temporary")) return "email.delivery_delayed";
    if (str_is(severity, "permanent") && has_prefix(mh_json_str(ed, "reason"), "suppress-"))
        return "email.suppressed";
    return "email.bounced";
}

static const char *type_of(const char *event, json_t *ed)
{
    if (!strcmp(event, "failed")) return failed_type(ed);
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (!strcmp(event_types[i].event, event)) return event_types[i].type;
    return "other";
}

/* Metadata is set with mh_event_meta_set: the sender's own user-variables, set first,
 * win. */

/* Event time: Unix seconds with a fraction, as a number (or a numeric string). */
static int event_time_ms(json_t *ed, int64_t *ms)
{
    json_t *ts = json_object_get(ed, "timestamp");
    double d;
    if (json_is_number(ts)) d = json_number_value(ts);
    else if (json_is_string(ts)) {
        char *end;
        d = strtod(json_string_value(ts), &end);
        if (end == json_string_value(ts) || *end) return -1;
    } else return -1;
    if (!(d > 0 && d < 253402300800.0)) return -1; /* before 9999-12-31 */
    *ms = (int64_t)(d * 1000.0 + 0.5);
    return 0;
}

/* message id, sender, subject, tags and user-variables: what every message event has. */
static void add_common(json_t *ev, json_t *ed)
{
    json_t *headers = json_object_get(json_object_get(ed, "message"), "headers");
    mh_event_set_str(ev, "message_id", mh_json_str(headers, "message-id"));
    mh_event_set_str(ev, "sender", mh_json_str(headers, "from"));
    mh_event_set_str(ev, "subject", mh_json_str(headers, "subject"));
    mh_event_set_address(ev, "recipient", mh_json_str(ed, "recipient"));
    mh_event_set_tags(ev, json_object_get(ed, "tags"));
    json_t *vars = json_object_get(ed, "user-variables");
    /* A copy: Mailgun details are added to it below. */
    if (json_is_object(vars) && json_object_size(vars))
        json_object_set_new(ev, "metadata", json_deep_copy(vars));
}

/* Categories that say the address itself is bad, the only ones a failure may be hard for. */
static int address_category(const char *category)
{
    return str_is(category, "invalid_recipient") || str_is(category, "inactive_mailbox") ||
           str_is(category, "invalid_domain");
}

/*
 * delivery-status into a canonical bounce. code is the SMTP reply, except Mailgun's own
 * outcome codes (498, 499, 6xx), which are not; message (or description) is the text.
 */
static json_t *add_bounce(json_t *ev, json_t *ed, const char *cls)
{
    json_t *ds = json_object_get(ed, "delivery-status");
    json_t *b = mh_event_sub(ev, "bounce");
    const char *text = mh_json_str(ds, "message");
    if (!text || !*text) text = mh_json_str(ds, "description");
    json_int_t code;
    if (mh_json_int(ds, "code", &code) == 0 && code >= 200 && code <= 599 && code != 498 &&
        code != 499)
        mh_event_set_int(b, "smtp_code", code);
    mh_event_set_str(b, "enhanced_code", mh_json_str(ds, "enhanced-code"));
    mh_event_set_str(b, "diagnostic", text);
    mh_event_set_str(b, "remote_host", mh_json_str(ds, "mx-host"));
    mh_event_set_str(b, "class", cls);
    mh_bounce_classify(b);
    return b;
}

/*
 * A permanent failure with reason "bounce" is Mailgun's own hard bounce; "old" and
 * "greylisted" mean Mailgun gave up retrying a temporary failure (soft). Any other
 * reason: the codes decide, and a hard verdict stands only when the address itself is
 * at fault (a block, a policy or a content rejection is not the address's fault).
 */
static void add_failure(json_t *ev, json_t *ed)
{
    const char *reason = mh_json_str(ed, "reason");
    const char *cls = NULL;
    if (str_is(reason, "bounce")) cls = "hard";
    else if (str_is(reason, "old") || str_is(reason, "greylisted")) cls = "soft";
    json_t *b = add_bounce(ev, ed, cls);
    if (!cls && str_is(mh_json_str(b, "class"), "hard") &&
        !address_category(mh_json_str(b, "category")))
        mh_event_set_str(b, "class", "soft");
    if (str_is(cls, "soft") && str_is(mh_json_str(b, "category"), "unclassified"))
        mh_event_set_str(b, "category", "transient_failure");
}

/* Mailgun's own classification of a failure: severity and reason, as sent. */
static void add_provider_kind(json_t *ev, json_t *ed)
{
    mh_bounce_set_provider_kind(json_object_get(ev, "bounce"), mh_json_str(ed, "severity"),
                                mh_json_str(ed, "reason"));
}

/* failed / temporary: Mailgun will retry; retry-seconds says when. */
static void add_deferral(json_t *ev, json_t *ed, int64_t occurred_ms)
{
    json_t *ds = json_object_get(ed, "delivery-status");
    json_t *b = add_bounce(ev, ed, "soft");
    json_t *d = mh_event_sub(ev, "delay");
    json_int_t n;
    mh_event_set_str(d, "reason", mh_json_str(b, "diagnostic"));
    if (mh_json_int(ds, "attempt-no", &n) == 0 && n >= 0) mh_event_set_int(d, "attempt", n);
    if (mh_json_int(ds, "retry-seconds", &n) == 0 && n >= 0 && n < 366L * 86400)
        mh_event_set_time_ms(d, "next_retry_at", occurred_ms + n * 1000);
    if (json_object_size(d) == 0) json_object_del(ev, "delay");
}

static void add_engagement(json_t *ev, json_t *ed, const char *sub_key)
{
    json_t *sub = mh_event_sub(ev, sub_key);
    if (!strcmp(sub_key, "click")) mh_event_set_str(sub, "url", mh_json_str(ed, "url"));
    mh_event_set_str(sub, "user_agent",
                     mh_json_str(json_object_get(ed, "client-info"), "user-agent"));
    mh_event_set_str(sub, "ip", mh_json_str(ed, "ip"));
    /*
     * client-info.bot names the machine Mailgun detected (apple: Apple Mail Privacy
     * Protection, gmail: Gmail's image proxy, generic: a scanner or firewall); empty: none.
     */
    const char *bot = mh_json_str(json_object_get(ed, "client-info"), "bot");
    if (bot && *bot) {
        mh_event_set_machine(ev, sub_key);
        mh_event_meta_set(ev, "bot", json_object_get(json_object_get(ed, "client-info"), "bot"));
    }
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

/*
 * delivery from delivery-status (delivered, failed, temporary failures): mx-host, tls,
 * the reply (code and message, when code is an SMTP reply), attempt-no and
 * session-seconds.
 */
static void add_delivery(json_t *ev, json_t *ed)
{
    json_t *ds = json_object_get(ed, "delivery-status");
    if (!json_is_object(ds)) return;
    struct mh_delivery d = MH_DELIVERY_INIT;
    char reply[1024] = "";
    json_int_t code, attempt;
    const char *msg = mh_json_str(ds, "message");
    if (!msg || !*msg) msg = mh_json_str(ds, "description");
    int smtp = mh_json_int(ds, "code", &code) == 0 && code >= 200 && code <= 599 && code != 498 &&
               code != 499;
    if (smtp && msg && *msg) snprintf(reply, sizeof(reply), "%lld %s", (long long)code, msg);
    else if (msg && *msg) snprintf(reply, sizeof(reply), "%s", msg);
    d.smtp_response = reply;
    d.remote_host = mh_json_str(ds, "mx-host");
    d.sending_ip = mh_json_str(json_object_get(ed, "envelope"), "sending-ip");
    json_t *tls = json_object_get(ds, "tls");
    if (json_is_boolean(tls)) d.tls = json_is_true(tls);
    if (mh_json_int(ds, "attempt-no", &attempt) == 0 && attempt >= 0) d.attempt = attempt;
    json_t *secs = json_object_get(ds, "session-seconds");
    if (json_is_number(secs) && json_number_value(secs) >= 0 && json_number_value(secs) < 1e9)
        d.duration_ms = (int64_t)(json_number_value(secs) * 1000.0 + 0.5);
    mh_event_set_delivery(ev, &d);
}

static void add_type_fields(json_t *ev, const char *type, json_t *ed, int64_t occurred_ms)
{
    const char *event = mh_json_str(ed, "event");
    if (!strcmp(event, "failed")) {
        mh_event_meta_set(ev, "failure_reason", json_object_get(ed, "reason"));
        mh_event_meta_set(ev, "severity", json_object_get(ed, "severity"));
    }
    if (!strcmp(event, "rejected")) {
        json_t *reject = json_object_get(ed, "reject");
        mh_event_meta_set(ev, "reject_reason", json_object_get(reject, "reason"));
        mh_event_meta_set(ev, "reject_description", json_object_get(reject, "description"));
    }
    if (!strcmp(type, "email.bounced")) add_failure(ev, ed);
    else if (!strcmp(type, "email.delivery_delayed")) add_deferral(ev, ed, occurred_ms);
    if (json_object_get(ev, "bounce")) add_provider_kind(ev, ed);
    else if (!strcmp(type, "email.opened")) add_engagement(ev, ed, "open");
    else if (!strcmp(type, "email.clicked")) add_engagement(ev, ed, "click");
    if (!strcmp(type, "email.delivered") || !strcmp(type, "email.bounced") ||
        !strcmp(type, "email.delivery_delayed"))
        add_delivery(ev, ed);
}

static int parse_event(const struct mh_raw *raw, json_t *root, json_t *events, char *err,
                       size_t errlen)
{
    if (!json_is_object(root)) {
        snprintf(err, errlen, "mailgun: body is not a JSON object");
        return -1;
    }
    json_t *ed = json_object_get(root, "event-data");
    if (!json_is_object(ed)) {
        snprintf(err, errlen, "mailgun: body without an \"event-data\" object");
        return -1;
    }
    const char *event = mh_json_str(ed, "event"), *id = mh_json_str(ed, "id");
    if (!event || !*event) {
        snprintf(err, errlen, "mailgun: event-data without \"event\"");
        return -1;
    }
    if (!id || !*id) {
        snprintf(err, errlen, "mailgun: %s event without \"id\"", event);
        return -1;
    }
    int64_t occurred_ms;
    if (event_time_ms(ed, &occurred_ms) < 0) {
        snprintf(err, errlen, "mailgun: %s event without a \"timestamp\" in Unix seconds", event);
        return -1;
    }
    const char *type = type_of(event, ed);
    const char *rcpt = mh_json_str(ed, "recipient");
    /* Every message event names its recipient; list and account events need not. */
    if (strcmp(type, "other") && (!rcpt || !*rcpt)) {
        snprintf(err, errlen, "mailgun: %s event without \"recipient\"", event);
        return -1;
    }
    json_t *ev = mh_event_new(raw, type, event);
    mh_event_set_time_ms(ev, "occurred_at", occurred_ms);
    add_common(ev, ed);
    add_type_fields(ev, type, ed, occurred_ms);
    mh_event_finish(ev, id, NULL);
    json_array_append_new(events, ev);
    return 0;
}

/* One event per request: a top-level array is not a batch, it is malformed. */
static json_t *no_batch(json_t *root)
{
    (void)root;
    return NULL;
}

static int mailgun_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "mailgun", no_batch, parse_event, events, err, errlen);
}

const struct mh_provider mh_provider_mailgun = {
    .name = "mailgun",
    .options = options,
    .forward_headers = NULL, /* the signature is in the body, which is the raw record */
    .needs_secret = 1,
    .verify = mailgun_verify,
    .parse = mailgun_parse,
    .sign = mailgun_sign,
};
