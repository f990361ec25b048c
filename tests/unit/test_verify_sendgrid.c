/*
 * test_verify_sendgrid.c — SendGrid's signed Event Webhook (ECDSA P-256, SHA-256 over
 * timestamp || raw body), checked with SendGrid's own SDK test vectors (the Node SDK's,
 * with its four negative cases, and the Python SDK's, whose body ends in CRLF), plus
 * missing headers, key options and their errors, rotation, the timestamp tolerance and
 * a `mailhook sign` round trip with a freshly generated key.
 */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "provider_test.h"

/* sendgrid-nodejs packages/eventwebhook/src/eventwebhook.spec.js */
#define NODE_KEY                                                                                   \
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhH" \
    "PTnlvFYPAZFceEu/1FwCM/QmGUhA=="
#define NODE_OTHER_KEY                                                                             \
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7a" \
    "NDthvj+y7GjUuFDb/R1NGe1OPzpA=="
#define NODE_SIG                                                                                   \
    "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
#define NODE_TAMPERED_SIG                                                                          \
    "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0="
#define NODE_TS "1588788367"
#define NODE_BODY "{\"category\":\"example_payload\",\"event\":\"test_event\",\"message_id\":\"message_id\"}"
#define NODE_TS_MS 1588788367000LL

/* sendgrid-python test/unit/test_eventwebhook.py: the body ends in CRLF, which is signed. */
#define PY_KEY                                                                                     \
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2f" \
    "NNRaINXvVpiglSI8eNEc6wEA3F+g=="
#define PY_SIG                                                                                     \
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
#define PY_TS "1600112502"
#define PY_BODY                                                                                    \
    "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\","           \
    "\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":"     \
    "\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":"    \
    "\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n"
#define PY_TS_MS 1600112502000LL

/* An RSA key (SPKI, base64): a valid public key, but not one SendGrid signs with. */
#define RSA_KEY                                                                                    \
    "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAOhF92CyoPeQ06oue6VrL3DMtVIMFoGGfelUxXW4FlnlN/NSvTWN4/9iBtkJsxx" \
    "r9xNieXYmxHBuW+UYYsElW+kCAwEAAQ=="
/* An EC key on P-384: right algorithm, wrong curve. */
#define P384_KEY                                                                                   \
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEXmSxnZLVANbq+sQNfm9mzPxrg+Dpsjf0lrZudAyULms1C31hp8c097DbBhLaSu6" \
    "n2Dp9G74tzpgmGxkNW3ceQX5Lx8LcgZr5IdUzrPqzRsP8azZeuSnUnYvXx3w7vlIU"

#define SIG_H "X-Twilio-Email-Event-Webhook-Signature"
#define TS_H "X-Twilio-Email-Event-Webhook-Timestamp"

/* A sendgrid source "sg" with the given option lines. */
static struct mh_config *source_with(const char *options)
{
    char ini[4096];
    snprintf(ini, sizeof(ini), "[source.sg]\nprovider = sendgrid\ntenant = acme\n%s", options);
    return pt_config(ini);
}

/* verify of body with the two headers (either may be NULL: not sent). */
static enum mh_verdict verify_raw(struct mh_config *cfg, const void *body, size_t len,
                                  const char *sig, const char *ts, int64_t now_ms)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/sg", body, len, now_ms);
    if (sig) mh_headers_add(&r.headers, SIG_H, sig);
    if (ts) mh_headers_add(&r.headers, TS_H, ts);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, "sg"), &r);
    if (v != MH_VERIFY_OK) print_message("verify: %s\n", r.err);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict verify_with(struct mh_config *cfg, const char *body, const char *sig,
                                   const char *ts, int64_t now_ms)
{
    return verify_raw(cfg, body, strlen(body), sig, ts, now_ms);
}

static void test_node_vector(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("public_key = " NODE_KEY "\n");
    /* Default tolerance, a minute after the vector was signed. */
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS + 60000), MH_VERIFY_OK);
    mh_config_free(cfg);
    cfg = source_with("public_key = " NODE_KEY "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, 1767225600000LL), MH_VERIFY_OK);
    mh_config_free(cfg);
}

