/*
 * test_verify_sparkpost.c — SparkPost signs nothing and sends no timestamp; a source
 * authenticates the caller by HTTP Basic credentials (basic_user + a secret), a custom
 * header holding a secret (e.g. the legacy X-MessageSystems-Webhook-Token), or both.
 * Right and wrong credentials, rotation, missing and malformed headers, no clock
 * dependence, sign -> verify round trips, option validation, what is forwarded, and
 * the parse decisions the fixtures cannot show alone (the ping batch, several classes
 * in one msys).
 */
#include "provider_test.h"

#include <jansson.h>

#define BODY "[{\"msys\":{}}]"

static const char *const ini =
    "[source.sp]\n"
    "provider = sparkpost\n"
    "basic_user = sparkpost-hook\n"
    "secret = new-Secret/2\n"
    "secret = old-Secret+1\n"
    "\n"
    "[source.token]\n"
    "provider = sparkpost\n"
    "header = X-MessageSystems-Webhook-Token\n"
    "secret = tok-new\n"
    "secret = tok-old\n"
    "\n"
    "[source.both]\n"
    "provider = sparkpost\n"
    "basic_user = sp\n"
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

/* Verdict for source at now_ms with optional "user:password" Basic credentials and a header. */
static enum mh_verdict run_at(const char *source, int64_t now_ms, const char *userpass,
                              const char *hname, const char *hvalue, char *err, size_t errlen)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/x", BODY, strlen(BODY), now_ms);
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
    return run_at(source, 1767225600000LL, userpass, hname, hvalue, NULL, 0);
}

static void test_basic_ok_and_rotation(void **state)
{
    (void)state;
    assert_int_equal(run("sp", "sparkpost-hook:new-Secret/2", NULL, NULL), MH_VERIFY_OK);
    assert_int_equal(run("sp", "sparkpost-hook:old-Secret+1", NULL, NULL), MH_VERIFY_OK);
}

