/*
 * cloudmailin.c — CloudMailin outbound "Email Sending Event" webhooks.
 *
 * Verify: CloudMailin signs nothing on this webhook. A source authenticates the caller
 * with credentials it put in the URL it gave CloudMailin, in either form:
 *   - HTTP Basic ("https://USER:SECRET@host/v1/webhooks/NAME"): the user must equal the
 *     option basic_user and the password one of the source's secrets;
 *   - a URL token ("https://host/v1/webhooks/NAME?token=SECRET").
 * Every secret is tried and every comparison is made on SHA-256 digests with
 * mh_ct_equal, so neither the time taken nor an early exit tells which part or which
 * secret was wrong, or how long it is. There is no timestamp: replays can only be stopped
 * by dedup, and CloudMailin sends no event id (see below).
 *
 * Parse: {"events": [{kind, recipient, message_id, details{}}, ...]} — a batch, so one
 * request gives many events. details is "additional details if present" and is not
 * documented further; a few plausibly named members are read when they are there
 * (diagnostic text, status code, URL, user agent, IP, time) and nothing is assumed when
 * they are not. Events carry no id and no time: ids are derived from provider, tenant,
 * message id, kind and recipient plus the whole details object, so two opens with the
 * same details share an id and count as one (the best a payload without ids allows).
 */
#include <event2/http.h>
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

static const struct mh_option_def options[] = {
    {.name = "basic_user", .type = MH_OPT_STRING,
     .help = "accept HTTP Basic with this user and one of the secrets (a ?token= URL is "
             "accepted either way)"},
    {0},
};

static int cloudmailin_init(struct mh_source *src, char *err, size_t errlen)
{
    const char *user = mh_source_opt(src, "basic_user");
    if (user && (!*user || strchr(user, ':'))) {
        src->err_line = mh_source_opt_line(src, "basic_user");
        snprintf(err, errlen, "basic_user: must be non-empty and contain no ':'");
        return -1;
    }
    return 0;
}

/* ---- verify ---- */

/*
 * The first "token" query parameter of uri, percent-decoded by libevent with "+" kept as
 * a literal plus (secrets are often base64); NULL when there is none. *present says
 * whether the parameter was there at all. Caller frees.
 */
static char *query_token(const char *uri, int *present)
{
    const char *q = uri ? strchr(uri, '?') : NULL;
    *present = 0;
    if (!q) return NULL;
    for (const char *p = q + 1; *p;) {
        size_t len = strcspn(p, "&#");
        if (len >= 6 && !strncmp(p, "token=", 6)) {
            *present = 1;
            char *raw = mh_strndup(p + 6, len - 6);
            size_t n = 0;
            char *out = evhttp_uridecode(raw, 0, &n);
            memset(raw, 0, strlen(raw));
            free(raw);
            /* A NUL inside the token cannot be a secret: treat as no token. */
            if (out && strlen(out) != n) {
                free(out);
                out = NULL;
            }
            return out;
        }
        p += len;
        if (*p != '&') break;
        p++;
    }
    return NULL;
}

/* 1 when an Authorization: Basic header is present; *ok says whether it matched. */
static int check_basic(const struct mh_source *src, const struct mh_request *req, int *ok)
{
    return mh_verify_basic(src, mh_headers_get(req->headers, "authorization"),
                           mh_source_opt(src, "basic_user"), ok);
}

static enum mh_verdict cloudmailin_verify(const struct mh_source *src,
                                          const struct mh_request *req, char *err, size_t errlen)
{
    int basic_ok = 0, token_ok = 0, have_token;
    int have_basic = check_basic(src, req, &basic_ok);
    char *token = query_token(req->uri, &have_token);
    if (token && *token) {
        token_ok = mh_verify_secret_any(src, token, strlen(token));
        memset(token, 0, strlen(token));
    }
    free(token);
    if (basic_ok || token_ok) return MH_VERIFY_OK;
    if (!have_basic && !have_token)
        snprintf(err, errlen, "credentials missing (HTTP Basic or \"token\" query parameter)");
    else
        snprintf(err, errlen, "credentials do not match the source's user and secrets");
    return MH_VERIFY_REJECT;
}

