/*
 * test_verify_ses.c — Amazon SES through SNS: the SNS message signature checked with
 * AWS's own SDK vectors (SignatureVersion 1 and 2, with the real SNS certificate they
 * were signed with), a real captured SubscriptionConfirmation, the self-generated SES
 * bounce vectors, the AWS SDKs' negative cases, tampering, the TopicArn allow-list, raw
 * message delivery, the timestamp tolerance, certificate rotation and options, a
 * `mailhook sign` round trip with a freshly made certificate, and parse errors for
 * bodies that are not SNS messages.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include "provider_test.h"

#define VEC MH_FIXTURES_DIR "/../unit/ses/"
#define AWS_CERT VEC "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
#define TEST_CERT VEC "SimpleNotificationService-0000000000000000000000000000test.pem"
#define TOPIC_V1 "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362"
#define TOPIC_V2 "arn:aws:sns:us-east-2:295079676684:publish-and-verify-62674b1d-4295-426b-88e7-5fb75652a04e"
#define TOPIC_CONF "arn:aws:sns:us-east-1:155944137683:jns-sns-s3-test"
#define TOPIC_SES "arn:aws:sns:us-east-1:123456789012:ses-events"
#define V1_MS 1659043438317LL   /* 2022-07-28T21:23:58.317Z */
#define SES_MS 1714564800000LL  /* 2024-05-01T12:00:00.000Z */

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static struct mh_config *source_with(const char *options)
{
    char ini[8192];
    snprintf(ini, sizeof(ini), "[source.ses]\nprovider = ses\ntenant = acme\n%s", options);
    return pt_config(ini);
}

/* Every vector's certificate and topic, no freshness window. */
static struct mh_config *all_vectors(void)
{
    return source_with("certificate_file = " AWS_CERT "\ncertificate_file = " TEST_CERT
                       "\ntopic_arn = " TOPIC_V1 "\ntopic_arn = " TOPIC_V2 "\ntopic_arn = " TOPIC_CONF
                       "\ntopic_arn = " TOPIC_SES "\ntimestamp_tolerance_s = 0\n");
}

/* verify of body, with header name=value pairs (NULL-terminated). */
static enum mh_verdict verify_h(struct mh_config *cfg, const char *body, int64_t now, ...)
{
    struct pt_request r;
    va_list ap;
    pt_request_init(&r, "/v1/webhooks/ses", body, strlen(body), now);
    va_start(ap, now);
    for (const char *n; (n = va_arg(ap, const char *));) mh_headers_add(&r.headers, n, va_arg(ap, const char *));
    va_end(ap);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, "ses"), &r);
    if (v != MH_VERIFY_OK) print_message("verify: %s\n", r.err);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict verify_file(struct mh_config *cfg, const char *path, int64_t now)
{
    char *body = slurp(path);
    enum mh_verdict v = verify_h(cfg, body, now, NULL);
    free(body);
    return v;
}

/* verify of the file's envelope with one field replaced (value NULL: removed). */
static enum mh_verdict verify_changed(struct mh_config *cfg, const char *path, const char *key,
                                      const char *value, int64_t now)
{
    json_t *env = json_load_file(path, 0, NULL);
    assert_non_null(env);
    if (value) json_object_set_new(env, key, json_string(value));
    else json_object_del(env, key);
    char *body = json_dumps(env, JSON_PRESERVE_ORDER);
    enum mh_verdict v = verify_h(cfg, body, now, NULL);
    free(body);
    json_decref(env);
    return v;
}

