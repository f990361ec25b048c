/*
 * mailersend.c — MailerSend (mailersend.com) webhooks.
 *
 * Verify: `Signature: <hex>`, the bare lower-case hex HMAC-SHA256 of the raw request body
 * keyed with the webhook's signing secret (no prefix, no timestamp). Every configured
 * secret is tried in constant time; upper-case hex and surrounding blanks are tolerated.
 * The scheme carries no timestamp: replays are stopped by dedup on the event id.
 *
 * When a webhook is created or its URL changed, MailerSend first posts a ping,
 * {"type": "webhook.test", "message": ..., "created_at": ...}, signed not with the
 * webhook's secret (it may not exist yet) but with a fixed key printed in MailerSend's
 * documentation, and saves the webhook only if the ping gets a 2xx. Because that key is
 * public, it authenticates nothing but the ping: a body signed with it passes only when
 * its top-level "type" is exactly "webhook.test" (source option accept_test_ping, on by
 * default), and then ingest answers 200 without publishing it (MH_VERIFY_ACK): the worst
 * a stranger can do with the public key is get a 200. A ping signed with the source's
 * own secret is published like any request, and parse turns it into no event.
 *
 * Parse: one JSON object per request, in either of MailerSend's two payload versions,
 * told apart by data.email (an object in the first, the recipient's address in the
 * second):
 *   {type, domain_id, created_at, webhook_id, url, data: {object: "activity", id, type,
 *    created_at, email: {id, from, subject, status, tags, message: {id},
 *    recipient: {email}}, morph: {object, reason, ip, url, ...} | null, template_id}}
 *   {type, created_at, webhook_id, data: {id, domain_id, message_id, email_id, type,
 *    subject, email | recipient, tags, meta: {...} | []}}
 * The event id of an activity.* event is data.id, MailerSend's id of the activity, which a
 * retry repeats (the retried body is the same). Other types (maintenance.*, verification
 * results, ...) carry the id of an object, not of the event, or none: their ids are
 * derived from the whole envelope. The mapping and the decisions are in
 * docs/providers/mailersend.md.
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
#include "mailhook/provider_options.h"
#include "mailhook/verify.h"

#define SIG_HEADER "signature"
#define SIG_HEX_LEN 64 /* hex SHA-256 */
#define TEST_PING "webhook.test"

/*
 * The key MailerSend signs its webhook.test ping with, published with its webhooks
 * documentation (and carried by e.g. Symfony's MailerSend webhook parser). Public: it is
 * no credential, and verify lets it authenticate nothing but the ping.
 */
static const char test_key[] = "test_Am3L1GuOIc4blLUuHqAPxxwkZaJyEk8G";

struct mailersend_state {
    int accept_test_ping;
};

static const struct mh_option_def options[] = {
    {.name = "accept_test_ping", .type = MH_OPT_BOOL, .def = "true", .flags = MH_OPT_STRICT,
     .help = "answer MailerSend's webhook.test ping signed with its public key (nothing is "
             "published)"},
    {0},
};
static const char *const forward[] = {SIG_HEADER, NULL};

/* ---- init / verify / sign ---- */

static int mailersend_init(struct mh_source *src, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct mailersend_state *st = mh_calloc(1, sizeof(*st));
    st->accept_test_ping = mh_source_opt_bool(src, "accept_test_ping");
    src->state = st;
    return 0;
}

static void mailersend_fini(struct mh_source *src)
{
    free(src->state);
    src->state = NULL;
}

/* 1 when body is a JSON object whose "type" is exactly "webhook.test". */
static int is_test_ping(const unsigned char *body, size_t len)
{
    /* Duplicate keys refused, as parse refuses them: both read the same "type". */
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_is_object(root) ? mh_json_str(root, "type") : NULL;
    int ping = type && !strcmp(type, TEST_PING);
    json_decref(root);
    return ping;
}

