/*
 * sendgrid.c — Twilio SendGrid Event Webhook: its ECDSA signature, its batch of events
 * and their mapping onto canonical events.
 *
 * Keys: loaded in init, each repeatable for rotation (or for one source receiving
 * several of SendGrid's per-webhook keys):
 *   public_key      = the verification key SendGrid shows (base64 of a DER
 *                     SubjectPublicKeyInfo, "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...");
 *   public_key_file = a file holding that base64, or a PEM "PUBLIC KEY".
 * Only EC P-256 keys are accepted: the scheme is ECDSA P-256 with SHA-256.
 *
 * Verify: X-Twilio-Email-Event-Webhook-Signature is the base64 DER ECDSA signature of
 * X-Twilio-Email-Event-Webhook-Timestamp's bytes followed by the exact raw body (which
 * may end in CRLF: nothing is trimmed). SendGrid defines no freshness window, retries
 * failed posts for up to 72 hours and does not say whether a retry is re-stamped, so the
 * default timestamp_tolerance_s is 345600 (96 h): longer than its retry horizon, shorter
 * than the dedup window, so a replay is either too old or a duplicate. 0 disables it.
 *
 * Parse: a JSON array of flat event objects (a single object is accepted too). The event
 * id is sg_event_id, SendGrid's documented dedup key. A malformed element (not an
 * object, no "event") fails the whole record, which goes to the dead-letter topic
 * intact, as for the other batch providers. Custom args arrive as top-level keys; every
 * key that is not one of SendGrid's own goes into metadata.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
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
#include "mailhook/timeutil.h"
#include "mailhook/verify.h"

#define SIG_HEADER "x-twilio-email-event-webhook-signature"
#define TS_HEADER "x-twilio-email-event-webhook-timestamp"
#define MAX_SIG_BYTES 256 /* a DER P-256 signature is at most 72 bytes */

struct sendgrid_state {
    EVP_PKEY **keys;
    size_t n_keys;
    long tolerance_s;
};

/* 96 h: longer than SendGrid's retry horizon (72 h), shorter than the dedup window. */
static const struct mh_option_def options[] = {
    {.name = "public_key", .type = MH_OPT_STRING, .flags = MH_OPT_REPEATABLE | MH_OPT_NONEMPTY,
     .help = "the verification key SendGrid shows (base64 DER SubjectPublicKeyInfo)"},
    {.name = "public_key_file", .type = MH_OPT_FILE, .flags = MH_OPT_REPEATABLE,
     .help = "a file holding that base64, or a PEM PUBLIC KEY"},
    MH_OPT_TIMESTAMP_TOLERANCE("345600"),
    {0},
};
static const char *const forward[] = {SIG_HEADER, TS_HEADER, NULL};

/* ---- keys ---- */

/* A P-256 public key from base64 DER SPKI (white space ignored), or NULL. */
static EVP_PKEY *key_from_base64(const char *text)
{
    size_t len = strlen(text);
    unsigned char *der = mh_malloc(len + 1);
    ssize_t n = mh_b64_decode(text, len, der, len);
    const unsigned char *p = der;
    EVP_PKEY *pkey = n > 0 ? d2i_PUBKEY(NULL, &p, (long)n) : NULL;
    if (pkey && p != der + n) { /* trailing bytes: not one key */
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    free(der);
    ERR_clear_error();
    return pkey;
}

static EVP_PKEY *key_from_pem(const char *text)
{
    BIO *bio = BIO_new_mem_buf(text, -1);
    if (!bio) mh_oom();
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

static int is_p256(EVP_PKEY *pkey)
{
    char group[64];
    size_t len = 0;
    return EVP_PKEY_is_a(pkey, "EC") &&
           EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len) == 1 &&
           !strcmp(group, "prime256v1");
}

/* Loads one key option into st; -1 with err naming the option. */
static int load_key(struct sendgrid_state *st, const struct mh_kv *kv, char *err, size_t errlen)
{
    EVP_PKEY *pkey;
    if (!strcmp(kv->key, "public_key_file")) {
        char *text = mh_read_key_file(kv->value, NULL, err, errlen);
        if (!text) return -1;
        pkey = strstr(text, "-----BEGIN") ? key_from_pem(text) : key_from_base64(text);
        free(text);
    } else {
        pkey = key_from_base64(kv->value);
    }
    if (!pkey) {
        snprintf(err, errlen, "%s: not a public key (base64 DER SubjectPublicKeyInfo or PEM)",
                 kv->key);
        return -1;
    }
    if (!is_p256(pkey)) {
        EVP_PKEY_free(pkey);
        snprintf(err, errlen, "%s: not an EC P-256 key (SendGrid signs with ECDSA P-256)", kv->key);
        return -1;
    }
    st->keys = mh_realloc(st->keys, (st->n_keys + 1) * sizeof(*st->keys));
    st->keys[st->n_keys++] = pkey;
    return 0;
}

static void state_free(struct sendgrid_state *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n_keys; i++) EVP_PKEY_free(st->keys[i]);
    free(st->keys);
    free(st);
}

