/*
 * ses.c — Amazon SES events delivered by Amazon SNS to an HTTP(S) subscription: the SNS
 * message signature, the SES event record inside Message, and their mapping onto
 * canonical events. docs/providers/ses.md has the tables and the decisions.
 *
 * Options (each repeatable where it makes sense, for rotation):
 *   certificate_file = PEM     an SNS signing certificate; its file name must be the one
 *                              in SigningCertURL (SimpleNotificationService-<id>.pem)
 *   certificate_dir  = DIR     every *.pem in DIR, keyed by file name the same way
 *   topic_arn        = ARN     the topics this source accepts (required)
 *   timestamp_tolerance_s      freshness window on the SNS Timestamp (0 disables)
 * Nothing is fetched over the network: SigningCertURL only selects a configured
 * certificate, after it was checked to be an https .pem URL on sns.<region>.amazonaws.com
 * (or .amazonaws.com.cn). Certificates are pinned, so their validity period is not
 * enforced (an expiry is logged at load).
 *
 * Verify: SignatureVersion 1 = RSA PKCS#1 v1.5 SHA-1, 2 = SHA-256, over the canonical
 * "Key\nValue\n" string of the decoded envelope fields (string_to_sign). Raw message
 * delivery (x-amz-sns-rawdelivery: true) is unsigned and refused.
 *
 * Parse: Notification -> the SES record in Message, one canonical event per recipient;
 * SubscriptionConfirmation / UnsubscribeConfirmation -> type "other" carrying the
 * SubscribeURL. Event ids are derived per recipient from mail.messageId, the event type,
 * the recipient, the time and feedbackId (bounce, complaint) or the event's own
 * timestamp text (and link), so the same SES event arriving through two topics (identity
 * notifications and event publishing) gets one id; the SNS MessageId is only metadata.
 */
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mailhook/bounce.h"
#include "mailhook/config.h"
#include "mailhook/crypto.h"
#include "mailhook/event.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"
#include "mailhook/timeutil.h"
#include "mailhook/verify.h"

#define RAW_HEADER "x-amz-sns-rawdelivery"
#define TYPE_HEADER "x-amz-sns-message-type"
#define TOPIC_HEADER "x-amz-sns-topic-arn"
#define ID_HEADER "x-amz-sns-message-id"
#define CERT_FILE_MAX (64 * 1024)
#define MAX_SIG_BYTES 1024 /* RSA up to 8192 bits */

struct ses_cert {
    char *name; /* file name as it appears at the end of SigningCertURL */
    EVP_PKEY *key;
};

struct ses_state {
    struct ses_cert *certs;
    size_t n_certs;
    char **topics;
    size_t n_topics;
    long tolerance_s;
};

static const struct mh_option_def options[] = {
    {.name = "certificate_file", .type = MH_OPT_FILE, .flags = MH_OPT_REPEATABLE,
     .help = "an SNS signing certificate (PEM) named as in SigningCertURL"},
    {.name = "certificate_dir", .type = MH_OPT_DIR, .flags = MH_OPT_REPEATABLE,
     .help = "a directory whose *.pem files are SNS signing certificates"},
    {.name = "topic_arn", .type = MH_OPT_STRING, .flags = MH_OPT_REPEATABLE | MH_OPT_NONEMPTY,
     .help = "an SNS topic ARN this source accepts (at least one)"},
    MH_OPT_TIMESTAMP_TOLERANCE("604800"),
    {0},
};
static const char *const forward[] = {TYPE_HEADER, "x-amz-sns-message-id", TOPIC_HEADER,
                                      "x-amz-sns-subscription-arn", NULL};

/* ---- certificates and options ---- */

/* 1 when name can be the file name of a SigningCertURL: [A-Za-z0-9._-]+ ending in ".pem". */
static int cert_name_ok(const char *name, size_t len)
{
    if (len <= 4 || strncmp(name + len - 4, ".pem", 4)) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* The RSA public key of the PEM certificate at path; NULL with err. Logs an expiry. */
static EVP_PKEY *load_cert_key(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    EVP_PKEY *key = x ? X509_get_pubkey(x) : NULL;
    if (!x) snprintf(err, errlen, "%s: no PEM certificate", path);
    else if (!key || !EVP_PKEY_is_a(key, "RSA")) {
        snprintf(err, errlen, "%s: not an RSA certificate (SNS signs with RSA)", path);
        EVP_PKEY_free(key);
        key = NULL;
    } else if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        /* Pinned: still used, but the operator should know AWS has moved on. */
        mh_warn("ses: certificate %s has expired; SNS no longer signs with it", path);
    }
    X509_free(x);
    ERR_clear_error();
    return key;
}