static enum mh_verdict mailersend_verify(const struct mh_source *src,
                                         const struct mh_request *req, char *err, size_t errlen)
{
    const struct mailersend_state *st = src->state;
    const char *sig = mh_headers_get(req->headers, SIG_HEADER);
    if (!sig || !*sig) {
        snprintf(err, errlen, "signature header \"Signature\" missing");
        return MH_VERIFY_REJECT;
    }
    sig += strspn(sig, " \t");
    size_t n = strspn(sig, "0123456789abcdefABCDEF");
    if (n != SIG_HEX_LEN || sig[n + strspn(sig + n, " \t")] != '\0') {
        snprintf(err, errlen, "signature in \"Signature\" is not a hex SHA-256 HMAC");
        return MH_VERIFY_REJECT;
    }
    char hex[SIG_HEX_LEN + 1];
    memcpy(hex, sig, SIG_HEX_LEN);
    hex[SIG_HEX_LEN] = '\0';

    struct mh_buf body = {req->body, req->body_len};
    if (mh_verify_hmac_any(src, "sha256", &body, 1, hex, MH_SIG_HEX)) return MH_VERIFY_OK;
    if (st->accept_test_ping &&
        mh_verify_hmac_key(test_key, strlen(test_key), "sha256", &body, 1, hex, MH_SIG_HEX)) {
        if (is_test_ping(req->body, req->body_len)) {
            /* Anyone can sign with a published key: answer it, keep it out of Kafka. */
            snprintf(err, errlen, "webhook.test ping signed with MailerSend's test key");
            return MH_VERIFY_ACK;
        }
        snprintf(err, errlen, "signed with MailerSend's published test key, which "
                              "authenticates only a webhook.test ping");
        return MH_VERIFY_REJECT;
    }
    snprintf(err, errlen, "signature in \"Signature\" does not match any active secret");
    return MH_VERIFY_REJECT;
}

/* What MailerSend sends: the bare hex HMAC with the newest secret. */
static int mailersend_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                           size_t errlen)
{
    char sig[2 * MH_MAX_MD + 1];
    struct mh_buf body = {sr->body, sr->body_len};
    if (mh_sign_hmac(src, "sha256", &body, 1, MH_SIG_HEX, sig) < 0) {
        snprintf(err, errlen, "source has no secret to sign with");
        return -1;
    }
    mh_headers_add(sr->headers, "Signature", sig);
    return 0;
}

/* ---- parse ---- */

enum detail { D_NONE, D_BOUNCE_HARD, D_BOUNCE_SOFT, D_DELAY, D_OPEN, D_CLICK, D_UNSUB,
              D_COMPLAINT, D_SUPPRESSED, D_SURVEY, D_UNKNOWN };

static const struct {
    const char *name; /* MailerSend's envelope "type" */
    const char *type; /* canonical type */
    enum detail detail;
} event_types[] = {
    /* Left MailerSend's servers for the recipient's; delivered follows on its reply. */
    {"activity.sent", "email.sent", D_NONE},
    {"activity.delivered", "email.delivered", D_NONE},
    /* Not delivered: MailerSend reports a retry as activity.deferred, so this is final. */
    {"activity.soft_bounced", "email.bounced", D_BOUNCE_SOFT},
    {"activity.hard_bounced", "email.bounced", D_BOUNCE_HARD},
    {"activity.deferred", "email.delivery_delayed", D_DELAY},
    {"activity.opened", "email.opened", D_OPEN},
    {"activity.opened_unique", "email.opened", D_OPEN},   /* provider_event tells it apart */
    {"activity.clicked", "email.clicked", D_CLICK},
    {"activity.clicked_unique", "email.clicked", D_CLICK}, /* provider_event tells it apart */
    {"activity.unsubscribed", "email.unsubscribed", D_UNSUB},
    {"activity.spam_complaint", "email.complained", D_COMPLAINT},
    {"activity.suppressed", "email.suppressed", D_SUPPRESSED},
    {"activity.survey_opened", "other", D_SURVEY},
    {"activity.survey_submitted", "other", D_SURVEY},
};

/* The pieces of one payload, in whichever version it came. */
struct payload {
    json_t *root;
    json_t *data;   /* data, an object, or NULL */
    json_t *email;  /* first version: data.email (an object); NULL in the second */
    json_t *detail; /* data.morph (first version) or data.meta (second), when an object */
};

/* Metadata: the first value of a key wins; [] and {} are left out as well. */
#define META_RULES (MH_META_FIRST | MH_META_SKIP_EMPTY_OBJECT | MH_META_SKIP_EMPTY_ARRAY)

static int nonempty(json_t *v)
{
    return !mh_json_blank(v, META_RULES);
}

/* The scalar members of obj into metadata under their own names, "id" as object_id. */
static void meta_scalars(json_t *ev, json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (json_is_object(v) || json_is_array(v)) continue;
        mh_event_meta_put(ev, !strcmp(key, "id") ? "object_id" : key, v, META_RULES);
    }
}

/* The first non-empty string among the detail object's members keys (NULL-terminated). */
static const char *detail_str(const struct payload *p, const char *const *keys)
{
    for (; *keys; keys++) {
        const char *s = mh_json_str(p->detail, *keys);
        if (s && *s) return s;
    }
    return NULL;
}