static int sendgrid_init(struct mh_source *src, char *err, size_t errlen)
{
    struct sendgrid_state *st = mh_calloc(1, sizeof(*st));
    st->tolerance_s = mh_source_opt_int(src, "timestamp_tolerance_s");
    for (struct mh_kv *kv = src->options; kv; kv = kv->next) {
        if (strcmp(kv->key, "public_key") && strcmp(kv->key, "public_key_file")) continue;
        if (load_key(st, kv, err, errlen) < 0) {
            src->err_line = kv->line;
            goto fail;
        }
    }
    if (st->n_keys == 0) {
        snprintf(err, errlen, "needs public_key or public_key_file");
        goto fail;
    }
    src->state = st;
    return 0;
fail:
    state_free(st);
    return -1;
}

static void sendgrid_fini(struct mh_source *src)
{
    state_free(src->state);
    src->state = NULL;
}

/* ---- verify ---- */

static int ecdsa_verify(EVP_PKEY *pkey, const char *ts, const unsigned char *body, size_t len,
                        const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) mh_oom();
    int ok = EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
             EVP_DigestVerifyUpdate(ctx, ts, strlen(ts)) == 1 &&
             (len == 0 || EVP_DigestVerifyUpdate(ctx, body, len) == 1) &&
             EVP_DigestVerifyFinal(ctx, sig, siglen) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

static enum mh_verdict sendgrid_verify(const struct mh_source *src, const struct mh_request *req,
                                       char *err, size_t errlen)
{
    const struct sendgrid_state *st = src->state;
    const char *b64 = mh_headers_get(req->headers, SIG_HEADER);
    const char *ts = mh_headers_get(req->headers, TS_HEADER);
    if (!b64 || !*b64 || !ts || !*ts) {
        snprintf(err, errlen, "header \"%s\" missing", !b64 || !*b64 ? SIG_HEADER : TS_HEADER);
        return MH_VERIFY_REJECT;
    }
    unsigned char sig[MAX_SIG_BYTES];
    ssize_t siglen = mh_b64_decode(b64, strlen(b64), sig, sizeof(sig));
    if (siglen <= 0) {
        snprintf(err, errlen, "signature is not base64");
        return MH_VERIFY_REJECT;
    }
    int ok = 0;
    for (size_t i = 0; i < st->n_keys && !ok; i++)
        ok = ecdsa_verify(st->keys[i], ts, req->body, req->body_len, sig, (size_t)siglen);
    if (!ok) {
        snprintf(err, errlen, "ECDSA signature does not match any configured key");
        return MH_VERIFY_REJECT;
    }
    int64_t ts_s = 0;
    if (st->tolerance_s > 0 && mh_unix_seconds(ts, &ts_s) < 0) {
        snprintf(err, errlen, "timestamp header is not Unix seconds");
        return MH_VERIFY_REJECT;
    }
    if (st->tolerance_s > 0 && !mh_verify_timestamp(ts_s * 1000, req->now_ms, st->tolerance_s)) {
        snprintf(err, errlen, "timestamp outside the tolerance of %ld s", st->tolerance_s);
        return MH_VERIFY_REJECT;
    }
    return MH_VERIFY_OK;
}