static int add_cert(struct ses_state *st, const char *path, const char *name, char *err,
                    size_t errlen)
{
    if (!cert_name_ok(name, strlen(name))) {
        snprintf(err, errlen, "%s: the file name must be the one in SigningCertURL "
                              "(e.g. SimpleNotificationService-<id>.pem)", path);
        return -1;
    }
    for (size_t i = 0; i < st->n_certs; i++)
        if (!strcmp(st->certs[i].name, name)) {
            snprintf(err, errlen, "%s: a certificate named %s is already configured", path, name);
            return -1;
        }
    EVP_PKEY *key = load_cert_key(path, err, errlen);
    if (!key) return -1;
    st->certs = mh_realloc(st->certs, (st->n_certs + 1) * sizeof(*st->certs));
    st->certs[st->n_certs++] = (struct ses_cert){mh_strdup(name), key};
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.pem file of dir, in name order. */
static int add_cert_dir(struct ses_state *st, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open directory %s", dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 4 || strcmp(de->d_name + len - 4, ".pem")) continue;
        names = mh_realloc(names, (n + 1) * sizeof(*names));
        names[n++] = mh_strdup(de->d_name);
    }
    closedir(d);
    if (n == 0) {
        snprintf(err, errlen, "certificate_dir %s holds no .pem file", dir);
        return -1;
    }
    qsort(names, n, sizeof(*names), cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = mh_malloc(plen);
        struct stat sb;
        snprintf(path, plen, "%s/%s", dir, names[i]);
        if (rc == 0 && stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            rc = add_cert(st, path, names[i], err, errlen);
        free(path);
        free(names[i]);
    }
    free(names);
    return rc;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* arn:<partition>:sns:<region>:<account>:<topic>, loosely: six fields, "sns" the third. */
static int topic_arn_ok(const char *arn)
{
    int colons = 0;
    for (const char *p = arn; *p; p++) colons += *p == ':';
    return !strncmp(arn, "arn:", 4) && strstr(arn, ":sns:") && colons == 5;
}

static void state_free(struct ses_state *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n_certs; i++) {
        free(st->certs[i].name);
        EVP_PKEY_free(st->certs[i].key);
    }
    for (size_t i = 0; i < st->n_topics; i++) free(st->topics[i]);
    free(st->certs);
    free(st->topics);
    free(st);
}

static int ses_init(struct mh_source *src, char *err, size_t errlen)
{
    struct ses_state *st = mh_calloc(1, sizeof(*st));
    st->tolerance_s = mh_source_opt_int(src, "timestamp_tolerance_s");
    for (struct mh_kv *kv = src->options; kv; kv = kv->next) {
        int rc = 0;
        if (!strcmp(kv->key, "certificate_file")) {
            rc = add_cert(st, kv->value, base_name(kv->value), err, errlen);
        } else if (!strcmp(kv->key, "certificate_dir")) {
            rc = add_cert_dir(st, kv->value, err, errlen);
        } else if (!strcmp(kv->key, "topic_arn")) {
            if (!topic_arn_ok(kv->value)) {
                snprintf(err, errlen, "topic_arn: not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)");
                rc = -1;
            } else {
                st->topics = mh_realloc(st->topics, (st->n_topics + 1) * sizeof(*st->topics));
                st->topics[st->n_topics++] = mh_strdup(kv->value);
            }
        }
        if (rc < 0) {
            src->err_line = kv->line;
            goto fail;
        }
    }
    if (st->n_certs == 0) {
        snprintf(err, errlen, "needs certificate_file or certificate_dir (SNS signing certificates)");
        goto fail;
    }
    if (st->n_topics == 0) {
        snprintf(err, errlen, "needs topic_arn (the SNS topics this source accepts)");
        goto fail;
    }
    src->state = st;
    return 0;
fail:
    state_free(st);
    return -1;
}

static void ses_fini(struct mh_source *src)
{
    state_free(src->state);
    src->state = NULL;
}

/* ---- the SNS envelope ---- */

/* The signed keys, in the (byte-sorted) order SNS concatenates them. */
static const char *const notification_keys[] = {"Message", "MessageId", "Subject", "Timestamp",
                                                "TopicArn", "Type", NULL};
static const char *const confirmation_keys[] = {"Message", "MessageId", "SubscribeURL",
                                                "Timestamp", "Token", "TopicArn", "Type", NULL};

static int is_confirmation(const char *type)
{
    return !strcmp(type, "SubscriptionConfirmation") || !strcmp(type, "UnsubscribeConfirmation");
}

/* A string field of the envelope; Lambda-style spellings (SubscribeUrl, ...) tolerated. */
static json_t *env_field(json_t *env, const char *key)
{
    json_t *v = json_object_get(env, key);
    if (!v && !strcmp(key, "SubscribeURL")) v = json_object_get(env, "SubscribeUrl");
    if (!v && !strcmp(key, "SigningCertURL")) v = json_object_get(env, "SigningCertUrl");
    return json_is_string(v) ? v : NULL;
}

/*
 * The string SNS signs: "Key\nValue\n" for each signed key present, decoded values.
 * Subject is optional; every other key is required. NULL with err (naming the key).
 * *len receives the length (a value may not hold NUL: jansson refuses \u0000 by default).
 */
static char *string_to_sign(json_t *env, const char *type, size_t *len, char *err, size_t errlen)
{
    const char *const *keys = is_confirmation(type) ? confirmation_keys : notification_keys;
    size_t total = 0;
    for (const char *const *k = keys; *k; k++) {
        json_t *v = env_field(env, *k);
        if (!v && strcmp(*k, "Subject")) {
            snprintf(err, errlen, "SNS message without a string \"%s\"", *k);
            return NULL;
        }
        if (v) total += strlen(*k) + json_string_length(v) + 2;
    }
    char *buf = mh_malloc(total + 1), *p = buf;
    for (const char *const *k = keys; *k; k++) {
        json_t *v = env_field(env, *k);
        if (!v) continue;
        size_t kl = strlen(*k), vl = json_string_length(v);
        memcpy(p, *k, kl);
        p[kl] = '\n';
        memcpy(p + kl + 1, json_string_value(v), vl);
        p[kl + 1 + vl] = '\n';
        p += kl + vl + 2;
    }
    *p = '\0';
    *len = total;
    return buf;
}

/*
 * The certificate file name of a SigningCertURL, or NULL when the URL is not
 * https://sns.<region>.amazonaws.com[.cn]/<name>.pem (region: [A-Za-z0-9-]{3,}; no port,
 * user, query or sub-path — the pattern AWS's own validators apply, made strict).
 */
static const char *cert_url_name(const char *url)
{
    static const char prefix[] = "https://sns.";
    if (strncmp(url, prefix, sizeof(prefix) - 1)) return NULL;
    const char *p = url + sizeof(prefix) - 1, *region = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '-')
        p++;
    if (p - region < 3) return NULL;
    if (!strncmp(p, ".amazonaws.com/", 15)) p += 15;
    else if (!strncmp(p, ".amazonaws.com.cn/", 18)) p += 18;
    else return NULL;
    return cert_name_ok(p, strlen(p)) ? p : NULL;
}