static const char *recipient_of(const struct payload *p)
{
    if (p->email) return mh_json_str(json_object_get(p->email, "recipient"), "email");
    const char *s = mh_json_str(p->data, "email");
    if (s && *s) return s;
    json_t *r = json_object_get(p->data, "recipient");
    return json_is_object(r) ? mh_json_str(r, "email") : json_string_value(r);
}

/* The string items of tags, when any. */
static void set_tags(json_t *ev, json_t *list)
{
    json_t *tags = json_array(), *item;
    size_t i;
    json_array_foreach(list, i, item) {
        const char *s = json_string_value(item);
        if (s && *s) json_array_append(tags, item);
    }
    if (json_array_size(tags)) json_object_set(ev, "tags", tags);
    json_decref(tags);
}

static void add_message_fields(json_t *ev, const struct payload *p)
{
    json_t *src = p->email ? p->email : p->data;
    mh_event_set_str(ev, "message_id",
                     p->email ? mh_json_str(json_object_get(p->email, "message"), "id")
                              : mh_json_str(p->data, "message_id"));
    mh_event_set_address(ev, "recipient", recipient_of(p));
    mh_event_set_str(ev, "sender", mh_json_str(src, "from"));
    mh_event_set_str(ev, "subject", mh_json_str(src, "subject"));
    set_tags(ev, json_object_get(src, "tags"));
    mh_event_meta_put(ev, "email_id", p->email ? json_object_get(p->email, "id")
                                      : json_object_get(p->data, "email_id"), META_RULES);
    mh_event_meta_put(ev, "template_id", json_object_get(p->data, "template_id"), META_RULES);
    json_t *domain = json_object_get(p->data, "domain_id");
    mh_event_meta_put(ev, "domain_id",
                      nonempty(domain) ? domain : json_object_get(p->root, "domain_id"),
                      META_RULES);
}

static const char *const reason_keys[] = {"bounce_reason", "reason", NULL};

static void add_bounce(json_t *ev, const struct payload *p, const char *cls)
{
    json_t *b = mh_event_sub(ev, "bounce");
    json_int_t code;
    mh_event_set_str(b, "class", cls);
    if (mh_json_int(p->detail, "bounce_code", &code) == 0) mh_event_set_int(b, "smtp_code", code);
    mh_event_set_str(b, "diagnostic", detail_str(p, reason_keys));
    mh_bounce_classify(b);
    /* MailerSend's own classification (second version: meta.bounce_type), as sent. */
    mh_event_set_str(b, "provider_type", mh_json_str(p->detail, "bounce_type"));
}

/* MailerSend will retry: a soft bounce, with the reason when it gives one. */
static void add_delay(json_t *ev, const struct payload *p)
{
    add_bounce(ev, p, "soft");
    json_t *b = json_object_get(ev, "bounce");
    if (!strcmp(mh_json_str(b, "category"), "unclassified"))
        mh_event_set_str(b, "category", "transient_failure");
    const char *reason = detail_str(p, reason_keys);
    if (reason) mh_event_set_str(mh_event_sub(ev, "delay"), "reason", reason);
}

static void add_engagement(json_t *ev, const struct payload *p, const char *key)
{
    static const char *const ua_keys[] = {"user_agent", "userAgent", NULL};
    json_t *sub = mh_event_sub(ev, key);
    if (!strcmp(key, "click")) mh_event_set_str(sub, "url", mh_json_str(p->detail, "url"));
    mh_event_set_str(sub, "user_agent", detail_str(p, ua_keys));
    mh_event_set_str(sub, "ip", mh_json_str(p->detail, "ip"));
    if (json_object_size(sub) == 0) json_object_del(ev, key);
    mh_event_meta_put(ev, "country", json_object_get(p->detail, "country"), META_RULES);
    mh_event_meta_put(ev, "device_type", json_object_get(p->detail, "device_type"), META_RULES);
    mh_event_meta_put(ev, "browser", json_object_get(p->detail, "browser"), META_RULES);
}