static void test_official_vectors(void **state)
{
    (void)state;
    struct mh_config *cfg = all_vectors();
    assert_int_equal(verify_file(cfg, VEC "official-vector-sns-notification-sigv1.json", 0), MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, VEC "official-vector-sns-notification-sigv2.json", 0), MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, VEC "real-vector-sns-subscriptionconfirmation-sigv1.json", 0),
                     MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, VEC "selfgen-vector-sns-ses-bounce-sigv1.json", 0), MH_VERIFY_OK);
    /* The signed golden fixtures are the self-generated vectors, byte for byte. */
    assert_int_equal(verify_file(cfg, MH_FIXTURES_DIR "/ses/bounce-permanent-general-signed-v2/body.json", 0),
                     MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, MH_FIXTURES_DIR "/ses/subscription-confirmation-signed-v2/body.json", 0),
                     MH_VERIFY_OK);
    /* SNS's own headers, consistent with the body, are fine. */
    char *body = slurp(VEC "official-vector-sns-notification-sigv1.json");
    assert_int_equal(verify_h(cfg, body, 0, "x-amz-sns-message-type", "Notification",
                              "x-amz-sns-topic-arn", TOPIC_V1, "Content-Type", "text/plain; charset=UTF-8",
                              NULL),
                     MH_VERIFY_OK);
    assert_int_equal(verify_h(cfg, body, 0, "x-amz-sns-message-type", "SubscriptionConfirmation", NULL),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_h(cfg, body, 0, "x-amz-sns-topic-arn", TOPIC_V2, NULL), MH_VERIFY_REJECT);
    /* The message id header travels with the raw record: it must be the signed one. */
    assert_int_equal(verify_h(cfg, body, 0, "x-amz-sns-message-id",
                              "792cda85-518f-5dd3-9163-81d851212f3a", NULL),
                     MH_VERIFY_OK);
    assert_int_equal(verify_h(cfg, body, 0, "x-amz-sns-message-id",
                              "792cda85-518f-5dd3-9163-81d851212f3b", NULL),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_h(cfg, body, 0, "x-amz-sns-message-id", "", NULL), MH_VERIFY_REJECT);
    free(body);
    mh_config_free(cfg);
}

