/*
 * test_verify_hmac.c — the generic HMAC provider as MailDog's article describes it (hex
 * HMAC-SHA256 of the raw body in x-maildog-signature) and as other platforms configure
 * it (header, algorithm, encoding, prefix): wrong key, tampered body, missing header,
 * secret rotation, and option validation.
 */
#include "provider_test.h"

#define BODY "{\"event\":\"hard_bounce\",\"timestamp\":\"2026-06-15T10:32:11Z\",\"message_id\":\"msg_8a7f3b2c1d4e9f0a\",\"recipient\":\"user@example.com\",\"reason\":\"550 5.1.1 The email account that you tried to reach does not exist\",\"smtp_code\":550}"

static const char *const ini =
    "[source.maildog]\n"
    "provider = hmac\n"
    "secret = md-old\n"
    "secret = md-current\n"
    "\n"
    "[source.custom]\n"
    "provider = hmac\n"
    "header = X-Custom-Signature\n"
    "algorithm = sha512\n"
    "encoding = base64\n"
    "prefix = v1=\n"
    "secret = custom-secret\n";

static struct mh_config *cfg;

static int setup(void **state)
{
    (void)state;
    cfg = pt_config(ini);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mh_config_free(cfg);
    return 0;
}

static enum mh_verdict run(const char *source, const char *header, const char *md,
                           const char *secret, int base64, const char *prefix, const char *body)
{
    char mac[2 * MH_MAX_MD + 1], value[200];
    struct pt_request r;
    pt_hmac(md, secret, BODY, strlen(BODY), base64, mac);
    snprintf(value, sizeof(value), "%s%s", prefix, mac);
    pt_request_init(&r, "/v1/webhooks/x", body, strlen(body), 0);
    mh_headers_add(&r.headers, header, value);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, source), &r);
    pt_request_free(&r);
    return v;
}

static void test_article_scheme(void **state)
{
    (void)state;
    assert_int_equal(run("maildog", "X-MailDog-Signature", "sha256", "md-current", 0, "", BODY),
                     MH_VERIFY_OK);
}

static void test_rotation(void **state)
{
    (void)state;
    assert_int_equal(run("maildog", "x-maildog-signature", "sha256", "md-old", 0, "", BODY),
                     MH_VERIFY_OK);
}

static void test_wrong_key_and_algorithm(void **state)
{
    (void)state;
    assert_int_equal(run("maildog", "x-maildog-signature", "sha256", "md-other", 0, "", BODY),
                     MH_VERIFY_REJECT);
    assert_int_equal(run("maildog", "x-maildog-signature", "sha1", "md-current", 0, "", BODY),
                     MH_VERIFY_REJECT);
    assert_int_equal(run("maildog", "x-maildog-signature", "sha256", "md-current", 1, "", BODY),
                     MH_VERIFY_REJECT);
}

static void test_tampered_body(void **state)
{
    (void)state;
    char tampered[sizeof(BODY)];
    memcpy(tampered, BODY, sizeof(BODY));
    tampered[sizeof(BODY) - 3] = '1'; /* smtp_code 550 -> 551 */
    assert_int_equal(run("maildog", "x-maildog-signature", "sha256", "md-current", 0, "", tampered),
                     MH_VERIFY_REJECT);
}

static void test_missing_header(void **state)
{
    (void)state;
    assert_int_equal(run("maildog", "x-other-signature", "sha256", "md-current", 0, "", BODY),
                     MH_VERIFY_REJECT);
}

static void test_configured_scheme(void **state)
{
    (void)state;
    assert_int_equal(run("custom", "x-custom-signature", "sha512", "custom-secret", 1, "v1=", BODY),
                     MH_VERIFY_OK);
    assert_int_equal(run("custom", "x-custom-signature", "sha512", "custom-secret", 0, "v1=", BODY),
                     MH_VERIFY_REJECT);
    assert_int_equal(run("custom", "x-maildog-signature", "sha512", "custom-secret", 1, "v1=", BODY),
                     MH_VERIFY_REJECT);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.m]\nprovider = hmac\nsecret = s\nalgorithm = md5\n",
                                     "algorithm"));
    assert_true(pt_config_fails_with("[source.m]\nprovider = hmac\nsecret = s\nencoding = b32\n",
                                     "encoding"));
    assert_true(pt_config_fails_with("[source.m]\nprovider = hmac\nsecret = s\nheader =\n", "header"));
    assert_true(pt_config_fails_with("[source.m]\nprovider = hmac\n", "needs a secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_article_scheme),       cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_wrong_key_and_algorithm), cmocka_unit_test(test_tampered_body),
        cmocka_unit_test(test_missing_header),       cmocka_unit_test(test_configured_scheme),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