static void add_detail(json_t *ev, const struct payload *p, enum detail d)
{
    json_t *r = p->detail;
    switch (d) {
    case D_BOUNCE_HARD: add_bounce(ev, p, "hard"); break;
    case D_BOUNCE_SOFT: add_bounce(ev, p, "soft"); break;
    case D_DELAY: add_delay(ev, p); break;
    case D_OPEN: add_engagement(ev, p, "open"); break;
    case D_CLICK: add_engagement(ev, p, "click"); break;
    case D_UNSUB:
        mh_event_meta_put(ev, "unsubscribe_reason", json_object_get(r, "unsubscribe_reason"),
                          META_RULES);
        mh_event_meta_put(ev, "unsubscribe_reason", json_object_get(r, "reason"), META_RULES);
        mh_event_meta_put(ev, "unsubscribe_reason_text", json_object_get(r, "readable_reason"),
                          META_RULES);
        break;
    case D_COMPLAINT:
        mh_event_meta_put(ev, "complaint_reason", json_object_get(r, "reason"), META_RULES);
        break;
    case D_SUPPRESSED:
        mh_event_meta_put(ev, "suppression_reason", json_object_get(r, "suppression_reason"),
                          META_RULES);
        mh_event_meta_put(ev, "suppression_reason", json_object_get(r, "reason"), META_RULES);
        break;
    case D_SURVEY:
        mh_event_meta_put(ev, "surveys", json_object_get(r, "surveys"), META_RULES);
        break;
    case D_UNKNOWN: meta_scalars(ev, r); break; /* a new activity: keep what it says */
    case D_NONE: break;
    }
}

/*
 * A type that is no email activity (sender_identity.*, maintenance.*, inbound_*,
 * email_single/list.verified, bulk_email.*, recipient.*, sms.*, future ones): its data's
 * scalar members go into metadata as they are, data.id as object_id. Only recipient.*
 * events name a recipient; elsewhere data.email is some other address.
 */
static void add_other(json_t *ev, const char *name, const struct payload *p)
{
    if (!strncmp(name, "recipient.", 10)) mh_event_set_address(ev, "recipient", recipient_of(p));
    meta_scalars(ev, p->data);
}

static int parse_root(const struct mh_raw *raw, json_t *root, json_t *events, char *err,
                      size_t errlen)
{
    if (!json_is_object(root)) {
        snprintf(err, errlen, "mailersend: body is not a JSON object");
        return -1;
    }
    const char *name = mh_json_str(root, "type");
    /* The documentation's email_single.verified example names its type "object". */
    if (!json_object_get(root, "type")) name = mh_json_str(root, "object");
    if (!name || !*name) {
        snprintf(err, errlen, "mailersend: body without \"type\"");
        return -1;
    }
    if (!strcmp(name, TEST_PING)) return 0; /* the URL check: no event */

    struct payload p = {.root = root, .data = json_object_get(root, "data")};
    if (!json_is_object(p.data)) p.data = NULL;
    int activity = !strncmp(name, "activity.", 9);
    if (activity && !p.data) {
        snprintf(err, errlen, "mailersend: %.64s without a \"data\" object", name);
        return -1;
    }
    if (p.data) {
        json_t *email = json_object_get(p.data, "email");
        p.email = json_is_object(email) ? email : NULL;
        json_t *detail = json_object_get(p.data, p.email ? "morph" : "meta");
        if (!json_is_object(detail)) detail = json_object_get(p.data, "morph");
        p.detail = json_is_object(detail) ? detail : NULL;
    }
    const char *rcpt = p.data ? recipient_of(&p) : NULL;
    if (activity && (!rcpt || !*rcpt)) {
        snprintf(err, errlen, "mailersend: %.64s without a recipient", name);
        return -1;
    }

    const char *type = "other";
    enum detail detail = D_UNKNOWN;
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (!strcmp(event_types[i].name, name)) {
            type = event_types[i].type;
            detail = event_types[i].detail;
        }

    json_t *ev = mh_event_new(raw, type, name);
    if (mh_event_set_time(ev, "occurred_at", mh_json_str(p.data, "created_at")) < 0)
        mh_event_set_time(ev, "occurred_at", mh_json_str(root, "created_at"));
    if (activity) {
        add_message_fields(ev, &p);
        add_detail(ev, &p, detail);
    } else if (p.data) {
        add_other(ev, name, &p);
    }

    /* The activity id; anything else gets an id derived from the whole envelope. */
    const char *id = activity ? mh_json_str(p.data, "id") : NULL;
    char *extra = NULL;
    if (!id || !*id) extra = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    mh_event_finish(ev, id && *id ? id : NULL, extra);
    free(extra);
    json_array_append_new(events, ev);
    return 0;
}

/* MailerSend posts one event per request: never a batch (an array is malformed). */
static json_t *no_batch(json_t *root)
{
    (void)root;
    return NULL;
}

static int mailersend_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    return mh_event_parse_body(raw, "mailersend", no_batch, parse_root, events, err, errlen);
}

const struct mh_provider mh_provider_mailersend = {
    .name = "mailersend",
    .options = options,
    .forward_headers = forward,
    .needs_secret = 1,
    .init = mailersend_init,
    .fini = mailersend_fini,
    .verify = mailersend_verify,
    .parse = mailersend_parse,
    .sign = mailersend_sign,
};