static const struct ses_cert *find_cert(const struct ses_state *st, const char *name)
{
    for (size_t i = 0; i < st->n_certs; i++)
        if (!strcmp(st->certs[i].name, name)) return &st->certs[i];
    return NULL;
}

static const char *digest_of(const char *version)
{
    if (!strcmp(version, "1")) return "SHA1";
    if (!strcmp(version, "2")) return "SHA256";
    return NULL;
}

static int rsa_verify(EVP_PKEY *key, const char *md, const char *msg, size_t len,
                      const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) mh_oom();
    int ok = EVP_DigestVerifyInit_ex(ctx, NULL, md, NULL, NULL, key, NULL) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

static int topic_allowed(const struct ses_state *st, const char *arn)
{
    for (size_t i = 0; i < st->n_topics; i++)
        if (!strcmp(st->topics[i], arn)) return 1;
    return 0;
}

/* ---- verify ---- */

/* Checks of the envelope that need no crypto; MH_VERIFY_OK to go on. */
static enum mh_verdict check_envelope(const struct ses_state *st, const struct mh_request *req,
                                      json_t *env, const char *type, char *err, size_t errlen)
{
    const char *hdr_type = mh_headers_get(req->headers, TYPE_HEADER);
    if (hdr_type && strcmp(hdr_type, type)) {
        snprintf(err, errlen, "header %s does not match the message's Type", TYPE_HEADER);
        return MH_VERIFY_REJECT;
    }
    json_t *topic = env_field(env, "TopicArn");
    if (!topic) {
        snprintf(err, errlen, "SNS message without a string \"TopicArn\"");
        return MH_VERIFY_MALFORMED;
    }
    if (!topic_allowed(st, json_string_value(topic))) {
        snprintf(err, errlen, "TopicArn is not one of the source's topic_arn");
        return MH_VERIFY_REJECT;
    }
    const char *hdr_topic = mh_headers_get(req->headers, TOPIC_HEADER);
    if (hdr_topic && strcmp(hdr_topic, json_string_value(topic))) {
        snprintf(err, errlen, "header %s does not match the message's TopicArn", TOPIC_HEADER);
        return MH_VERIFY_REJECT;
    }
    /* Forwarded onto the raw record like the two above: bound to the signed MessageId. */
    const char *hdr_id = mh_headers_get(req->headers, ID_HEADER);
    json_t *id = env_field(env, "MessageId");
    if (hdr_id && (!id || strcmp(hdr_id, json_string_value(id)))) {
        snprintf(err, errlen, "header %s does not match the message's MessageId", ID_HEADER);
        return MH_VERIFY_REJECT;
    }
    return MH_VERIFY_OK;
}

static enum mh_verdict check_signature(const struct ses_state *st, json_t *env, const char *type,
                                       char *err, size_t errlen)
{
    json_t *sig_b64 = env_field(env, "Signature"), *version = env_field(env, "SignatureVersion");
    json_t *url = env_field(env, "SigningCertURL");
    if (!sig_b64 || !json_string_length(sig_b64) || !version || !url) {
        snprintf(err, errlen, "SNS message without %s",
                 !sig_b64 || !json_string_length(sig_b64) ? "Signature"
                 : !version                               ? "SignatureVersion"
                                                          : "SigningCertURL");
        return MH_VERIFY_REJECT;
    }
    const char *md = digest_of(json_string_value(version));
    if (!md) {
        snprintf(err, errlen, "unsupported SignatureVersion (1 and 2 are SNS's)");
        return MH_VERIFY_REJECT;
    }
    const char *name = cert_url_name(json_string_value(url));
    if (!name) {
        snprintf(err, errlen, "SigningCertURL is not an https .pem URL on sns.<region>.amazonaws.com");
        return MH_VERIFY_REJECT;
    }
    const struct ses_cert *cert = find_cert(st, name);
    if (!cert) {
        /* An AWS certificate we were not given (SNS rotated it): retryable, and loud. */
        mh_error("ses: SigningCertURL names %s, which no certificate_file / certificate_dir "
                 "provides; add it (SNS retries meanwhile)", name);
        snprintf(err, errlen, "signing certificate %s is not configured", name);
        return MH_VERIFY_RETRY;
    }
    unsigned char sig[MAX_SIG_BYTES];
    ssize_t siglen = mh_b64_decode(json_string_value(sig_b64), json_string_length(sig_b64), sig,
                                   sizeof(sig));
    if (siglen <= 0) {
        snprintf(err, errlen, "Signature is not base64");
        return MH_VERIFY_REJECT;
    }
    size_t len;
    char *msg = string_to_sign(env, type, &len, err, errlen);
    if (!msg) return MH_VERIFY_MALFORMED;
    int ok = rsa_verify(cert->key, md, msg, len, sig, (size_t)siglen);
    free(msg);
    if (!ok) {
        snprintf(err, errlen, "signature does not verify with certificate %s", name);
        return MH_VERIFY_REJECT;
    }
    return MH_VERIFY_OK;
}

static enum mh_verdict ses_verify(const struct mh_source *src, const struct mh_request *req,
                                  char *err, size_t errlen)
{
    const struct ses_state *st = src->state;
    const char *raw = mh_headers_get(req->headers, RAW_HEADER);
    if (raw && !strcasecmp(raw, "true")) {
        snprintf(err, errlen, "raw message delivery is unsigned: turn RawMessageDelivery off "
                              "on the SNS subscription");
        return MH_VERIFY_REJECT;
    }
    json_error_t jerr;
    json_t *env = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *type = json_object_get(env, "Type");
    enum mh_verdict v = MH_VERIFY_MALFORMED;
    if (!json_is_object(env)) {
        snprintf(err, errlen, "body is not a JSON object (an SNS message)");
    } else if (!json_is_string(type) || (strcmp(json_string_value(type), "Notification") &&
                                         !is_confirmation(json_string_value(type)))) {
        snprintf(err, errlen, "SNS message without a known \"Type\"");
    } else if ((v = check_envelope(st, req, env, json_string_value(type), err, errlen)) ==
                   MH_VERIFY_OK &&
               (v = check_signature(st, env, json_string_value(type), err, errlen)) ==
                   MH_VERIFY_OK &&
               st->tolerance_s > 0) {
        int64_t ts_ms;
        json_t *ts = env_field(env, "Timestamp");
        if (mh_time_parse(json_string_value(ts), &ts_ms) < 0) {
            snprintf(err, errlen, "Timestamp is not an ISO 8601 time");
            v = MH_VERIFY_REJECT;
        } else if (!mh_verify_timestamp(ts_ms, req->now_ms, st->tolerance_s)) {
            snprintf(err, errlen, "Timestamp outside the tolerance of %ld s", st->tolerance_s);
            v = MH_VERIFY_REJECT;
        }
    }
    json_decref(env);
    return v;
}

