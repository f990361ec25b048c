/*
 * test_verify_cloudmailin.c — CloudMailin's outbound event webhook carries no signature;
 * the source authenticates the caller by HTTP Basic credentials (basic_user + a secret)
 * or a URL token (a secret). Correct and wrong credentials of both kinds, rotation,
 * missing credentials, malformed tokens and headers, and option validation.
 */
#include "provider_test.h"

#define BODY "{\"events\":[{\"kind\":\"delivery\",\"recipient\":\"user@example.net\",\"message_id\":\"m1\"}]}"

static const char *const ini =
    "[source.cm]\n"
    "provider = cloudmailin\n"
    "basic_user = cloudmailin\n"
    "secret = old-Secret+1\n"
    "secret = new-Secret/2\n"
    "\n"
    "[source.tokenonly]\n"
    "provider = cloudmailin\n"
    "secret = tok-only\n"
    "\n"
    "[source.oddtoken]\n"
    "provider = cloudmailin\n"
    "secret = a b/c+d&e=f%\n";

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

/* Verdict for a request to uri with an optional "user:password" in Basic auth. */
static enum mh_verdict run(const char *source, const char *uri, const char *userpass)
{
    struct pt_request r;
    pt_request_init(&r, uri, BODY, strlen(BODY), 0);
    if (userpass) {
        char b64[256], header[300];
        mh_b64_encode((const unsigned char *)userpass, strlen(userpass), b64);
        snprintf(header, sizeof(header), "Basic %s", b64);
        mh_headers_add(&r.headers, "Authorization", header);
    }
    enum mh_verdict v = pt_verify(mh_config_source(cfg, source), &r);
    pt_request_free(&r);
    return v;
}

static void test_token(void **state)
{
    (void)state;
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=new-Secret%2F2", NULL), MH_VERIFY_OK);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=new-Secret/2", NULL), MH_VERIFY_OK);
    assert_int_equal(run("cm", "/v1/webhooks/cm?a=1&token=new-Secret%2f2&b=2", NULL), MH_VERIFY_OK);
    /* "+" is a literal plus in a URL query, not a space. */
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=old-Secret+1", NULL), MH_VERIFY_OK);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=old-Secret%2B1", NULL), MH_VERIFY_OK);
}

static void test_token_wrong(void **state)
{
    (void)state;
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=new-secret%2F2", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=new-Secret%2F", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=new-Secret%2F2x", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=%zz", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=%2", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=new-Secret%00", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm?xtoken=new-Secret%2F2", NULL), MH_VERIFY_REJECT);
    /* The basic_user is not a secret. */
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=cloudmailin", NULL), MH_VERIFY_REJECT);
}

static void test_basic(void **state)
{
    (void)state;
    assert_int_equal(run("cm", "/v1/webhooks/cm", "cloudmailin:new-Secret/2"), MH_VERIFY_OK);
}

static void test_rotation(void **state)
{
    (void)state;
    /* Either active secret works, for both credential forms. */
    assert_int_equal(run("cm", "/v1/webhooks/cm", "cloudmailin:old-Secret+1"), MH_VERIFY_OK);
    assert_int_equal(run("cm", "/v1/webhooks/cm?token=old-Secret%2B1", NULL), MH_VERIFY_OK);
}

static void test_basic_wrong(void **state)
{
    (void)state;
    assert_int_equal(run("cm", "/v1/webhooks/cm", "cloudmailin:wrong"), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm", "someone:new-Secret/2"), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm", "cloudmailinnew-Secret/2"), MH_VERIFY_REJECT);
    assert_int_equal(run("cm", "/v1/webhooks/cm", ":new-Secret/2"), MH_VERIFY_REJECT);
    /* Without basic_user configured, Basic credentials are never enough. */
    assert_int_equal(run("tokenonly", "/v1/webhooks/tokenonly", "cloudmailin:tok-only"),
                     MH_VERIFY_REJECT);
    assert_int_equal(run("tokenonly", "/v1/webhooks/tokenonly?token=tok-only", NULL), MH_VERIFY_OK);
}

