/*
 * test_verify_ivymail.c — IvyMail's x-ivymail-signature (HMAC-SHA256 of the raw body;
 * hex by default or base64 by option, an optional prefix, "sha256=" by default):
 * accepted forms, wrong key, tampered body, missing header, secret rotation, options;
 * and the bounce fields parse keeps.
 */
#include "provider_test.h"

#define BODY "{\"event\":\"delivered\",\"message_id\":\"abc123\",\"to\":\"recipient@example.com\"}"
#define HEADER "x-ivymail-signature"

static const char *const ini =
    "[source.ivy]\n"
    "provider = ivymail\n"
    "secret = ivy-old\n"
    "secret = ivy-current\n"
    "[source.ivy64]\n"
    "provider = ivymail\n"
    "secret = ivy-current\n"
    "encoding = base64\n"
    "prefix = v1=\n";

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

static enum mh_verdict run_on(const char *source, const char *secret, int base64,
                              const char *prefix, const char *body)
{
    char mac[2 * MH_MAX_MD + 1], header[200];
    struct pt_request r;
    pt_hmac("sha256", secret, BODY, strlen(BODY), base64, mac);
    snprintf(header, sizeof(header), "%s%s", prefix, mac);
    pt_request_init(&r, "/v1/webhooks/ivy", body, strlen(body), 0);
    mh_headers_add(&r.headers, HEADER, header);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, source), &r);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict run(const char *secret, int base64, const char *prefix, const char *body)
{
    return run_on("ivy", secret, base64, prefix, body);
}

static void test_hex_and_base64(void **state)
{
    (void)state;
    /* Default: hex, "sha256=" optional; base64 is not tried. */
    assert_int_equal(run("ivy-current", 0, "", BODY), MH_VERIFY_OK);
    assert_int_equal(run("ivy-current", 0, "sha256=", BODY), MH_VERIFY_OK);
    assert_int_equal(run("ivy-current", 0, "SHA256=", BODY), MH_VERIFY_OK);
    assert_int_equal(run("ivy-current", 1, "", BODY), MH_VERIFY_REJECT);
    /* encoding = base64, prefix = v1= */
    assert_int_equal(run_on("ivy64", "ivy-current", 1, "", BODY), MH_VERIFY_OK);
    assert_int_equal(run_on("ivy64", "ivy-current", 1, "v1=", BODY), MH_VERIFY_OK);
    assert_int_equal(run_on("ivy64", "ivy-current", 0, "", BODY), MH_VERIFY_REJECT);
    assert_int_equal(run_on("ivy64", "ivy-current", 1, "sha256=", BODY), MH_VERIFY_REJECT);
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
    assert_true(pt_config_fails_with(
        "[source.ivy]\nprovider = ivymail\nsecret = s\nencoding = base32\n", "encoding"));
}

/* bounced without bounce_type is hard; the raw type and subtype are kept. */
static void test_bounce_fields(void **state)
{
    (void)state;
    json_t *ev = pt_parse_one("ivymail", "{\"event\":\"bounced\",\"message_id\":\"m1\","
                                          "\"to\":\"a@example.com\",\"timestamp\":"
                                          "\"2026-01-01T00:00:00Z\"}");
    assert_string_equal(pt_str(ev, "bounce", "class"), "hard");
    assert_null(json_object_get(json_object_get(ev, "bounce"), "provider_type"));
    json_decref(ev);
    ev = pt_parse_one("ivymail", "{\"event\":\"bounced\",\"message_id\":\"m2\",\"to\":"
                                 "\"a@example.com\",\"bounce_type\":\"Transient\","
                                 "\"bounce_subtype\":\"MailboxFull\"}");
    assert_string_equal(pt_str(ev, "bounce", "class"), "soft");
    assert_string_equal(pt_str(ev, "bounce", "category"), "mailbox_full");
    assert_string_equal(pt_str(ev, "bounce", "provider_type"), "Transient");
    assert_string_equal(pt_str(ev, "bounce", "provider_subtype"), "MailboxFull");
    json_decref(ev);
    /* A code in the diagnostic comes first: 4.x.x is temporary whatever the event says. */
    ev = pt_parse_one("ivymail", "{\"event\":\"bounced\",\"message_id\":\"m3\",\"to\":"
                                 "\"a@example.com\",\"diagnostic_code\":\"451 4.4.1 no answer\"}");
    assert_string_equal(pt_str(ev, "bounce", "class"), "soft");
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_and_base64), cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_wrong_key),      cmocka_unit_test(test_tampered_body),
        cmocka_unit_test(test_missing_header), cmocka_unit_test(test_options),
        cmocka_unit_test(test_bounce_fields),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