/* The configured certificate whose public key is pkey's, or NULL. */
static const struct ses_cert *cert_of_key(const struct ses_state *st, EVP_PKEY *pkey)
{
    for (size_t i = 0; i < st->n_certs; i++)
        if (EVP_PKEY_eq(st->certs[i].key, pkey) == 1) return &st->certs[i];
    return NULL;
}

/*
 * The envelope to sign: body itself when it is an SNS message (a JSON object with a
 * Type), re-stamped now when stale and re-addressed to the source's first topic when its topic is
 * not one of the source's; else a new Notification to the source's first topic with body as Message.
 */
static json_t *envelope_for(const struct ses_state *st, const struct mh_sign_req *sr, char *err,
                            size_t errlen)
{
    char ts[MH_TIME_BUFSZ];
    mh_time_format(sr->now_ms, ts);
    json_t *root = json_loadb((const char *)sr->body, sr->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(root) && json_is_string(json_object_get(root, "Type"))) {
        /* An SNS message as SNS would send it to this source now: stamped now when the
         * freshness check would refuse its (signed) Timestamp, from a topic the source
         * takes. */
        json_t *old = env_field(root, "Timestamp");
        int64_t old_ms;
        if (st->tolerance_s > 0 &&
            (!old || mh_time_parse(json_string_value(old), &old_ms) < 0 ||
             !mh_verify_timestamp(old_ms, sr->now_ms, st->tolerance_s)))
            json_object_set_new(root, "Timestamp", json_string(ts));
        json_t *topic = env_field(root, "TopicArn");
        int known = 0;
        for (size_t i = 0; topic && json_is_string(topic) && i < st->n_topics; i++)
            if (!strcmp(json_string_value(topic), st->topics[i])) known = 1;
        if (!known) {
            json_object_set_new(root, "TopicArn", json_string(st->topics[0]));
        }
        return root;
    }
    json_decref(root);
    json_t *msg = json_stringn((const char *)sr->body, sr->body_len);
    if (!msg) {
        snprintf(err, errlen, "body is not UTF-8 text, so it cannot be an SNS Message");
        return NULL;
    }
    char hex[33], id[40];
    mh_random_hex(16, hex);
    snprintf(id, sizeof(id), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    json_t *env = json_object();
    json_object_set_new(env, "Type", json_string("Notification"));
    json_object_set_new(env, "MessageId", json_string(id));
    json_object_set_new(env, "TopicArn", json_string(st->topics[0]));
    json_object_set_new(env, "Message", msg);
    json_object_set_new(env, "Timestamp", json_string(ts));
    return env;
}

/* https://sns.<region of the TopicArn>.amazonaws.com/<cert name>, unless the body's URL
 * already names that certificate. */
static void set_cert_url(json_t *env, const struct ses_cert *cert)
{
    json_t *url = env_field(env, "SigningCertURL");
    const char *name = url ? cert_url_name(json_string_value(url)) : NULL;
    if (name && !strcmp(name, cert->name)) return;
    json_object_del(env, "SigningCertUrl");
    char region[64] = "us-east-1", buf[512];
    json_t *topic = env_field(env, "TopicArn");
    const char *arn = topic ? json_string_value(topic) : "";
    if (topic_arn_ok(arn)) {
        const char *r = strstr(arn, ":sns:") + 5;
        size_t n = strcspn(r, ":");
        if (n >= 3 && n < sizeof(region)) snprintf(region, sizeof(region), "%.*s", (int)n, r);
    }
    snprintf(buf, sizeof(buf), "https://sns.%s.amazonaws.com/%s", region, cert->name);
    json_object_set_new(env, "SigningCertURL", json_string(buf));
}

/* Signs env in place with SignatureVersion 2 (SHA256withRSA). */
static int sign_envelope(json_t *env, EVP_PKEY *pkey, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(env, "Type"));
    size_t len, siglen = 0;
    char *msg = string_to_sign(env, type, &len, err, errlen);
    if (!msg) return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) mh_oom();
    unsigned char *sig = NULL;
    int ok = EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
             EVP_DigestSign(ctx, NULL, &siglen, (unsigned char *)msg, len) == 1;
    if (ok) {
        sig = mh_malloc(siglen);
        ok = EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)msg, len) == 1;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    free(msg);
    if (!ok) {
        free(sig);
        snprintf(err, errlen, "RSA SHA-256 signing failed");
        return -1;
    }
    char *b64 = mh_malloc(4 * ((siglen + 2) / 3) + 1);
    b64[mh_b64_encode(sig, siglen, b64)] = '\0';
    json_object_set_new(env, "SignatureVersion", json_string("2"));
    json_object_set_new(env, "Signature", json_string(b64));
    free(b64);
    free(sig);
    return 0;
}

/*
 * The request SNS would send: the envelope (body, or body wrapped as a Notification)
 * signed with --key, the private half of one of the source's certificates.
 */