/* Each signed field, the signature and the version are bound. */
static void test_tampering(void **state)
{
    (void)state;
    struct mh_config *cfg = all_vectors();
    const char *v1 = VEC "official-vector-sns-notification-sigv1.json";
    const char *conf = VEC "real-vector-sns-subscriptionconfirmation-sigv1.json";
    assert_int_equal(verify_changed(cfg, v1, "Message", "Hello world!", 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, "MessageId", "792cda85-518f-5dd3-9163-81d851212f3b", 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, "Timestamp", "2022-07-28T21:23:59.317Z", 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, "Subject", "added", 0), MH_VERIFY_REJECT);
    /* v1 signed with SHA-1: checked as SHA-256 it fails. */
    assert_int_equal(verify_changed(cfg, v1, "SignatureVersion", "2", 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, conf, "SubscribeURL", "https://evil.example/", 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, conf, "Token", "00", 0), MH_VERIFY_REJECT);
    /* Unsigned fields may change (UnsubscribeURL is not signed). */
    assert_int_equal(verify_changed(cfg, v1, "UnsubscribeURL", "https://example.com/", 0), MH_VERIFY_OK);
    /* A flipped signature byte. */
    json_t *env = json_load_file(v1, 0, NULL);
    char sig[512];
    snprintf(sig, sizeof(sig), "%s", json_string_value(json_object_get(env, "Signature")));
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    json_decref(env);
    assert_int_equal(verify_changed(cfg, v1, "Signature", sig, 0), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

/* The AWS SDKs' negative cases, and missing pieces. */
static void test_negative_cases(void **state)
{
    (void)state;
    struct mh_config *cfg = all_vectors();
    const char *v1 = VEC "official-vector-sns-notification-sigv1.json";
    const char *url = "SigningCertURL";
    assert_int_equal(verify_changed(cfg, v1, "SignatureVersion", "3", 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, url, "http://sns.us-east-2.amazonaws.com/"
                                                  "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem", 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, url, "https://sns.us-east-2.amazonaws.com.evil.example/"
                                                  "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem", 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, url, "https://evil.example/"
                                                  "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem", 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, url, "https://sns.us-east-2.amazonaws.com/"
                                                  "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda", 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, url, "https://sns.us-east-2.amazonaws.com/x/../"
                                                  "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem", 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, "Signature", "bad", 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, "Signature", NULL, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, "SignatureVersion", NULL, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, url, NULL, 0), MH_VERIFY_REJECT);
    /* Another region, China partition: the URL is AWS's, but the certificate is not configured. */
    assert_int_equal(verify_changed(cfg, v1, url, "https://sns.cn-north-1.amazonaws.com.cn/"
                                                  "SimpleNotificationService-0123456789abcdef.pem", 0),
                     MH_VERIFY_RETRY);
    /* Lambda-style spelling of the key is tolerated. */
    json_t *env = json_load_file(v1, 0, NULL);
    json_object_set(env, "SigningCertUrl", json_object_get(env, url));
    json_object_del(env, url);
    char *body = json_dumps(env, 0);
    assert_int_equal(verify_h(cfg, body, 0, NULL), MH_VERIFY_OK);
    free(body);
    json_decref(env);
    /* Not verifiable at all. */
    assert_int_equal(verify_changed(cfg, v1, "Type", "Weird", 0), MH_VERIFY_MALFORMED);
    assert_int_equal(verify_changed(cfg, v1, "Type", NULL, 0), MH_VERIFY_MALFORMED);
    assert_int_equal(verify_changed(cfg, v1, "Message", NULL, 0), MH_VERIFY_MALFORMED);
    assert_int_equal(verify_h(cfg, "not json", 0, NULL), MH_VERIFY_MALFORMED);
    assert_int_equal(verify_h(cfg, "[]", 0, NULL), MH_VERIFY_MALFORMED);
    assert_int_equal(verify_h(cfg, "", 0, NULL), MH_VERIFY_MALFORMED);
    mh_config_free(cfg);
}

static void test_topic_allow_list(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("certificate_file = " AWS_CERT "\ntopic_arn = " TOPIC_V2
                                        "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_file(cfg, VEC "official-vector-sns-notification-sigv2.json", 0), MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, VEC "official-vector-sns-notification-sigv1.json", 0), MH_VERIFY_REJECT);
    /* Signed by a certificate the source does not have: retry (and an alert), never OK. */
    assert_int_equal(verify_changed(cfg, VEC "selfgen-vector-sns-ses-bounce-sigv1.json", "TopicArn", TOPIC_V2, 0),
                     MH_VERIFY_RETRY);
    mh_config_free(cfg);
}

/* Raw message delivery carries no signature: refused whatever the body. */
static void test_raw_delivery_refused(void **state)
{
    (void)state;
    struct mh_config *cfg = all_vectors();
    char *body = slurp(VEC "official-vector-sns-notification-sigv1.json");
    assert_int_equal(verify_h(cfg, body, 0, "x-amz-sns-rawdelivery", "true", NULL), MH_VERIFY_REJECT);
    assert_int_equal(verify_h(cfg, "{\"eventType\":\"Bounce\"}", 0, "x-amz-sns-rawdelivery", "True", NULL),
                     MH_VERIFY_REJECT);
    free(body);
    mh_config_free(cfg);
}

static void test_timestamp_tolerance(void **state)
{
    (void)state;
    const char *v1 = VEC "official-vector-sns-notification-sigv1.json";
    struct mh_config *cfg = source_with("certificate_file = " AWS_CERT "\ntopic_arn = " TOPIC_V1 "\n");
    /* Default: 7 days, either direction. */
    const int64_t week = 7 * 86400 * 1000LL;
    assert_int_equal(verify_file(cfg, v1, V1_MS + week), MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, v1, V1_MS - week), MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, v1, V1_MS + week + 1000), MH_VERIFY_REJECT);
    assert_int_equal(verify_file(cfg, v1, 1767225600000LL), MH_VERIFY_REJECT);
    assert_int_equal(verify_changed(cfg, v1, "Timestamp", "yesterday", V1_MS), MH_VERIFY_REJECT);
    mh_config_free(cfg);
    cfg = source_with("certificate_file = " AWS_CERT "\ntopic_arn = " TOPIC_V1 "\ntimestamp_tolerance_s = 60\n");
    assert_int_equal(verify_file(cfg, v1, V1_MS + 59000), MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, v1, V1_MS + 61000), MH_VERIFY_REJECT);
    mh_config_free(cfg);
    cfg = source_with("certificate_file = " TEST_CERT "\ntopic_arn = " TOPIC_SES "\ntimestamp_tolerance_s = 300\n");
    assert_int_equal(verify_file(cfg, VEC "selfgen-vector-sns-ses-bounce-sigv1.json", SES_MS + 1000),
                     MH_VERIFY_OK);
    mh_config_free(cfg);
}

/* Two certificates at once (AWS rotates them), from files or from a directory. */
static void test_rotation_and_directory(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("certificate_dir = " VEC "\ntopic_arn = " TOPIC_V1
                                        "\ntopic_arn = " TOPIC_SES "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_file(cfg, VEC "official-vector-sns-notification-sigv1.json", 0), MH_VERIFY_OK);
    assert_int_equal(verify_file(cfg, VEC "selfgen-vector-sns-ses-bounce-sigv1.json", 0), MH_VERIFY_OK);
    mh_config_free(cfg);
    /* The certificate is chosen by name: the AWS cert's name with the test cert's key fails. */
    char dir[] = "/tmp/mailhook-ses-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem", dir);
    char *pem = slurp(TEST_CERT);
    FILE *fp = fopen(path, "w");
    fputs(pem, fp);
    fclose(fp);
    free(pem);
    char opts[1024];
    snprintf(opts, sizeof(opts), "certificate_file = %s\ntopic_arn = " TOPIC_V1 "\ntimestamp_tolerance_s = 0\n", path);
    cfg = source_with(opts);
    assert_int_equal(verify_file(cfg, VEC "official-vector-sns-notification-sigv1.json", 0), MH_VERIFY_REJECT);
    mh_config_free(cfg);
    unlink(path);
    rmdir(dir);
}

