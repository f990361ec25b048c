/*
 * test_verify_ivymail.c — IvyMail's x-ivymail-signature (HMAC-SHA256 of the raw body;
 * hex or base64, optional "sha256=" prefix, since IvyMail does not document which):
 * accepted forms, wrong key, tampered body, missing header, secret rotation.
 */
#include "provider_test.h"

#define BODY "{\"event\":\"delivered\",\"message_id\":\"abc123\",\"to\":\"recipient@example.com\"}"
#define HEADER "x-ivymail-signature"

static const char *const ini =
    "[source.ivy]\n"
    "provider = ivymail\n"
    "secret = ivy-old\n"
    "secret = ivy-current\n";

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

static enum mh_verdict run(const char *secret, int base64, const char *prefix, const char *body)
{
    char mac[2 * MH_MAX_MD + 1], header[200];
    struct pt_request r;
    pt_hmac("sha256", secret, BODY, strlen(BODY), base64, mac);
    snprintf(header, sizeof(header), "%s%s", prefix, mac);
    pt_request_init(&r, "/v1/webhooks/ivy", body, strlen(body), 0);
    mh_headers_add(&r.headers, HEADER, header);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, "ivy"), &r);
    pt_request_free(&r);
    return v;
}

static void test_hex_and_base64(void **state)
{
    (void)state;
    assert_int_equal(run("ivy-current", 0, "", BODY), MH_VERIFY_OK);
    assert_int_equal(run("ivy-current", 1, "", BODY), MH_VERIFY_OK);
    assert_int_equal(run("ivy-current", 0, "sha256=", BODY), MH_VERIFY_OK);
}

static void test_rotation(void **state)
{
    (void)state;
    assert_int_equal(run("ivy-old", 0, "", BODY), MH_VERIFY_OK);
}

static void test_wrong_key(void **state)
{
    (void)state;
    assert_int_equal(run("ivy-other", 0, "", BODY), MH_VERIFY_REJECT);
    assert_int_equal(run("ivy-other", 1, "", BODY), MH_VERIFY_REJECT);
}

static void test_tampered_body(void **state)
{
    (void)state;
    const char *tampered = "{\"event\":\"bounced\",\"message_id\":\"abc123\",\"to\":\"recipient@example.com\"}";
    assert_int_equal(run("ivy-current", 0, "", tampered), MH_VERIFY_REJECT);
}

static void test_missing_header(void **state)
{
    (void)state;
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/ivy", BODY, strlen(BODY), 0);
    assert_int_equal(pt_verify(mh_config_source(cfg, "ivy"), &r), MH_VERIFY_REJECT);
    assert_non_null(strstr(r.err, HEADER));
    mh_headers_add(&r.headers, HEADER, "");
    assert_int_equal(pt_verify(mh_config_source(cfg, "ivy"), &r), MH_VERIFY_REJECT);
    pt_request_free(&r);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.ivy]\nprovider = ivymail\n", "needs a secret"));
    assert_true(pt_config_fails_with("[source.ivy]\nprovider = ivymail\nsecret = s\nheader = x\n",
                                     "unknown key \"header\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_and_base64), cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_wrong_key),      cmocka_unit_test(test_tampered_body),
        cmocka_unit_test(test_missing_header), cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