static int ses_sign(const struct mh_source *src, struct mh_sign_req *sr, char *err, size_t errlen)
{
    const struct ses_state *st = src->state;
    if (!sr->private_key_file) {
        snprintf(err, errlen, "ses signs with the private key of a configured certificate: "
                              "give it with --key");
        return -1;
    }
    EVP_PKEY *pkey = mh_load_private_key(sr->private_key_file, err, errlen);
    if (!pkey) return -1;
    const struct ses_cert *cert = cert_of_key(st, pkey);
    json_t *env = NULL;
    int rc = -1;
    if (!cert) {
        snprintf(err, errlen, "%s: not the private half of any configured certificate",
                 sr->private_key_file);
        goto out;
    }
    if (!(env = envelope_for(st, sr, err, errlen))) goto out;
    set_cert_url(env, cert);
    if (sign_envelope(env, pkey, err, errlen) < 0) goto out;
    char *text = json_dumps(env, JSON_PRESERVE_ORDER | JSON_COMPACT);
    if (!text) mh_oom();
    sr->new_body = (unsigned char *)text;
    sr->new_body_len = strlen(text);
    mh_headers_add(sr->headers, "Content-Type", "text/plain; charset=UTF-8");
    mh_headers_add(sr->headers, "x-amz-sns-message-type", json_string_value(env_field(env, "Type")));
    json_t *id = env_field(env, "MessageId"), *topic = env_field(env, "TopicArn");
    if (id) mh_headers_add(sr->headers, "x-amz-sns-message-id", json_string_value(id));
    if (topic) mh_headers_add(sr->headers, "x-amz-sns-topic-arn", json_string_value(topic));
    rc = 0;
out:
    json_decref(env);
    EVP_PKEY_free(pkey);
    return rc;
}

/* ---- parse: common fields ---- */

/* Metadata: a later value of a key overwrites an earlier one; {} is left out as well. */
#define META_RULES (MH_META_REPLACE | MH_META_SKIP_EMPTY_OBJECT)

/* What one SES record (and its SNS envelope) says about every event made from it. */
struct ses_ctx {
    const struct mh_raw *raw;
    json_t *env;      /* SNS envelope */
    json_t *rec;      /* the SES record (decoded Message) */
    json_t *mail;     /* rec.mail, may be NULL */
    json_t *obj;      /* the type's own object (rec.bounce, rec.click, ...), may be NULL */
    const char *name; /* eventType or notificationType */
};

/* A new event for one recipient, with what the mail object and envelope give. */
static json_t *new_event(const struct ses_ctx *c, const char *type, const char *rcpt,
                         const char *when)
{
    json_t *ev = mh_event_new(c->raw, type, c->name);
    mh_event_set_str(ev, "message_id", mh_json_str(c->mail, "messageId"));
    mh_event_set_address(ev, "recipient", rcpt);
    mh_event_set_str(ev, "sender", mh_json_str(c->mail, "source"));
    mh_event_set_str(ev, "subject", mh_json_str(json_object_get(c->mail, "commonHeaders"), "subject"));
    if (!when) when = mh_json_str(c->obj, "timestamp");
    if (!when) when = mh_json_str(c->mail, "timestamp");
    mh_event_set_time(ev, "occurred_at", when);
    json_t *tags = json_object_get(c->mail, "tags");
    if (json_is_object(tags)) {
        mh_event_meta_put(ev, "ses_tags", tags, META_RULES);
        mh_event_meta_put(ev, "configuration_set",
                          json_array_get(json_object_get(tags, "ses:configuration-set"), 0),
                          META_RULES);
    }
    mh_event_meta_put(ev, "sending_account_id", json_object_get(c->mail, "sendingAccountId"),
                      META_RULES);
    mh_event_meta_put(ev, "source_arn", json_object_get(c->mail, "sourceArn"), META_RULES);
    mh_event_meta_put(ev, "sns_message_id", env_field(c->env, "MessageId"), META_RULES);
    mh_event_meta_put(ev, "sns_topic_arn", env_field(c->env, "TopicArn"), META_RULES);
    return ev;
}

/* Derived id: the discriminator (feedbackId, or the event's timestamp text and link). */
static void finish(json_t *events, json_t *ev, const char *d1, const char *d2)
{
    size_t len = (d1 ? strlen(d1) : 0) + (d2 ? strlen(d2) : 0) + 2;
    char *extra = mh_malloc(len);
    snprintf(extra, len, "%s\n%s", d1 ? d1 : "", d2 ? d2 : "");
    mh_event_finish(ev, NULL, extra);
    free(extra);
    json_array_append_new(events, ev);
}

/* The recipient array key of obj as a non-empty array; NULL with err. */
static json_t *recipients(const struct ses_ctx *c, json_t *obj, const char *key, char *err,
                          size_t errlen)
{
    json_t *list = json_object_get(obj, key);
    if (!json_is_array(list) || json_array_size(list) == 0) {
        snprintf(err, errlen, "ses: %s event without \"%s\"", c->name, key);
        return NULL;
    }
    return list;
}

/* Recipient i of list: a string, or an object's emailAddress. NULL with err. */
static const char *recipient_at(const struct ses_ctx *c, json_t *list, size_t i, const char *key,
                                char *err, size_t errlen)
{
    json_t *item = json_array_get(list, i);
    const char *addr = json_is_string(item) ? json_string_value(item)
                                            : mh_json_str(item, "emailAddress");
    if (!addr || !*addr) {
        snprintf(err, errlen, "ses: %s event: %s[%zu] has no address", c->name, key, i);
        return NULL;
    }
    return addr;
}

/* ---- parse: bounces ---- */

struct bounce_rule {
    const char *type;     /* bounceType */
    const char *sub;      /* bounceSubType; NULL: any other */
    const char *ev_type;  /* canonical type */
    const char *cls;      /* bounce.class; NULL: the codes decide */
    const char *category; /* NULL: the classifier decides */
    int forced;           /* 1: category as given; 0: only when the classifier finds none */
};