static void test_option_errors(void **state)
{
    (void)state;
    char *junk = pt_temp_file("hello");
    char opts[1024];
    assert_true(pt_config_fails_with("[source.s]\nprovider = ses\ntopic_arn = " TOPIC_SES "\n",
                                     "needs certificate_file"));
    assert_true(pt_config_fails_with("[source.s]\nprovider = ses\ncertificate_file = " AWS_CERT "\n",
                                     "needs topic_arn"));
    assert_true(pt_config_fails_with("[source.s]\nprovider = ses\ncertificate_file = " AWS_CERT
                                     "\ntopic_arn = arn:aws:sqs:us-east-1:1:q\n",
                                     "topic_arn: not an SNS topic ARN"));
    assert_true(pt_config_fails_with("[source.s]\nprovider = ses\ncertificate_file = /nonexistent/x.pem\n"
                                     "topic_arn = " TOPIC_SES "\n",
                                     "cannot open"));
    snprintf(opts, sizeof(opts), "[source.s]\nprovider = ses\ncertificate_file = %s\ntopic_arn = " TOPIC_SES "\n", junk);
    assert_true(pt_config_fails_with(opts, "file name must be the one in SigningCertURL"));
    assert_true(pt_config_fails_with("[source.s]\nprovider = ses\ncertificate_file = " AWS_CERT
                                     "\ncertificate_dir = " VEC "\ntopic_arn = " TOPIC_SES "\n",
                                     "already configured"));
    assert_true(pt_config_fails_with("[source.s]\nprovider = ses\ncertificate_file = " AWS_CERT
                                     "\ntopic_arn = " TOPIC_SES "\ntimestamp_tolerance_s = x\n",
                                     "timestamp_tolerance_s"));
    assert_true(pt_config_fails_with("[source.s]\nprovider = ses\ncertificate_dir = /nonexistent\n"
                                     "topic_arn = " TOPIC_SES "\n",
                                     "cannot open directory"));
    /* A directory without certificates (found by fuzz_config: it reached qsort(NULL, 0)). */
    char empty[] = "/tmp/mailhook-ses-empty-XXXXXX";
    assert_non_null(mkdtemp(empty));
    snprintf(opts, sizeof(opts), "[source.s]\nprovider = ses\ncertificate_dir = %s\ntopic_arn = " TOPIC_SES "\n",
             empty);
    assert_true(pt_config_fails_with(opts, "holds no .pem file"));
    rmdir(empty);
    pt_remove(junk);
}

/* A fresh RSA key and a self-signed certificate, written as PEM files. */
static EVP_PKEY *make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    assert_non_null(pkey);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"mailhook test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *fp = fopen(cert_path, "w");
    PEM_write_X509(fp, x);
    fclose(fp);
    if (key_path) {
        fp = fopen(key_path, "w");
        PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL);
        fclose(fp);
    }
    X509_free(x);
    return pkey;
}