/* Appends "token=<secret, percent-encoded>" to the query of sr->url. */
static int add_url_token(const char *secret, struct mh_sign_req *sr, char *err, size_t errlen)
{
    char *enc = evhttp_uriencode(secret, -1, 0);
    if (!enc) mh_oom();
    size_t len = strlen(sr->url);
    int rc = 0;
    if (len + strlen(enc) + 8 > sr->url_cap) {
        snprintf(err, errlen, "URL too long to add the token");
        rc = -1;
    } else {
        snprintf(sr->url + len, sr->url_cap - len, "%ctoken=%s", strchr(sr->url, '?') ? '&' : '?',
                 enc);
    }
    memset(enc, 0, strlen(enc));
    free(enc);
    return rc;
}

/*
 * What the source expects CloudMailin to send: HTTP Basic credentials when basic_user is
 * set, else the URL token — both with the newest (first) secret. The output is the
 * credential itself: there is no signature to print instead.
 */
static int cloudmailin_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err,
                            size_t errlen)
{
    const char *user = mh_source_opt(src, "basic_user");
    if (src->n_secrets == 0) {
        snprintf(err, errlen, "source has no secret");
        return -1;
    }
    if (!user) return add_url_token(src->secrets[0], sr, err, errlen);
    return mh_sign_basic(src, user, sr->headers);
}

/* ---- parse ---- */

struct kind_map {
    const char *kind;
    const char *type;
    const char *bounce_class; /* set before classification; NULL: the codes decide */
};

/* The 2026 list, then the legacy names of older revisions of the same page. */
static const struct kind_map kinds[] = {
    {"registration", "email.accepted", NULL},
    {"dispatch", "other", NULL},
    {"rate_limit", "account.send_limit", NULL},
    {"delivery", "email.delivered", NULL},
    {"bounce", "email.bounced", "hard"},
    {"soft_bounce", "email.delivery_delayed", "soft"},
    {"dispatch_soft_bounce", "email.delivery_delayed", "soft"},
    {"error", "email.failed", NULL},
    {"retries_exhausted", "email.bounced", NULL},
    {"open", "email.opened", NULL},
    {"read", "email.opened", NULL},
    {"click", "email.clicked", NULL},
    {"auto_reply", "email.auto_reply", NULL},
    {"bounce_reply", "other", NULL},
    {"suppressed", "email.suppressed", NULL},
    {"rate_limited", "account.send_limit", NULL},
    {"blocked", "email.suppressed", NULL},
    {"spamd", "email.failed", NULL},
    {"complaint", "email.complained", NULL},
    {NULL, NULL, NULL},
};

static const struct kind_map *find_kind(const char *kind)
{
    for (const struct kind_map *k = kinds; k->kind; k++)
        if (!strcasecmp(k->kind, kind)) return k;
    return NULL;
}

/* First string member of obj among keys, or NULL. */
static const char *first_str(json_t *obj, const char *const *keys)
{
    for (; *keys; keys++) {
        const char *s = mh_json_str(obj, *keys);
        if (s && *s) return s;
    }
    return NULL;
}

static const char *const diag_keys[] = {"diagnostic_code", "diagnostic", "smtp_response",
                                        "response", "reason", "message", "error", NULL};
static const char *const time_keys[] = {"timestamp", "occurred_at", "time", "created_at", NULL};

static void add_bounce(json_t *ev, json_t *details, const struct kind_map *km)
{
    static const char *const status_keys[] = {"status", "enhanced_code", NULL};
    static const char *const host_keys[] = {"remote_host", "mx", "host", NULL};
    json_t *b = mh_event_sub(ev, "bounce");
    json_int_t code;
    mh_event_set_str(b, "diagnostic", first_str(details, diag_keys));
    mh_event_set_str(b, "enhanced_code", first_str(details, status_keys));
    mh_event_set_str(b, "remote_host", first_str(details, host_keys));
    if ((mh_json_int(details, "smtp_code", &code) == 0 || mh_json_int(details, "code", &code) == 0) &&
        code >= 200 && code <= 599)
        mh_event_set_int(b, "smtp_code", code);
    mh_bounce_classify_as(b, km->bounce_class);
    /* Retries exhausted: the message is lost, the address is not proven bad (X.4.7). */
    if (!km->bounce_class && !strcmp(mh_json_str(b, "class"), "undetermined")) {
        mh_event_set_str(b, "class", "soft");
        if (!strcmp(mh_json_str(b, "category"), "unclassified"))
            mh_event_set_str(b, "category", "transient_failure");
    }
}

/*
 * delivery of a delivery or bounce kind, from what details carries of the receiving
 * server: its host and its SMTP reply.
 */