/* 1 when pkey is the private half of one of the source's keys. */
static int key_of_source(const struct sendgrid_state *st, EVP_PKEY *pkey)
{
    for (size_t i = 0; i < st->n_keys; i++)
        if (EVP_PKEY_eq(st->keys[i], pkey) == 1) return 1;
    return 0;
}

/* Base64 DER ECDSA-SHA256 signature of ts || body into out (4*MAX_SIG_BYTES/3+4 bytes). */
static int ecdsa_sign_b64(EVP_PKEY *pkey, const char *ts, const struct mh_sign_req *sr, char *out)
{
    unsigned char sig[MAX_SIG_BYTES];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) mh_oom();
    int ok = EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
             EVP_DigestSignUpdate(ctx, ts, strlen(ts)) == 1 &&
             (sr->body_len == 0 || EVP_DigestSignUpdate(ctx, sr->body, sr->body_len) == 1) &&
             EVP_DigestSignFinal(ctx, sig, &siglen) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    if (ok) out[mh_b64_encode(sig, siglen, out)] = '\0';
    return ok ? 0 : -1;
}

/* Both headers SendGrid sends, stamped now, signed with --key (one of the source's keys). */
static int sendgrid_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                         size_t errlen)
{
    char ts[32], sig[4 * MAX_SIG_BYTES / 3 + 8];
    if (!sr->private_key_file) {
        snprintf(err, errlen, "sendgrid signs with a private key: give it with --key");
        return -1;
    }
    EVP_PKEY *pkey = mh_load_private_key(sr->private_key_file, err, errlen);
    if (!pkey) return -1;
    int rc = -1;
    snprintf(ts, sizeof(ts), "%lld", (long long)(sr->now_ms / 1000));
    if (!key_of_source(src->state, pkey)) {
        snprintf(err, errlen, "%s: not the private half of any key of the source",
                 sr->private_key_file);
    } else if (ecdsa_sign_b64(pkey, ts, sr, sig) < 0) {
        snprintf(err, errlen, "ECDSA-SHA256 signing failed");
    } else {
        mh_headers_add(sr->headers, "X-Twilio-Email-Event-Webhook-Signature", sig);
        mh_headers_add(sr->headers, "X-Twilio-Email-Event-Webhook-Timestamp", ts);
        rc = 0;
    }
    EVP_PKEY_free(pkey);
    return rc;
}

/* ---- parse ---- */

static const struct {
    const char *event;
    const char *type;
} event_types[] = {
    {"processed", "email.accepted"},
    {"delivered", "email.delivered"},
    {"deferred", "email.delivery_delayed"},
    {"bounce", "email.bounced"},
    {"dropped", "email.failed"},
    {"open", "email.opened"},
    {"click", "email.clicked"},
    {"spamreport", "email.complained"},
    {"unsubscribe", "email.unsubscribed"},
    {"group_unsubscribe", "email.unsubscribed"},
    {"group_resubscribe", "email.resubscribed"},
};

/* SendGrid's own event keys; every other top-level key is a custom arg. */
static const char *const reserved_keys[] = {
    "email", "timestamp", "event", "smtp-id", "sg_event_id", "sg_message_id", "category",
    "reason", "status", "response", "attempt", "useragent", "ip", "url", "url_offset",
    "asm_group_id", "tls", "cert_err", "pool", "type", "bounce_classification",
    "marketing_campaign_id", "marketing_campaign_name", "marketing_campaign_version",
    "marketing_campaign_split_id", "post_type", "send_at", "sg_machine_open",
    "sg_template_id", "sg_template_name", "singlesend_id", "singlesend_name", "template_id",
    "template_version_id", "mc_stats", "phase_id", "newsletter", "nlvx_campaign_id",
    "nlvx_user_id", "sg_user_id", NULL,
};

/* dropped reasons meaning SendGrid refused an address on its own suppression lists. */
static const char *const suppressed_reasons[] = {
    "Bounced Address", "Unsubscribed Address", "Spam Reporting Address", NULL,
};