/* sign, then verify its output with the headers sign added; *signed_body: the posted body. */
static enum mh_verdict sign_then_verify(struct mh_config *cfg, const char *key, const char *body,
                                        int64_t now, char **signed_body)
{
    const struct mh_source *src = mh_config_source(cfg, "ses");
    struct mh_headers h = {0};
    char url[256] = "http://h/", err[256];
    struct mh_sign_req sr = {.body = (const unsigned char *)body, .body_len = strlen(body), .now_ms = now,
                             .private_key_file = key, .headers = &h, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_non_null(sr.new_body);
    assert_string_equal(mh_headers_get(&h, "x-amz-sns-message-type"), "Notification");
    char *text = strndup((const char *)sr.new_body, sr.new_body_len);
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/ses", text, strlen(text), now + 1000);
    for (size_t i = 0; i < h.n; i++) mh_headers_add(&r.headers, h.v[i].name, h.v[i].value);
    enum mh_verdict v = pt_verify(src, &r);
    if (v != MH_VERIFY_OK) print_message("verify: %s\n", r.err);
    pt_request_free(&r);
    mh_headers_clear(&h);
    free(sr.new_body);
    *signed_body = text;
    return v;
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    char dir[] = "/tmp/mailhook-ses-XXXXXX", cert[256], key[256], other_cert[256], other_key[256];
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/SimpleNotificationService-0000000000000000000000000000test.pem", dir);
    snprintf(key, sizeof(key), "%s/signing.key", dir);
    snprintf(other_cert, sizeof(other_cert), "%s/other.crt", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
    EVP_PKEY *a = make_cert(cert, key), *b = make_cert(other_cert, other_key);
    char opts[1024];
    snprintf(opts, sizeof(opts), "certificate_file = %s\ntopic_arn = " TOPIC_SES "\n", cert);
    struct mh_config *cfg = source_with(opts);
    const int64_t now = SES_MS + 3600 * 1000LL;

    /* An SNS message (a golden fixture) is re-signed: version 2, its own fields kept. */
    char *fixture = slurp(MH_FIXTURES_DIR "/ses/delivery/body.json"), *out;
    assert_int_equal(sign_then_verify(cfg, key, fixture, now - 3600 * 1000LL + 5000, &out), MH_VERIFY_OK);
    json_t *in_env = json_loads(fixture, 0, NULL), *out_env = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(out_env, "SignatureVersion")), "2");
    assert_true(json_equal(json_object_get(in_env, "Message"), json_object_get(out_env, "Message")));
    assert_true(json_equal(json_object_get(in_env, "Timestamp"), json_object_get(out_env, "Timestamp")));
    /* The re-signed message, tampered, fails. */
    json_object_set_new(out_env, "Message", json_string("{}"));
    char *tampered = json_dumps(out_env, 0);
    assert_int_equal(verify_h(cfg, tampered, now, NULL), MH_VERIFY_REJECT);
    free(tampered);
    json_decref(in_env);
    json_decref(out_env);
    free(out);

    /* Anything else is wrapped as a new Notification to the first topic, stamped now. */
    char *record = slurp(VEC "../../fixtures/ses/delivery/body.json");
    json_t *env = json_loads(record, 0, NULL);
    const char *ses = json_string_value(json_object_get(env, "Message"));
    assert_int_equal(sign_then_verify(cfg, key, ses, now, &out), MH_VERIFY_OK);
    out_env = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(out_env, "Message")), ses);
    assert_string_equal(json_string_value(json_object_get(out_env, "TopicArn")), TOPIC_SES);
    assert_string_equal(json_string_value(json_object_get(out_env, "SigningCertURL")),
                        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000000000test.pem");
    json_decref(out_env);
    json_decref(env);
    free(out);
    free(record);

    /* A key that is not a configured certificate's, and no key, are refused. */
    const struct mh_source *src = mh_config_source(cfg, "ses");
    struct mh_headers h = {0};
    char url[64] = "http://h/", err[256];
    struct mh_sign_req sr = {.body = (const unsigned char *)fixture, .body_len = strlen(fixture), .now_ms = now,
                             .private_key_file = other_key, .headers = &h, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not the private half"));
    sr.private_key_file = NULL;
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--key"));
    assert_null(sr.new_body);
    assert_int_equal(h.n, 0);

    mh_config_free(cfg);
    free(fixture);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    unlink(cert);
    unlink(key);
    unlink(other_cert);
    unlink(other_key);
    rmdir(dir);
}

static int parse_error(const char *body, char *err, size_t errlen)
{
    struct mh_raw raw = {.source = "ses", .provider = "ses", .tenant = "t",
                         .body = (const unsigned char *)body, .body_len = strlen(body)};
    json_t *events = json_array();
    int rc = mh_provider_find("ses")->parse(&raw, events, err, errlen);
    json_decref(events);
    return rc;
}

/* Bodies no signed SNS request carries (the fixtures only hold SNS messages). */
static void test_parse_errors(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(parse_error("not json", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ses: invalid JSON"));
    assert_int_equal(parse_error("{\"eventType\":\"Bounce\",\"mail\":{}}", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not an SNS message"));
    assert_int_equal(parse_error("{\"Type\":\"Notification\"}", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "without a string \"Message\""));
    assert_int_equal(parse_error("{\"Type\":\"Notification\",\"Message\":\"[1]\"}", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not an SES event record"));
    assert_int_equal(parse_error("{\"Type\":\"Notification\",\"Type\":\"x\"}", err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_official_vectors),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_negative_cases),
        cmocka_unit_test(test_topic_allow_list),
        cmocka_unit_test(test_raw_delivery_refused),
        cmocka_unit_test(test_timestamp_tolerance),
        cmocka_unit_test(test_rotation_and_directory),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