static void test_basic_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {"Basic", "Basic ", "Basic !!!", "Bearer new-Secret/2",
                                      "basic Y2xvdWRtYWlsaW4=", NULL};
    for (const char *const *h = bad; *h; h++) {
        struct pt_request r;
        pt_request_init(&r, "/v1/webhooks/cm", BODY, strlen(BODY), 0);
        mh_headers_add(&r.headers, "Authorization", *h);
        assert_int_equal(pt_verify(mh_config_source(cfg, "cm"), &r), MH_VERIFY_REJECT);
        pt_request_free(&r);
    }
}

static void test_missing(void **state)
{
    (void)state;
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/cm", BODY, strlen(BODY), 0);
    assert_int_equal(pt_verify(mh_config_source(cfg, "cm"), &r), MH_VERIFY_REJECT);
    assert_non_null(strstr(r.err, "missing"));
    r.req.uri = NULL;
    assert_int_equal(pt_verify(mh_config_source(cfg, "cm"), &r), MH_VERIFY_REJECT);
    pt_request_free(&r);
}

/* `mailhook sign` adds the credential the source expects, and the request verifies. */
static void sign_and_verify(const char *source, const char *base_url, const char *want_in_url,
                            int want_basic)
{
    struct pt_request r;
    char url[512], err[256];
    const struct mh_source *src = mh_config_source(cfg, source);
    snprintf(url, sizeof(url), "%s", base_url);
    pt_request_init(&r, url, BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                             .headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    if (want_in_url) assert_non_null(strstr(url, want_in_url));
    assert_int_equal(mh_headers_get(&r.headers, "authorization") != NULL, want_basic);
    r.req.uri = strstr(url, "/v1/");
    assert_int_equal(pt_verify(src, &r), MH_VERIFY_OK);
    pt_request_free(&r);
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    sign_and_verify("cm", "http://h/v1/webhooks/cm", NULL, 1);
    sign_and_verify("tokenonly", "http://h/v1/webhooks/tokenonly", "?token=tok-only", 0);
    sign_and_verify("oddtoken", "http://h/v1/webhooks/oddtoken?x=1", "&token=a%20b%2Fc%2Bd%26e%3Df%25", 0);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.c]\nprovider = cloudmailin\n", "needs a secret"));
    assert_true(pt_config_fails_with(
        "[source.c]\nprovider = cloudmailin\nsecret = s\nbasic_user = a:b\n", "basic_user"));
    assert_true(pt_config_fails_with("[source.c]\nprovider = cloudmailin\nsecret = s\ntoken = s\n",
                                     "unknown key \"token\""));
}

/* delivery from details (host, reply, tls) on delivery and bounce kinds only. */
static void test_parse_delivery(void **state)
{
    (void)state;
    json_t *ev = pt_parse_one("cloudmailin",
                              "{\"events\":[{\"kind\":\"delivery\",\"recipient\":\"a@x.org\","
                              "\"message_id\":\"m\",\"details\":{\"response\":\"250 OK\","
                              "\"mx\":\"mx.x.org\",\"tls\":false}}]}");
    assert_string_equal(pt_str(ev, "delivery", "remote_host"), "mx.x.org");
    assert_string_equal(pt_str(ev, "delivery", "smtp_response"), "250 OK");
    assert_true(json_is_false(json_object_get(json_object_get(ev, "delivery"), "tls")));
    json_decref(ev);
    ev = pt_parse_one("cloudmailin", "{\"events\":[{\"kind\":\"bounce\",\"recipient\":\"a@x.org\","
                                     "\"details\":{\"smtp_response\":\"550 5.1.1 unknown\"}}]}");
    assert_string_equal(pt_str(ev, "delivery", "smtp_response"), "550 5.1.1 unknown");
    json_decref(ev);
    ev = pt_parse_one("cloudmailin", "{\"events\":[{\"kind\":\"open\",\"recipient\":\"a@x.org\","
                                     "\"details\":{\"host\":\"h\",\"response\":\"r\"}}]}");
    assert_null(json_object_get(ev, "delivery"));
    json_decref(ev);
    ev = pt_parse_one("cloudmailin", "{\"events\":[{\"kind\":\"delivery\",\"recipient\":\"a@x.org\"}]}");
    assert_null(json_object_get(ev, "delivery")); /* no details: nothing known */
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),      cmocka_unit_test(test_token_wrong),
        cmocka_unit_test(test_basic),      cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_basic_wrong), cmocka_unit_test(test_basic_malformed),
        cmocka_unit_test(test_missing),    cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_options),    cmocka_unit_test(test_parse_delivery),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