/* docs/providers/ses.md, "Bounces", explains each row. */
static const struct bounce_rule bounce_rules[] = {
    {"Permanent", "General", "email.bounced", "hard", NULL, 0},
    {"Permanent", "NoEmail", "email.bounced", "hard", "invalid_recipient", 1},
    {"Permanent", "Suppressed", "email.bounced", "hard", "invalid_recipient", 0},
    {"Permanent", "OnAccountSuppressionList", "email.suppressed", NULL, NULL, 0},
    {"Permanent", "OnTenantSuppressionList", "email.suppressed", NULL, NULL, 0},
    {"Permanent", "EmailValidationSuppressed", "email.suppressed", NULL, NULL, 0},
    {"Permanent", "UnsubscribedRecipient", "email.unsubscribed", NULL, NULL, 0},
    {"Permanent", NULL, "email.bounced", "hard", NULL, 0},
    {"Transient", "MailboxFull", "email.bounced", "soft", "mailbox_full", 1},
    {"Transient", "MessageTooLarge", "email.bounced", "soft", "policy_rejection", 1},
    {"Transient", "ContentRejected", "email.bounced", "soft", "spam_content", 0},
    {"Transient", "AttachmentRejected", "email.bounced", "soft", "policy_rejection", 0},
    {"Transient", NULL, "email.bounced", "soft", NULL, 0},
    {"Undetermined", NULL, "email.bounced", "undetermined", NULL, 0},
    {NULL, NULL, "email.bounced", NULL, NULL, 0}, /* a bounceType SES adds later */
};

static const struct bounce_rule *find_bounce_rule(const char *type, const char *sub)
{
    const struct bounce_rule *r = bounce_rules;
    for (; r->type; r++)
        if (type && !strcmp(r->type, type) && (!r->sub || (sub && !strcmp(r->sub, sub)))) break;
    return r;
}

static void add_bounce(json_t *ev, json_t *b_obj, json_t *item, const struct bounce_rule *r)
{
    json_t *b = mh_event_sub(ev, "bounce");
    if (r->cls) mh_event_set_str(b, "class", r->cls);
    if (r->category && r->forced) mh_event_set_str(b, "category", r->category);
    mh_event_set_str(b, "diagnostic", mh_json_str(item, "diagnosticCode"));
    mh_event_set_str(b, "enhanced_code", mh_json_str(item, "status"));
    mh_event_set_str(b, "remote_host", mh_json_str(b_obj, "remoteMtaIp"));
    mh_bounce_classify(b);
    if (r->category && !strcmp(mh_json_str(b, "category"), "unclassified"))
        mh_event_set_str(b, "category", r->category);
}

static int parse_bounce(const struct ses_ctx *c, json_t *events, char *err, size_t errlen)
{
    json_t *list = recipients(c, c->obj, "bouncedRecipients", err, errlen);
    if (!list) return -1;
    const char *btype = mh_json_str(c->obj, "bounceType");
    const char *sub = mh_json_str(c->obj, "bounceSubType");
    const struct bounce_rule *r = find_bounce_rule(btype, sub);
    const char *feedback = mh_json_str(c->obj, "feedbackId");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *item = json_array_get(list, i);
        const char *rcpt = recipient_at(c, list, i, "bouncedRecipients", err, errlen);
        if (!rcpt) return -1;
        json_t *ev = new_event(c, r->ev_type, rcpt, NULL);
        if (!strcmp(r->ev_type, "email.bounced")) {
            add_bounce(ev, c->obj, item, r);
            mh_bounce_set_provider_kind(mh_event_sub(ev, "bounce"), btype, sub);
        } else {
            mh_event_meta_put(ev, "diagnostic_code", json_object_get(item, "diagnosticCode"),
                              META_RULES);
            mh_event_meta_put(ev, "status", json_object_get(item, "status"), META_RULES);
        }
        mh_event_meta_put(ev, "bounce_type", json_object_get(c->obj, "bounceType"), META_RULES);
        mh_event_meta_put(ev, "bounce_sub_type", json_object_get(c->obj, "bounceSubType"),
                          META_RULES);
        mh_event_meta_put(ev, "feedback_id", json_object_get(c->obj, "feedbackId"), META_RULES);
        mh_event_meta_put(ev, "reporting_mta", json_object_get(c->obj, "reportingMTA"), META_RULES);
        mh_event_meta_put(ev, "action", json_object_get(item, "action"), META_RULES);
        finish(events, ev, feedback ? feedback : mh_json_str(c->obj, "timestamp"), NULL);
    }
    return 0;
}

/* ---- parse: the other SES event types ---- */

static int parse_complaint(const struct ses_ctx *c, json_t *events, char *err, size_t errlen)
{
    json_t *list = recipients(c, c->obj, "complainedRecipients", err, errlen);
    if (!list) return -1;
    const char *sub = mh_json_str(c->obj, "complaintSubType");
    /* SES did not send: the address was already on the account's suppression list. */
    const char *type = sub && !strcmp(sub, "OnAccountSuppressionList") ? "email.suppressed"
                                                                       : "email.complained";
    const char *feedback = mh_json_str(c->obj, "feedbackId");
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *rcpt = recipient_at(c, list, i, "complainedRecipients", err, errlen);
        if (!rcpt) return -1;
        json_t *ev = new_event(c, type, rcpt, NULL);
        const char *fbt = mh_json_str(c->obj, "complaintFeedbackType");
        if (!strcmp(type, "email.complained") && fbt && *fbt)
            mh_event_set_str(mh_event_sub(ev, "complaint"), "feedback_type", fbt);
        mh_event_meta_put(ev, "feedback_id", json_object_get(c->obj, "feedbackId"), META_RULES);
        mh_event_meta_put(ev, "complaint_sub_type", json_object_get(c->obj, "complaintSubType"),
                          META_RULES);
        mh_event_meta_put(ev, "feedback_user_agent", json_object_get(c->obj, "userAgent"),
                          META_RULES);
        mh_event_meta_put(ev, "arrival_date", json_object_get(c->obj, "arrivalDate"), META_RULES);
        finish(events, ev, feedback ? feedback : mh_json_str(c->obj, "timestamp"), NULL);
    }
    return 0;
}