static void add_delivery(json_t *ev, json_t *details)
{
    static const char *const host_keys[] = {"remote_host", "mx", "host", NULL};
    static const char *const reply_keys[] = {"smtp_response", "response", NULL};
    static const char *const ip_keys[] = {"remote_ip", "mx_ip", NULL};
    struct mh_delivery d = MH_DELIVERY_INIT;
    d.remote_host = first_str(details, host_keys);
    d.remote_ip = first_str(details, ip_keys);
    d.smtp_response = first_str(details, reply_keys);
    json_t *tls = json_object_get(details, "tls");
    if (json_is_boolean(tls)) d.tls = json_is_true(tls);
    mh_event_set_delivery(ev, &d);
}

static void add_engagement(json_t *ev, json_t *details, const char *sub_key)
{
    static const char *const ua_keys[] = {"user_agent", "useragent", NULL};
    static const char *const ip_keys[] = {"ip", "ip_address", NULL};
    json_t *sub = mh_event_sub(ev, sub_key);
    mh_event_set_str(sub, "user_agent", first_str(details, ua_keys));
    mh_event_set_str(sub, "ip", first_str(details, ip_keys));
    if (json_object_size(sub) == 0) json_object_del(ev, sub_key);
}

/* The details object as stable text, so different details give different ids. */
static char *details_key(json_t *details)
{
    if (!json_is_object(details) || json_object_size(details) == 0) return NULL;
    return json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
}

static int parse_one(const struct mh_raw *raw, json_t *obj, json_t *events, char *err,
                     size_t errlen)
{
    static const char *const url_keys[] = {"url", "link", "href", NULL};
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "cloudmailin: event is not a JSON object");
        return -1;
    }
    const char *kind = mh_json_str(obj, "kind");
    if (!kind || !*kind) {
        snprintf(err, errlen, "cloudmailin: event without \"kind\"");
        return -1;
    }
    const struct kind_map *km = find_kind(kind);
    const char *type = km ? km->type : "other";
    json_t *details = json_object_get(obj, "details");
    if (!json_is_object(details)) details = NULL;

    json_t *ev = mh_event_new(raw, type, kind);
    mh_event_set_str(ev, "message_id", mh_json_str(obj, "message_id"));
    mh_event_set_address(ev, "recipient", mh_json_str(obj, "recipient"));
    mh_event_set_time(ev, "occurred_at", first_str(details, time_keys));

    if (!strcmp(type, "email.bounced") || !strcmp(type, "email.delivery_delayed"))
        add_bounce(ev, details, km);
    if (!strcmp(type, "email.delivered") || !strcmp(type, "email.bounced") ||
        !strcmp(type, "email.delivery_delayed"))
        add_delivery(ev, details);
    if (!strcmp(type, "email.delivery_delayed")) {
        const char *reason = first_str(details, diag_keys);
        if (reason) mh_event_set_str(mh_event_sub(ev, "delay"), "reason", reason);
    }
    if (!strcmp(type, "email.clicked")) {
        mh_event_set_str(mh_event_sub(ev, "click"), "url", first_str(details, url_keys));
        add_engagement(ev, details, "click");
    }
    if (!strcmp(type, "email.opened")) add_engagement(ev, details, "open");

    char *extra = details_key(details);
    mh_event_finish(ev, NULL, extra);
    free(extra);
    json_array_append_new(events, ev);
    return 0;
}

static json_t *batch_of(json_t *root, char *err, size_t errlen)
{
    if (json_is_array(root)) return root;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "cloudmailin: body is not a JSON object");
        return NULL;
    }
    json_t *list = json_object_get(root, "events");
    if (json_is_array(list)) return list;
    if (json_object_get(root, "kind")) return NULL; /* a single bare event */
    snprintf(err, errlen, "cloudmailin: body has no \"events\" array");
    return NULL;
}

static int cloudmailin_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)raw->body, raw->body_len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    if (!root) {
        snprintf(err, errlen, "cloudmailin: invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    err[0] = '\0';
    json_t *list = batch_of(root, err, errlen);
    if (list) {
        size_t i;
        json_t *item;
        rc = 0;
        json_array_foreach(list, i, item) {
            if ((rc = parse_one(raw, item, events, err, errlen)) < 0) break;
        }
    } else if (!err[0]) {
        rc = parse_one(raw, root, events, err, errlen);
    }
    json_decref(root);
    return rc;
}

const struct mh_provider mh_provider_cloudmailin = {
    .name = "cloudmailin",
    .options = options,
    .forward_headers = NULL,
    .needs_secret = 1,
    .init = cloudmailin_init,
    .fini = NULL,
    .verify = cloudmailin_verify,
    .parse = cloudmailin_parse,
    .sign = cloudmailin_sign,
};