static const char *type_of(const char *event, json_t *obj)
{
    if (!strcmp(event, "dropped")) {
        const char *reason = mh_json_str(obj, "reason");
        for (const char *const *r = suppressed_reasons; reason && *r; r++)
            if (!strcasecmp(reason, *r)) return "email.suppressed";
    }
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++)
        if (!strcmp(event_types[i].event, event)) return event_types[i].type;
    return "other";
}

static int is_reserved(const char *key)
{
    for (const char *const *k = reserved_keys; *k; k++)
        if (!strcmp(*k, key)) return 1;
    return 0;
}

/* Metadata is set with mh_event_meta_replace: a detail overwrites a custom arg of its
 * name. */

/* Custom args (non-reserved keys), then SendGrid details with no canonical field. */
static void set_metadata(json_t *ev, json_t *obj, const char *event)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (!is_reserved(key)) mh_event_meta_replace(ev, key, v);
    }
    mh_event_meta_replace(ev, "asm_group_id", json_object_get(obj, "asm_group_id"));
    if (!strcmp(event, "dropped"))
        mh_event_meta_replace(ev, "drop_reason", json_object_get(obj, "reason"));
}

/* occurred_at from timestamp: Unix seconds as a number or a string. */
static void set_occurred(json_t *ev, json_t *ts)
{
    if (json_is_string(ts)) {
        mh_event_set_time(ev, "occurred_at", json_string_value(ts));
    } else if (json_is_number(ts)) {
        double d = json_number_value(ts);
        if (d > 0 && d < 253402300800.0) /* before 9999-12-31 */
            mh_event_set_time_ms(ev, "occurred_at", (int64_t)(d * 1000.0 + 0.5));
    }
}

/* Categories that say the address itself is bad, the only ones a block may be hard for. */
static int address_category(const char *category)
{
    return category && (!strcmp(category, "invalid_recipient") ||
                        !strcmp(category, "inactive_mailbox") ||
                        !strcmp(category, "invalid_domain"));
}

/*
 * bounce (type "bounce"): SendGrid's permanent bounce, class hard; status and reason give
 * the category. type "blocked": the receiving server refused the message (reputation,
 * policy, content); the address is not at fault, so the class is soft unless the codes
 * say the address is bad (a 5.1.1 inside a block is still a dead mailbox).
 */
static void add_bounce(json_t *ev, json_t *obj)
{
    json_t *b = mh_event_sub(ev, "bounce");
    const char *kind = mh_json_str(obj, "type");
    int blocked = kind && !strcmp(kind, "blocked");
    mh_event_set_str(b, "diagnostic", mh_json_str(obj, "reason"));
    mh_event_set_str(b, "enhanced_code", mh_json_str(obj, "status"));
    mh_bounce_classify_as(b, blocked ? NULL : "hard");
    const char *cls = mh_json_str(b, "class");
    if (blocked && cls && !strcmp(cls, "hard") && !address_category(mh_json_str(b, "category")))
        mh_event_set_str(b, "class", "soft");
    /* SendGrid's own classification: type (bounce / blocked) and bounce_classification. */
    mh_bounce_set_provider_kind(b, kind, mh_json_str(obj, "bounce_classification"));
}

/* deferred: SendGrid will retry; the SMTP response is the reason, attempt the count. */
static void add_deferral(json_t *ev, json_t *obj)
{
    const char *response = mh_json_str(obj, "response");
    json_t *b = mh_event_sub(ev, "bounce");
    mh_event_set_str(b, "diagnostic", response);
    mh_event_set_str(b, "enhanced_code", mh_json_str(obj, "status"));
    mh_bounce_classify_as(b, "soft");
    json_t *d = mh_event_sub(ev, "delay");
    json_int_t attempt;
    mh_event_set_str(d, "reason", response);
    if (mh_json_int(obj, "attempt", &attempt) == 0 && attempt >= 0)
        mh_event_set_int(d, "attempt", attempt);
    if (json_object_size(d) == 0) json_object_del(ev, "delay");
}

