/*
 * test_verify_postmark.c — Postmark signs nothing; a source authenticates the caller by
 * HTTP Basic credentials (basic_user + a secret), a custom header holding a secret, or
 * both. Right and wrong credentials of each kind, rotation, missing and malformed
 * headers, both modes at once, sign -> verify round trips and option validation.
 */
#include "provider_test.h"

#define BODY "{\"RecordType\":\"Delivery\",\"Recipient\":\"user@example.net\"}"

static const char *const ini =
    "[source.pm]\n"
    "provider = postmark\n"
    "basic_user = postmark-hook\n"
    "secret = new-Secret/2\n"
    "secret = old-Secret+1\n"
    "\n"
    "[source.hdr]\n"
    "provider = postmark\n"
    "header = X-Webhook-Token\n"
    "secret = hdr-new\n"
    "secret = hdr-old\n"
    "\n"
    "[source.both]\n"
    "provider = postmark\n"
    "basic_user = pm\n"
    "header = x-hook-secret\n"
    "secret = both-secret\n";

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

/* Verdict for source with optional "user:password" Basic credentials and one header. */
static enum mh_verdict run_err(const char *source, const char *userpass, const char *hname,
                               const char *hvalue, char *err, size_t errlen)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/x", BODY, strlen(BODY), 0);
    if (userpass) {
        char b64[256], header[300];
        mh_b64_encode((const unsigned char *)userpass, strlen(userpass), b64);
        snprintf(header, sizeof(header), "Basic %s", b64);
        mh_headers_add(&r.headers, "Authorization", header);
    }
    if (hname) mh_headers_add(&r.headers, hname, hvalue);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, source), &r);
    if (err) snprintf(err, errlen, "%s", r.err);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict run(const char *source, const char *userpass, const char *hname,
                           const char *hvalue)
{
    return run_err(source, userpass, hname, hvalue, NULL, 0);
}

static void test_basic_ok(void **state)
{
    (void)state;
    assert_int_equal(run("pm", "postmark-hook:new-Secret/2", NULL, NULL), MH_VERIFY_OK);
}

static void test_basic_rotation(void **state)
{
    (void)state;
    assert_int_equal(run("pm", "postmark-hook:old-Secret+1", NULL, NULL), MH_VERIFY_OK);
}