/* delivery from a Delivery object: smtpResponse, processingTimeMillis, reportingMTA and
 * remoteMtaIp (also kept in metadata under their SES names, as before the object). */
static void add_delivery(json_t *ev, json_t *obj)
{
    struct mh_delivery d = MH_DELIVERY_INIT;
    json_int_t ms;
    d.smtp_response = mh_json_str(obj, "smtpResponse");
    d.reporting_mta = mh_json_str(obj, "reportingMTA");
    d.remote_ip = mh_json_str(obj, "remoteMtaIp");
    if (mh_json_int(obj, "processingTimeMillis", &ms) == 0 && ms >= 0) d.duration_ms = ms;
    mh_event_set_delivery(ev, &d);
}

static int parse_delivery(const struct ses_ctx *c, json_t *events, char *err, size_t errlen)
{
    json_t *list = recipients(c, c->obj, "recipients", err, errlen);
    if (!list) return -1;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *rcpt = recipient_at(c, list, i, "recipients", err, errlen);
        if (!rcpt) return -1;
        json_t *ev = new_event(c, "email.delivered", rcpt, NULL);
        add_delivery(ev, c->obj);
        mh_event_meta_put(ev, "smtp_response", json_object_get(c->obj, "smtpResponse"), META_RULES);
        mh_event_meta_put(ev, "processing_time_millis",
                          json_object_get(c->obj, "processingTimeMillis"), META_RULES);
        mh_event_meta_put(ev, "reporting_mta", json_object_get(c->obj, "reportingMTA"), META_RULES);
        mh_event_meta_put(ev, "remote_mta_ip", json_object_get(c->obj, "remoteMtaIp"), META_RULES);
        finish(events, ev, mh_json_str(c->obj, "timestamp"), NULL);
    }
    return 0;
}

static int parse_delay(const struct ses_ctx *c, json_t *events, char *err, size_t errlen)
{
    json_t *list = recipients(c, c->obj, "delayedRecipients", err, errlen);
    if (!list) return -1;
    const char *delay_type = mh_json_str(c->obj, "delayType");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *item = json_array_get(list, i);
        const char *rcpt = recipient_at(c, list, i, "delayedRecipients", err, errlen);
        if (!rcpt) return -1;
        json_t *ev = new_event(c, "email.delivery_delayed", rcpt, NULL);
        json_t *b = mh_event_sub(ev, "bounce");
        mh_event_set_str(b, "class", "soft");
        mh_event_set_str(b, "diagnostic", mh_json_str(item, "diagnosticCode"));
        mh_event_set_str(b, "enhanced_code", mh_json_str(item, "status"));
        mh_event_set_str(b, "remote_host", mh_json_str(c->obj, "remoteMtaIp"));
        mh_bounce_classify(b);
        if (delay_type && *delay_type) mh_event_set_str(mh_event_sub(ev, "delay"), "reason", delay_type);
        mh_event_meta_put(ev, "delay_type", json_object_get(c->obj, "delayType"), META_RULES);
        mh_event_meta_put(ev, "expiration_time", json_object_get(c->obj, "expirationTime"),
                          META_RULES);
        mh_event_meta_put(ev, "reporting_mta", json_object_get(c->obj, "reportingMTA"), META_RULES);
        finish(events, ev, mh_json_str(c->obj, "timestamp"), NULL);
    }
    return 0;
}

/* Subscription: address-wide opt-out or opt-in; a change of single topics is "other". */
static const char *subscription_type(json_t *obj)
{
    json_t *now = json_object_get(json_object_get(obj, "newTopicPreferences"), "unsubscribeAll");
    json_t *before = json_object_get(json_object_get(obj, "oldTopicPreferences"), "unsubscribeAll");
    if (json_is_true(now)) return "email.unsubscribed";
    if (json_is_true(before) && json_is_false(now)) return "email.resubscribed";
    return "other";
}

/* Send, Reject, Open, Click, Rendering Failure, Subscription: one event per destination. */
static int parse_per_destination(const struct ses_ctx *c, const char *type, json_t *events,
                                 char *err, size_t errlen)
{
    json_t *list = recipients(c, c->mail, "destination", err, errlen);
    if (!list) return -1;
    const char *link = mh_json_str(c->obj, "link");
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *rcpt = recipient_at(c, list, i, "destination", err, errlen);
        if (!rcpt) return -1;
        json_t *ev = new_event(c, type, rcpt, NULL);
        if (!strcmp(type, "email.opened") || !strcmp(type, "email.clicked")) {
            const char *key = !strcmp(type, "email.opened") ? "open" : "click";
            json_t *sub = mh_event_sub(ev, key);
            if (!strcmp(key, "click")) mh_event_set_str(sub, "url", link);
            mh_event_set_str(sub, "user_agent", mh_json_str(c->obj, "userAgent"));
            mh_event_set_str(sub, "ip", mh_json_str(c->obj, "ipAddress"));
            if (json_object_size(sub) == 0) json_object_del(ev, key);
            mh_event_meta_put(ev, "link_tags", json_object_get(c->obj, "linkTags"), META_RULES);
        }
        mh_event_meta_put(ev, "reject_reason", json_object_get(c->obj, "reason"), META_RULES);
        mh_event_meta_put(ev, "error_message", json_object_get(c->obj, "errorMessage"), META_RULES);
        mh_event_meta_put(ev, "template_name", json_object_get(c->obj, "templateName"), META_RULES);
        mh_event_meta_put(ev, "contact_list", json_object_get(c->obj, "contactList"), META_RULES);
        mh_event_meta_put(ev, "subscription_source", json_object_get(c->obj, "source"), META_RULES);
        mh_event_meta_put(ev, "new_topic_preferences",
                          json_object_get(c->obj, "newTopicPreferences"), META_RULES);
        mh_event_meta_put(ev, "old_topic_preferences",
                          json_object_get(c->obj, "oldTopicPreferences"), META_RULES);
        const char *when = mh_json_str(c->obj, "timestamp");
        finish(events, ev, when ? when : mh_json_str(c->mail, "timestamp"),
               !strcmp(type, "email.clicked") ? link : NULL);
    }
    return 0;
}