static void test_python_crlf_vector(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("public_key = " PY_KEY "\n");
    assert_int_equal(verify_with(cfg, PY_BODY, PY_SIG, PY_TS, PY_TS_MS + 1000), MH_VERIFY_OK);
    /* The CRLF is signed: the body without it (or without its CR) is another body. */
    assert_int_equal(verify_raw(cfg, PY_BODY, strlen(PY_BODY) - 2, PY_SIG, PY_TS, PY_TS_MS),
                     MH_VERIFY_REJECT);
    char lf_only[sizeof(PY_BODY)];
    memcpy(lf_only, PY_BODY, sizeof(PY_BODY));
    memcpy(lf_only + strlen(PY_BODY) - 2, "\n", 2);
    assert_int_equal(verify_with(cfg, lf_only, PY_SIG, PY_TS, PY_TS_MS), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

/* The fixture the golden tests use is the Python vector's body, byte for byte. */
static void test_vector_matches_fixture(void **state)
{
    (void)state;
    FILE *fp = fopen(MH_FIXTURES_DIR "/sendgrid/dropped-bounced-address-signed-crlf/body.json", "rb");
    char buf[2048];
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_int_equal(n, strlen(PY_BODY));
    assert_memory_equal(buf, PY_BODY, n);
}

/* The Node SDK's four negative cases, each with and without the freshness check. */
static void test_node_negative_cases(void **state)
{
    (void)state;
    static const char *const tolerances[] = {"", "timestamp_tolerance_s = 0\n"};
    for (size_t i = 0; i < 2; i++) {
        char opts[512];
        snprintf(opts, sizeof(opts), "public_key = " NODE_OTHER_KEY "\n%s", tolerances[i]);
        struct mh_config *other = source_with(opts);
        assert_int_equal(verify_with(other, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS), MH_VERIFY_REJECT);
        mh_config_free(other);

        snprintf(opts, sizeof(opts), "public_key = " NODE_KEY "\n%s", tolerances[i]);
        struct mh_config *cfg = source_with(opts);
        assert_int_equal(verify_with(cfg, "payload", NODE_SIG, NODE_TS, NODE_TS_MS), MH_VERIFY_REJECT);
        assert_int_equal(verify_with(cfg, NODE_BODY, NODE_TAMPERED_SIG, NODE_TS, NODE_TS_MS),
                         MH_VERIFY_REJECT);
        assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, "timestamp", NODE_TS_MS), MH_VERIFY_REJECT);
        /* and the untouched vector still passes on the same source */
        assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS), MH_VERIFY_OK);
        mh_config_free(cfg);
    }
}

static void test_missing_or_garbled_headers(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("public_key = " NODE_KEY "\n");
    assert_int_equal(verify_with(cfg, NODE_BODY, NULL, NULL, NODE_TS_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, NODE_BODY, NULL, NODE_TS, NODE_TS_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NULL, NODE_TS_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, NODE_BODY, "", NODE_TS, NODE_TS_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, "", NODE_TS_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, NODE_BODY, "%%%not base64%%%", NODE_TS, NODE_TS_MS),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, NODE_BODY, "AAAA", NODE_TS, NODE_TS_MS), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

static void test_timestamp_tolerance(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("public_key = " NODE_KEY "\n");
    /* Default: 96 hours, either direction. */
    const int64_t h96 = 96 * 3600 * 1000LL;
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS + h96), MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS + h96 + 1000),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS - h96 - 1000),
                     MH_VERIFY_REJECT);
    /* Years later (the vectors' age): stale. */
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, 1767225600000LL), MH_VERIFY_REJECT);
    mh_config_free(cfg);

    cfg = source_with("public_key = " NODE_KEY "\ntimestamp_tolerance_s = 300\n");
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS + 299000), MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS + 301000),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