static void test_basic_wrong(void **state)
{
    (void)state;
    char err[512];
    /* Wrong password, wrong user, near misses; the error never repeats a credential. */
    assert_int_equal(run_err("pm", "postmark-hook:wrong", NULL, NULL, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "wrong"));
    assert_null(strstr(err, "Secret"));
    assert_int_equal(run_err("pm", "someone:new-Secret/2", NULL, NULL, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "someone"));
    assert_int_equal(run("pm", "postmark-hook:new-Secret/", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("pm", "postmark-hook:new-Secret/2x", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("pm", "Postmark-hook:new-Secret/2", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("pm", "postmark-hook:", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("pm", ":new-Secret/2", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("pm", "postmark-hooknew-Secret/2", NULL, NULL), MH_VERIFY_REJECT);
    /* The user name is not a secret. */
    assert_int_equal(run("pm", "postmark-hook:postmark-hook", NULL, NULL), MH_VERIFY_REJECT);
}

static void test_basic_missing(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run_err("pm", NULL, NULL, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    /* A secret in some other header is no substitute. */
    assert_int_equal(run("pm", NULL, "X-Webhook-Token", "new-Secret/2"), MH_VERIFY_REJECT);
}

static void test_basic_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Basic", "Basic ", "Basic !!!", "Basic cG9zdG1hcmstaG9vaw==" /* no colon */,
        "Bearer new-Secret/2", "new-Secret/2", "Digest username=\"postmark-hook\"", NULL,
    };
    for (const char *const *h = bad; *h; h++)
        assert_int_equal(run("pm", NULL, "Authorization", *h), MH_VERIFY_REJECT);
}

static void test_header_mode(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run("hdr", NULL, "X-Webhook-Token", "hdr-new"), MH_VERIFY_OK);
    /* Header names are case-insensitive; both active secrets work (rotation). */
    assert_int_equal(run("hdr", NULL, "x-webhook-token", "hdr-old"), MH_VERIFY_OK);
    assert_int_equal(run_err("hdr", NULL, "X-Webhook-Token", "hdr-ne", err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "hdr-ne"));
    assert_int_equal(run("hdr", NULL, "X-Webhook-Token", "hdr-new "), MH_VERIFY_REJECT);
    assert_int_equal(run("hdr", NULL, "X-Webhook-Token", ""), MH_VERIFY_REJECT);
    assert_int_equal(run_err("hdr", NULL, NULL, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    /* Basic credentials do not stand in for the header. */
    assert_int_equal(run("hdr", "x:hdr-new", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("hdr", NULL, "X-Other", "hdr-new"), MH_VERIFY_REJECT);
}

static void test_both_required(void **state)
{
    (void)state;
    assert_int_equal(run("both", "pm:both-secret", "X-Hook-Secret", "both-secret"), MH_VERIFY_OK);
    assert_int_equal(run("both", "pm:both-secret", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("both", NULL, "X-Hook-Secret", "both-secret"), MH_VERIFY_REJECT);
    assert_int_equal(run("both", "pm:both-secret", "X-Hook-Secret", "nope"), MH_VERIFY_REJECT);
    assert_int_equal(run("both", "pm:nope", "X-Hook-Secret", "both-secret"), MH_VERIFY_REJECT);
}

/* `mailhook sign` adds what the source expects (and only that), and it verifies. */
static void sign_and_verify(const char *source, int want_basic, const char *want_header,
                            const char *want_value)
{
    struct pt_request r;
    char url[256] = "http://h/v1/webhooks/x", err[256];
    const struct mh_source *src = mh_config_source(cfg, source);
    pt_request_init(&r, "/v1/webhooks/x", BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                             .headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_string_equal(url, "http://h/v1/webhooks/x");
    const char *auth = mh_headers_get(&r.headers, "authorization");
    assert_int_equal(auth != NULL, want_basic);
    if (auth) assert_int_equal(strncmp(auth, "Basic ", 6), 0);
    if (want_header) assert_string_equal(mh_headers_get(&r.headers, want_header), want_value);
    assert_int_equal(r.headers.n, (size_t)want_basic + (want_header != NULL));
    assert_int_equal(pt_verify(src, &r), MH_VERIFY_OK);
    pt_request_free(&r);
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    sign_and_verify("pm", 1, NULL, NULL);
    sign_and_verify("hdr", 0, "x-webhook-token", "hdr-new");
    sign_and_verify("both", 1, "x-hook-secret", "both-secret");

    /* Signed with the newest secret: the exact Basic value Postmark would send. */
    struct pt_request r;
    char url[64] = "http://h/", err[256], want[128];
    pt_request_init(&r, "/", BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    const struct mh_source *src = mh_config_source(cfg, "pm");
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "Basic ");
    mh_b64_encode((const unsigned char *)"postmark-hook:new-Secret/2", 26, want + 6);
    assert_string_equal(mh_headers_get(&r.headers, "Authorization"), want);
    pt_request_free(&r);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.p]\nprovider = postmark\nbasic_user = u\n",
                                     "needs a secret"));
    assert_true(pt_config_fails_with("[source.p]\nprovider = postmark\nsecret = s\n",
                                     "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.p]\nprovider = postmark\nsecret = s\nbasic_user = a:b\n", "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.p]\nprovider = postmark\nsecret = s\nbasic_user =\n", "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.p]\nprovider = postmark\nsecret = s\nheader = X Bad\n", "header"));
    assert_true(pt_config_fails_with(
        "[source.p]\nprovider = postmark\nsecret = s\nheader = Authorization\n", "header"));
    assert_true(pt_config_fails_with("[source.p]\nprovider = postmark\nsecret = s\ntoken = s\n",
                                     "unknown key \"token\""));
}

/* The credentials are never copied onto the raw record. */
static void test_nothing_forwarded(void **state)
{
    (void)state;
    const struct mh_source *src = mh_config_source(cfg, "both");
    assert_null(src->provider->forward_headers);
    assert_int_equal(src->n_forward, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_ok),       cmocka_unit_test(test_basic_rotation),
        cmocka_unit_test(test_basic_wrong),    cmocka_unit_test(test_basic_missing),
        cmocka_unit_test(test_basic_malformed), cmocka_unit_test(test_header_mode),
        cmocka_unit_test(test_both_required),  cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_options),        cmocka_unit_test(test_nothing_forwarded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