/* An eventType / notificationType this file does not know: "other", never dropped. */
static int parse_unknown(const struct ses_ctx *c, json_t *events)
{
    json_t *list = json_object_get(c->mail, "destination");
    const char *sns_id = mh_json_str(c->env, "MessageId");
    size_t n = json_is_array(list) ? json_array_size(list) : 0;
    for (size_t i = 0; i < (n ? n : 1); i++) {
        json_t *item = n ? json_array_get(list, i) : NULL;
        json_t *ev = new_event(c, "other", json_string_value(item), NULL);
        mh_event_meta_put(ev, "message", json_object_get(c->rec, "message"), META_RULES);
        /* No known discriminator: the SNS message itself tells two of them apart. */
        finish(events, ev, sns_id, NULL);
    }
    return 0;
}

static const struct {
    const char *name; /* eventType / notificationType */
    const char *obj;  /* the record's object for it */
    const char *type; /* canonical type for the per-destination ones */
} ses_types[] = {
    {"Bounce", "bounce", NULL},
    {"Complaint", "complaint", NULL},
    {"Delivery", "delivery", NULL},
    {"DeliveryDelay", "deliveryDelay", NULL},
    {"Send", "send", "email.accepted"},
    {"Reject", "reject", "email.failed"},
    {"Open", "open", "email.opened"},
    {"Click", "click", "email.clicked"},
    {"Rendering Failure", "failure", "email.failed"},
    {"RENDERING_FAILURE", "failure", "email.failed"},
    {"Subscription", "subscription", NULL},
};

static int parse_record(struct ses_ctx *c, json_t *events, char *err, size_t errlen)
{
    const char *name = mh_json_str(c->rec, "eventType");
    if (!name || !*name) name = mh_json_str(c->rec, "notificationType");
    if (!name || !*name) {
        snprintf(err, errlen, "ses: SES record without \"eventType\" or \"notificationType\"");
        return -1;
    }
    c->name = name;
    c->mail = json_object_get(c->rec, "mail");
    size_t i, n = sizeof(ses_types) / sizeof(ses_types[0]);
    for (i = 0; i < n && strcmp(ses_types[i].name, name); i++)
        ;
    if (i == n) return parse_unknown(c, events);
    if (!json_is_object(c->mail) || !mh_json_str(c->mail, "messageId")) {
        snprintf(err, errlen, "ses: %s event without \"mail.messageId\"", name);
        return -1;
    }
    c->obj = json_object_get(c->rec, ses_types[i].obj);
    if (!json_is_object(c->obj) && strcmp(ses_types[i].obj, "send")) {
        snprintf(err, errlen, "ses: %s event without its \"%s\" object", name, ses_types[i].obj);
        return -1;
    }
    if (!strcmp(name, "Bounce")) return parse_bounce(c, events, err, errlen);
    if (!strcmp(name, "Complaint")) return parse_complaint(c, events, err, errlen);
    if (!strcmp(name, "Delivery")) return parse_delivery(c, events, err, errlen);
    if (!strcmp(name, "DeliveryDelay")) return parse_delay(c, events, err, errlen);
    const char *type = ses_types[i].type ? ses_types[i].type : subscription_type(c->obj);
    return parse_per_destination(c, type, events, err, errlen);
}

/* ---- parse: the SNS message ---- */

/* SubscriptionConfirmation, UnsubscribeConfirmation and SNS types unknown here. */
static void parse_sns_only(const struct mh_raw *raw, json_t *env, const char *type, json_t *events)
{
    json_t *ev = mh_event_new(raw, "other", type);
    mh_event_set_time(ev, "occurred_at", mh_json_str(env, "Timestamp"));
    mh_event_meta_put(ev, "subscribe_url", env_field(env, "SubscribeURL"), META_RULES);
    mh_event_meta_put(ev, "sns_message_id", env_field(env, "MessageId"), META_RULES);
    mh_event_meta_put(ev, "sns_topic_arn", env_field(env, "TopicArn"), META_RULES);
    mh_event_meta_put(ev, "message", env_field(env, "Message"), META_RULES);
    finish(events, ev, mh_json_str(env, "MessageId"), NULL);
}

static int ses_parse(const struct mh_raw *raw, json_t *events, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *env = json_loadb((const char *)raw->body, raw->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!env) {
        snprintf(err, errlen, "ses: invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    int rc = -1;
    const char *type = mh_json_str(env, "Type");
    json_t *msg = env_field(env, "Message");
    if (!json_is_object(env) || !type || !*type) {
        snprintf(err, errlen, "ses: body is not an SNS message (no \"Type\")");
    } else if (strcmp(type, "Notification")) {
        parse_sns_only(raw, env, type, events);
        rc = 0;
    } else if (!msg) {
        snprintf(err, errlen, "ses: SNS Notification without a string \"Message\"");
    } else {
        json_t *rec = json_loadb(json_string_value(msg), json_string_length(msg),
                                 JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(rec)) {
            snprintf(err, errlen, "ses: SNS Message is not an SES event record (a JSON object)");
        } else {
            struct ses_ctx c = {.raw = raw, .env = env, .rec = rec};
            rc = parse_record(&c, events, err, errlen);
        }
        json_decref(rec);
    }
    json_decref(env);
    return rc;
}

const struct mh_provider mh_provider_ses = {
    .name = "ses",
    .options = options,
    .forward_headers = forward,
    .needs_secret = 0,
    .init = ses_init,
    .fini = ses_fini,
    .verify = ses_verify,
    .parse = ses_parse,
    .sign = ses_sign,
};