static void test_rotation(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("public_key = " NODE_OTHER_KEY "\npublic_key = " PY_KEY
                                        "\npublic_key = " NODE_KEY "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS), MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, PY_BODY, PY_SIG, PY_TS, PY_TS_MS), MH_VERIFY_OK);
    mh_config_free(cfg);
}

static char *pem_file(EVP_PKEY *pkey, int private_half)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, text[4096];
    if (private_half) assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    else assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    long len = BIO_get_mem_data(bio, &data);
    assert_true(len > 0 && (size_t)len < sizeof(text));
    memcpy(text, data, (size_t)len);
    text[len] = '\0';
    BIO_free(bio);
    return pt_temp_file(text);
}

/* public_key_file: SendGrid's base64 pasted into a file (with a newline), or a PEM. */
static void test_public_key_file(void **state)
{
    (void)state;
    char *b64 = pt_temp_file(NODE_KEY "\n"), opts[512];
    snprintf(opts, sizeof(opts), "public_key_file = %s\ntimestamp_tolerance_s = 0\n", b64);
    struct mh_config *cfg = source_with(opts);
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS), MH_VERIFY_OK);
    mh_config_free(cfg);

    unsigned char der[128];
    ssize_t n = mh_b64_decode(NODE_KEY, strlen(NODE_KEY), der, sizeof(der));
    assert_true(n > 0);
    const unsigned char *p = der;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)n);
    assert_non_null(pkey);
    char *pem = pem_file(pkey, 0);
    snprintf(opts, sizeof(opts), "public_key_file = %s\ntimestamp_tolerance_s = 0\n", pem);
    cfg = source_with(opts);
    assert_int_equal(verify_with(cfg, NODE_BODY, NODE_SIG, NODE_TS, NODE_TS_MS), MH_VERIFY_OK);
    mh_config_free(cfg);
    EVP_PKEY_free(pkey);
    pt_remove(pem);
    pt_remove(b64);
}

static void test_key_errors(void **state)
{
    (void)state;
    char *junk = pt_temp_file("hello"), opts[512];
    assert_true(pt_config_fails_with("[source.sg]\nprovider = sendgrid\n",
                                     "needs public_key or public_key_file"));
    assert_true(pt_config_fails_with("[source.sg]\nprovider = sendgrid\npublic_key = not-a-key!!\n",
                                     "public_key: not a public key"));
    /* Base64 that decodes, but to something other than a key (a truncated one). */
    assert_true(pt_config_fails_with(
        "[source.sg]\nprovider = sendgrid\npublic_key = MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2\n",
        "not a public key"));
    assert_true(pt_config_fails_with("[source.sg]\nprovider = sendgrid\npublic_key = " RSA_KEY "\n",
                                     "not an EC P-256 key"));
    assert_true(pt_config_fails_with("[source.sg]\nprovider = sendgrid\npublic_key = " P384_KEY "\n",
                                     "not an EC P-256 key"));
    assert_true(pt_config_fails_with(
        "[source.sg]\nprovider = sendgrid\npublic_key_file = /nonexistent/sendgrid.pub\n", "cannot open"));
    snprintf(opts, sizeof(opts), "[source.sg]\nprovider = sendgrid\npublic_key_file = %s\n", junk);
    assert_true(pt_config_fails_with(opts, "public_key_file: not a public key"));
    assert_true(pt_config_fails_with("[source.sg]\nprovider = sendgrid\npublic_key = " NODE_KEY
                                     "\ntimestamp_tolerance_s = -1\n",
                                     "timestamp_tolerance_s"));
    /* The error names the line of the offending option (the good key on line 3 loads). */
    assert_true(pt_config_fails_with("[source.sg]\nprovider = sendgrid\npublic_key = " NODE_KEY
                                     "\n\npublic_key = AAAA\n",
                                     ":5:"));
    pt_remove(junk);
}