static void add_engagement(json_t *ev, json_t *obj, const char *sub_key)
{
    json_t *sub = mh_event_sub(ev, sub_key);
    if (!strcmp(sub_key, "click")) mh_event_set_str(sub, "url", mh_json_str(obj, "url"));
    mh_event_set_str(sub, "user_agent", mh_json_str(obj, "useragent"));
    mh_event_set_str(sub, "ip", mh_json_str(obj, "ip"));
    /* sg_machine_open: SendGrid's mark for an open by Apple's privacy proxy or a scanner. */
    if (!strcmp(sub_key, "open") && mh_json_truthy(json_object_get(obj, "sg_machine_open")))
        json_object_set_new(sub, "machine", json_true());
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

/*
 * delivery: the receiving server's response, tls (1 / 0), the attempt count, and ip —
 * on delivery events the IP SendGrid sent from (on opens and clicks it is the reader's).
 */
static void add_delivery(json_t *ev, json_t *obj)
{
    struct mh_delivery d = MH_DELIVERY_INIT;
    json_int_t n;
    d.smtp_response = mh_json_str(obj, "response");
    d.sending_ip = mh_json_str(obj, "ip");
    if (mh_json_int(obj, "tls", &n) == 0 && (n == 0 || n == 1)) d.tls = (int)n;
    if (mh_json_int(obj, "attempt", &n) == 0 && n >= 0) d.attempt = n;
    mh_event_set_delivery(ev, &d);
}

static void add_type_fields(json_t *ev, const char *type, json_t *obj)
{
    if (!strcmp(type, "email.bounced")) add_bounce(ev, obj);
    else if (!strcmp(type, "email.delivery_delayed")) add_deferral(ev, obj);
    else if (!strcmp(type, "email.opened")) add_engagement(ev, obj, "open");
    else if (!strcmp(type, "email.clicked")) add_engagement(ev, obj, "click");
    if (!strcmp(type, "email.delivered") || !strcmp(type, "email.delivery_delayed") ||
        !strcmp(type, "email.bounced"))
        add_delivery(ev, obj);
}

static int parse_one(const struct mh_raw *raw, json_t *obj, size_t index, json_t *events,
                     char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "sendgrid: event %zu is not a JSON object", index);
        return -1;
    }
    const char *name = mh_json_str(obj, "event");
    if (!name || !*name) {
        snprintf(err, errlen, "sendgrid: event %zu has no \"event\"", index);
        return -1;
    }
    const char *type = type_of(name, obj);
    json_t *ev = mh_event_new(raw, type, name);
    /* sg_message_id may be missing on asynchronous bounces: smtp-id names the message. */
    const char *mid = mh_json_str(obj, "sg_message_id");
    mh_event_set_str(ev, "message_id", mid && *mid ? mid : mh_json_str(obj, "smtp-id"));
    mh_event_set_address(ev, "recipient", mh_json_str(obj, "email"));
    set_occurred(ev, json_object_get(obj, "timestamp"));
    mh_event_set_tags(ev, json_object_get(obj, "category")); /* a string or an array */
    set_metadata(ev, obj, name);
    add_type_fields(ev, type, obj);
    mh_event_finish(ev, mh_json_str(obj, "sg_event_id"), mh_json_str(obj, "url"));
    json_array_append_new(events, ev);
    return 0;
}

static int sendgrid_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)raw->body, raw->body_len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (!root) {
        snprintf(err, errlen, "sendgrid: invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    if (json_is_array(root)) {
        size_t i;
        json_t *item;
        json_array_foreach(root, i, item) {
            if ((rc = parse_one(raw, item, i, events, err, errlen)) < 0) break;
        }
    } else {
        rc = parse_one(raw, root, 0, events, err, errlen);
    }
    json_decref(root);
    return rc;
}

const struct mh_provider mh_provider_sendgrid = {
    .name = "sendgrid",
    .options = options,
    .forward_headers = forward,
    .needs_secret = 0,
    .init = sendgrid_init,
    .fini = sendgrid_fini,
    .verify = sendgrid_verify,
    .parse = sendgrid_parse,
    .sign = sendgrid_sign,
};