static void test_basic_wrong(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run_at("sp", 0, "sparkpost-hook:wrong", NULL, NULL, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "wrong"));
    assert_null(strstr(err, "Secret"));
    assert_int_equal(run_at("sp", 0, "someone:new-Secret/2", NULL, NULL, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "someone"));
    assert_int_equal(run("sp", "sparkpost-hook:new-Secret/", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("sp", "sparkpost-hook:new-Secret/2x", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("sp", "SparkPost-hook:new-Secret/2", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("sp", "sparkpost-hook:", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("sp", "sparkpost-hook:sparkpost-hook", NULL, NULL), MH_VERIFY_REJECT);
}

static void test_basic_missing_or_malformed(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run_at("sp", 0, NULL, NULL, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    /* A secret in some other header, or as an OAuth bearer token, is no substitute. */
    assert_int_equal(run("sp", NULL, "X-MessageSystems-Webhook-Token", "new-Secret/2"),
                     MH_VERIFY_REJECT);
    static const char *const bad[] = {
        "Basic", "Basic ", "Basic !!!", "Bearer new-Secret/2", "new-Secret/2", NULL,
    };
    for (const char *const *h = bad; *h; h++)
        assert_int_equal(run("sp", NULL, "Authorization", *h), MH_VERIFY_REJECT);
}

static void test_token_header(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run("token", NULL, "X-MessageSystems-Webhook-Token", "tok-new"),
                     MH_VERIFY_OK);
    assert_int_equal(run("token", NULL, "x-messagesystems-webhook-token", "tok-old"),
                     MH_VERIFY_OK);
    assert_int_equal(run_at("token", 0, NULL, "X-MessageSystems-Webhook-Token", "tok-ne", err,
                            sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "tok-ne"));
    assert_int_equal(run("token", NULL, "X-MessageSystems-Webhook-Token", "tok-new "),
                     MH_VERIFY_REJECT);
    assert_int_equal(run("token", NULL, "X-MessageSystems-Webhook-Token", ""), MH_VERIFY_REJECT);
    assert_int_equal(run_at("token", 0, NULL, NULL, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(run("token", "x:tok-new", NULL, NULL), MH_VERIFY_REJECT);
}

static void test_both_required(void **state)
{
    (void)state;
    assert_int_equal(run("both", "sp:both-secret", "X-Hook-Secret", "both-secret"), MH_VERIFY_OK);
    assert_int_equal(run("both", "sp:both-secret", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("both", NULL, "X-Hook-Secret", "both-secret"), MH_VERIFY_REJECT);
    assert_int_equal(run("both", "sp:both-secret", "X-Hook-Secret", "nope"), MH_VERIFY_REJECT);
    assert_int_equal(run("both", "sp:nope", "X-Hook-Secret", "both-secret"), MH_VERIFY_REJECT);
}

/* No timestamp in the scheme: the verdict never depends on the clock (8 h retries pass). */
static void test_no_clock(void **state)
{
    (void)state;
    static const int64_t nows[] = {0, 1767225600000LL, 1767225600000LL + 9 * 3600 * 1000LL,
                                   4102444800000LL};
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        assert_int_equal(run_at("sp", nows[i], "sparkpost-hook:new-Secret/2", NULL, NULL, NULL, 0),
                         MH_VERIFY_OK);
        assert_int_equal(run_at("sp", nows[i], "sparkpost-hook:bad", NULL, NULL, NULL, 0),
                         MH_VERIFY_REJECT);
    }
}

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
    assert_null(sr.new_body);
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
    sign_and_verify("sp", 1, NULL, NULL);
    sign_and_verify("token", 0, "x-messagesystems-webhook-token", "tok-new");
    sign_and_verify("both", 1, "x-hook-secret", "both-secret");

    /* Signed with the newest secret: the exact Basic value SparkPost would send. */
    struct pt_request r;
    char url[64] = "http://h/", err[256], want[128];
    pt_request_init(&r, "/", BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    const struct mh_source *src = mh_config_source(cfg, "sp");
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "Basic ");
    mh_b64_encode((const unsigned char *)"sparkpost-hook:new-Secret/2", 27, want + 6);
    assert_string_equal(mh_headers_get(&r.headers, "Authorization"), want);
    pt_request_free(&r);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.p]\nprovider = sparkpost\nbasic_user = u\n",
                                     "needs a secret"));
    assert_true(pt_config_fails_with("[source.p]\nprovider = sparkpost\nsecret = s\n",
                                     "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.p]\nprovider = sparkpost\nsecret = s\nbasic_user = a:b\n", "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.p]\nprovider = sparkpost\nsecret = s\nheader = X Bad\n", "header"));
    assert_true(pt_config_fails_with(
        "[source.p]\nprovider = sparkpost\nsecret = s\nheader = Authorization\n", "header"));
    assert_true(pt_config_fails_with(
        "[source.p]\nprovider = sparkpost\nsecret = s\nheader = h\ntimestamp_tolerance_s = 5\n",
        "unknown key \"timestamp_tolerance_s\""));
}

/* Only the batch id reaches the raw record; never a credential header. */
static void test_forwarded(void **state)
{
    (void)state;
    const struct mh_source *src = mh_config_source(cfg, "both");
    const char *const *f = src->provider->forward_headers;
    assert_non_null(f);
    assert_string_equal(f[0], "x-messagesystems-batch-id");
    assert_null(f[1]);
}

/* Parses body with the sparkpost provider; returns rc, events in *out. */
static int parse(const char *body, json_t **out, char *err, size_t errlen)
{
    struct mh_headers h = {0};
    struct mh_raw raw = {.source = "sp", .provider = "sparkpost", .tenant = "t", .headers = &h,
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL, .topic = "mailhook.raw"};
    *out = json_array();
    return mh_provider_find("sparkpost")->parse(&raw, *out, err, errlen);
}

/* The ping SparkPost posts on webhook create/validate: accepted, no event. */
static void test_ping_batch(void **state)
{
    (void)state;
    json_t *evs;
    char err[256];
    assert_int_equal(parse(BODY, &evs, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(evs), 0);
    json_decref(evs);
    assert_int_equal(parse("[{\"msys\":{}},{\"msys\":{}}]", &evs, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(evs), 0);
    json_decref(evs);
    /* An empty batch too. */
    assert_int_equal(parse("[]", &evs, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(evs), 0);
    json_decref(evs);
}

/* Every member of msys is an event, in order; a ping wrapper beside them adds none. */
static void test_msys_members(void **state)
{
    (void)state;
    json_t *evs;
    char err[256];
    const char *body =
        "[{\"msys\":{}},{\"msys\":{"
        "\"message_event\":{\"type\":\"delivery\",\"event_id\":\"1\",\"rcpt_to\":\"a@x.org\","
        "\"timestamp\":\"1767225600\"},"
        "\"track_event\":{\"type\":\"click\",\"event_id\":\"2\",\"rcpt_to\":\"a@x.org\","
        "\"timestamp\":1767225601,\"target_link_url\":\"https://x.org/\"}}}]";
    assert_int_equal(parse(body, &evs, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(evs), 2);
    json_t *a = json_array_get(evs, 0), *b = json_array_get(evs, 1);
    assert_string_equal(json_string_value(json_object_get(a, "type")), "email.delivered");
    assert_string_equal(json_string_value(json_object_get(b, "type")), "email.clicked");
    assert_string_equal(json_string_value(json_object_get(b, "event_id")), "2");
    /* timestamp as a JSON number is read too. */
    assert_string_equal(json_string_value(json_object_get(b, "occurred_at")),
                        "2026-01-01T00:00:01.000Z");
    json_decref(evs);
}

/* Without event_id the id is derived: stable, and distinct for distinct clicks. */
static void test_derived_ids(void **state)
{
    (void)state;
    json_t *e1, *e2;
    char err[256];
    const char *body =
        "[{\"msys\":{\"track_event\":{\"type\":\"click\",\"rcpt_to\":\"a@x.org\","
        "\"message_id\":\"m\",\"timestamp\":\"1767225600\",\"target_link_url\":\"https://x/1\"}}},"
        "{\"msys\":{\"track_event\":{\"type\":\"click\",\"rcpt_to\":\"a@x.org\","
        "\"message_id\":\"m\",\"timestamp\":\"1767225600\",\"target_link_url\":\"https://x/2\"}}}]";
    assert_int_equal(parse(body, &e1, err, sizeof(err)), 0);
    assert_int_equal(parse(body, &e2, err, sizeof(err)), 0);
    const char *a = json_string_value(json_object_get(json_array_get(e1, 0), "event_id"));
    const char *b = json_string_value(json_object_get(json_array_get(e1, 1), "event_id"));
    assert_int_equal(strlen(a), 64);
    assert_string_not_equal(a, b);
    assert_string_equal(a, json_string_value(json_object_get(json_array_get(e2, 0), "event_id")));
    json_decref(e1);
    json_decref(e2);
}

/* bounce: type and bounce_class as the raw bounce type; sending_ip in delivery. */
static void test_bounce_kind_and_delivery(void **state)
{
    (void)state;
    json_t *evs;
    char err[256];
    const char *body =
        "[{\"msys\":{\"message_event\":{\"type\":\"bounce\",\"event_id\":\"3\",\"rcpt_to\":"
        "\"a@x.org\",\"timestamp\":\"1767225600\",\"bounce_class\":\"10\",\"raw_reason\":"
        "\"550 5.1.1 unknown\",\"sending_ip\":\"192.0.2.10\",\"outbound_tls\":\"1\"}}},"
        "{\"msys\":{\"message_event\":{\"type\":\"delivery\",\"event_id\":\"4\",\"rcpt_to\":"
        "\"a@x.org\",\"timestamp\":\"1767225600\",\"sending_ip\":\"192.0.2.11\"}}},"
        "{\"msys\":{\"message_event\":{\"type\":\"bounce\",\"event_id\":\"5\",\"rcpt_to\":"
        "\"a@x.org\",\"timestamp\":\"1767225600\",\"bounce_class\":90}}}]";
    assert_int_equal(parse(body, &evs, err, sizeof(err)), 0);
    json_t *a = json_array_get(evs, 0), *b = json_array_get(evs, 1), *c = json_array_get(evs, 2);
    assert_string_equal(pt_str(a, "bounce", "provider_type"), "bounce");
    assert_string_equal(pt_str(a, "bounce", "provider_subtype"), "10");
    assert_string_equal(pt_str(a, "delivery", "sending_ip"), "192.0.2.10");
    assert_true(json_is_true(json_object_get(json_object_get(a, "delivery"), "tls")));
    assert_null(pt_str(a, "metadata", "bounce_class"));
    assert_null(pt_str(a, "metadata", "sending_ip"));
    assert_string_equal(pt_str(b, "delivery", "sending_ip"), "192.0.2.11");
    /* class 90 (unsubscribe) is no bounce: the class stays in metadata */
    assert_null(json_object_get(c, "bounce"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "metadata"),
                                                        "bounce_class")), 90);
    json_decref(evs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_ok_and_rotation),
        cmocka_unit_test(test_basic_wrong),
        cmocka_unit_test(test_basic_missing_or_malformed),
        cmocka_unit_test(test_token_header),
        cmocka_unit_test(test_both_required),
        cmocka_unit_test(test_no_clock),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_forwarded),
        cmocka_unit_test(test_ping_batch),
        cmocka_unit_test(test_msys_members),
        cmocka_unit_test(test_derived_ids),
        cmocka_unit_test(test_bounce_kind_and_delivery),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