/* `mailhook sign --key`: both headers, stamped now, and the request verifies. */
static void test_sign_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *pkey = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    assert_non_null(other);
    char *pub = pem_file(pkey, 0), *priv = pem_file(pkey, 1), *wrong = pem_file(other, 1);
    char opts[512], url[256] = "http://h/", err[256];
    snprintf(opts, sizeof(opts), "public_key_file = %s\n", pub);
    struct mh_config *cfg = source_with(opts);
    const struct mh_source *src = mh_config_source(cfg, "sg");
    const int64_t now = 1767225600123LL;
    struct mh_headers h = {0};
    struct mh_sign_req sr = {.body = (const unsigned char *)PY_BODY, .body_len = strlen(PY_BODY),
                             .now_ms = now, .private_key_file = priv, .headers = &h,
                             .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    const char *sig = mh_headers_get(&h, SIG_H), *ts = mh_headers_get(&h, TS_H);
    assert_non_null(sig);
    assert_string_equal(ts, "1767225600");
    assert_int_equal(verify_with(cfg, PY_BODY, sig, ts, now + 5000), MH_VERIFY_OK);
    /* The signature binds the timestamp. */
    assert_int_equal(verify_with(cfg, PY_BODY, sig, "1767225601", now), MH_VERIFY_REJECT);
    mh_headers_clear(&h);

    /* A key that is not the source's, and no key at all, are refused. */
    sr.private_key_file = wrong;
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not the private half"));
    sr.private_key_file = NULL;
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--key"));
    assert_int_equal(h.n, 0);

    mh_config_free(cfg);
    pt_remove(pub);
    pt_remove(priv);
    pt_remove(wrong);
    EVP_PKEY_free(pkey);
    EVP_PKEY_free(other);
}

/* Raw bounce type (type, bounce_classification) and delivery.sending_ip <- ip. */
static void test_parse_fidelity(void **state)
{
    (void)state;
    json_t *ev = pt_parse_one("sendgrid",
                              "[{\"email\":\"a@x.org\",\"timestamp\":1700000000,\"event\":\"bounce\","
                              "\"sg_event_id\":\"b1\",\"type\":\"blocked\",\"bounce_classification\":"
                              "\"Reputation\",\"reason\":\"554 5.7.1 blocked\",\"ip\":\"192.0.2.5\"}]");
    assert_string_equal(pt_str(ev, "bounce", "provider_type"), "blocked");
    assert_string_equal(pt_str(ev, "bounce", "provider_subtype"), "Reputation");
    assert_string_equal(pt_str(ev, "delivery", "sending_ip"), "192.0.2.5");
    assert_null(pt_str(ev, "metadata", "bounce_classification"));
    json_decref(ev);
    ev = pt_parse_one("sendgrid", "[{\"email\":\"a@x.org\",\"timestamp\":1700000000,\"event\":"
                                  "\"delivered\",\"sg_event_id\":\"d1\",\"ip\":\"192.0.2.6\"}]");
    assert_string_equal(pt_str(ev, "delivery", "sending_ip"), "192.0.2.6");
    json_decref(ev);
    /* on a click, ip is the reader's: click.ip, no delivery; SendGrid marks no machine click */
    ev = pt_parse_one("sendgrid", "[{\"email\":\"a@x.org\",\"timestamp\":1700000000,\"event\":"
                                  "\"click\",\"sg_event_id\":\"c1\",\"ip\":\"198.51.100.1\","
                                  "\"url\":\"https://x.org/\",\"sg_machine_open\":true}]");
    assert_string_equal(pt_str(ev, "click", "ip"), "198.51.100.1");
    assert_null(json_object_get(ev, "delivery"));
    assert_null(json_object_get(json_object_get(ev, "click"), "machine"));
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_vector),
        cmocka_unit_test(test_python_crlf_vector),
        cmocka_unit_test(test_vector_matches_fixture),
        cmocka_unit_test(test_node_negative_cases),
        cmocka_unit_test(test_missing_or_garbled_headers),
        cmocka_unit_test(test_timestamp_tolerance),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_public_key_file),
        cmocka_unit_test(test_key_errors),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_parse_fidelity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
