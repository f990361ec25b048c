/*
 * test_verify_brevo.c — Brevo signs nothing; a source authenticates the caller by HTTP
 * Basic credentials (basic_user), a bearer token (bearer = true), a custom header, or
 * Basic/bearer together with the header. Right and wrong credentials of each kind,
 * rotation, missing and malformed headers, secrets kept out of errors, sign -> verify
 * round trips, option validation, and the derived event ids of parse.
 */
#include <jansson.h>

#include "provider_test.h"

#define BODY "{\"event\":\"delivered\",\"email\":\"user@example.net\",\"ts_epoch\":1604933640000}"

static const char *const ini =
    "[source.basic]\n"
    "provider = brevo\n"
    "basic_user = brevo-hook\n"
    "secret = new-Secret/2\n"
    "secret = old-Secret+1\n"
    "\n"
    "[source.bearer]\n"
    "provider = brevo\n"
    "bearer = true\n"
    "secret = tok-new\n"
    "secret = tok-old\n"
    "\n"
    "[source.hdr]\n"
    "provider = brevo\n"
    "header = X-Brevo-Token\n"
    "secret = hdr-new\n"
    "\n"
    "[source.both]\n"
    "provider = brevo\n"
    "bearer = true\n"
    "header = X-Brevo-Token\n"
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

/* Verdict for source with an optional Authorization value and one other header. */
static enum mh_verdict run_err(const char *source, const char *authz, const char *hname,
                               const char *hvalue, char *err, size_t errlen)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/x", BODY, strlen(BODY), 0);
    if (authz) mh_headers_add(&r.headers, "Authorization", authz);
    if (hname) mh_headers_add(&r.headers, hname, hvalue);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, source), &r);
    if (err) snprintf(err, errlen, "%s", r.err);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict run(const char *source, const char *authz, const char *hname,
                           const char *hvalue)
{
    return run_err(source, authz, hname, hvalue, NULL, 0);
}

/* "Basic base64(userpass)" into out. */
static const char *basic(const char *userpass, char *out)
{
    strcpy(out, "Basic ");
    mh_b64_encode((const unsigned char *)userpass, strlen(userpass), out + 6);
    return out;
}

static void test_basic(void **state)
{
    (void)state;
    char h[256], err[512];
    assert_int_equal(run("basic", basic("brevo-hook:new-Secret/2", h), NULL, NULL), MH_VERIFY_OK);
    assert_int_equal(run("basic", basic("brevo-hook:old-Secret+1", h), NULL, NULL), MH_VERIFY_OK);
    assert_int_equal(run_err("basic", basic("brevo-hook:wrong", h), NULL, NULL, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "wrong"));
    assert_null(strstr(err, "Secret"));
    assert_int_equal(run("basic", basic("someone:new-Secret/2", h), NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("basic", basic("brevo-hook:new-Secret/", h), NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run_err("basic", NULL, NULL, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    /* A bearer token is not Basic credentials. */
    assert_int_equal(run("basic", "Bearer new-Secret/2", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("basic", "Basic !!!", NULL, NULL), MH_VERIFY_REJECT);
}

static void test_bearer(void **state)
{
    (void)state;
    char h[256], err[512];
    assert_int_equal(run("bearer", "Bearer tok-new", NULL, NULL), MH_VERIFY_OK);
    /* Rotation; the scheme name is case-insensitive. */
    assert_int_equal(run("bearer", "bearer tok-old", NULL, NULL), MH_VERIFY_OK);
    assert_int_equal(run_err("bearer", "Bearer tok-ne", NULL, NULL, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "tok-"));
    assert_int_equal(run("bearer", "Bearer tok-new ", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("bearer", "Bearer ", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("bearer", "Bearer", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("bearer", "tok-new", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("bearer", basic("x:tok-new", h), NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run_err("bearer", NULL, NULL, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    /* The token in another header is no substitute. */
    assert_int_equal(run("bearer", NULL, "X-Brevo-Token", "tok-new"), MH_VERIFY_REJECT);
}

static void test_header(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run("hdr", NULL, "x-brevo-token", "hdr-new"), MH_VERIFY_OK);
    assert_int_equal(run_err("hdr", NULL, "X-Brevo-Token", "hdr-ne", err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "hdr-ne"));
    assert_int_equal(run("hdr", NULL, "X-Brevo-Token", ""), MH_VERIFY_REJECT);
    assert_int_equal(run("hdr", "Bearer hdr-new", NULL, NULL), MH_VERIFY_REJECT);
}

static void test_both_required(void **state)
{
    (void)state;
    assert_int_equal(run("both", "Bearer both-secret", "X-Brevo-Token", "both-secret"),
                     MH_VERIFY_OK);
    assert_int_equal(run("both", "Bearer both-secret", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("both", NULL, "X-Brevo-Token", "both-secret"), MH_VERIFY_REJECT);
    assert_int_equal(run("both", "Bearer wrong", "X-Brevo-Token", "both-secret"), MH_VERIFY_REJECT);
}

/* sign produces exactly what verify accepts, with the newest secret. */
static void sign_and_verify(const char *source, const char *want_authz, const char *hname,
                            const char *hvalue)
{
    struct pt_request r;
    char url[64] = "http://h/", err[256];
    pt_request_init(&r, "/", BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                             .headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    const struct mh_source *src = mh_config_source(cfg, source);
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    if (want_authz) assert_string_equal(mh_headers_get(&r.headers, "authorization"), want_authz);
    else assert_null(mh_headers_get(&r.headers, "authorization"));
    if (hname) assert_string_equal(mh_headers_get(&r.headers, hname), hvalue);
    assert_int_equal(pt_verify(src, &r), MH_VERIFY_OK);
    pt_request_free(&r);
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    char h[256];
    sign_and_verify("basic", basic("brevo-hook:new-Secret/2", h), NULL, NULL);
    sign_and_verify("bearer", "Bearer tok-new", NULL, NULL);
    sign_and_verify("hdr", NULL, "x-brevo-token", "hdr-new");
    sign_and_verify("both", "Bearer both-secret", "x-brevo-token", "both-secret");
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.b]\nprovider = brevo\nbearer = true\n",
                                     "needs a secret"));
    assert_true(pt_config_fails_with("[source.b]\nprovider = brevo\nsecret = s\n", "basic_user"));
    assert_true(pt_config_fails_with("[source.b]\nprovider = brevo\nsecret = s\nbearer = false\n",
                                     "basic_user"));
    assert_true(pt_config_fails_with("[source.b]\nprovider = brevo\nsecret = s\nbearer = yes\n",
                                     "bearer: expected true or false"));
    assert_true(pt_config_fails_with(
        "[source.b]\nprovider = brevo\nsecret = s\nbearer = true\nbasic_user = u\n",
        "set one of them"));
    assert_true(pt_config_fails_with(
        "[source.b]\nprovider = brevo\nsecret = s\nbasic_user = a:b\n", "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.b]\nprovider = brevo\nsecret = s\nheader = Authorization\n", "header"));
    assert_true(pt_config_fails_with("[source.b]\nprovider = brevo\nsecret = s\nheader = X Bad\n",
                                     "header"));
    /* No credential header rides on the raw record. */
    assert_null(mh_config_source(cfg, "both")->provider->forward_headers);
    assert_int_equal(mh_config_source(cfg, "both")->n_forward, 0);
}

static json_t *parse(const char *body, int want_rc)
{
    struct mh_raw raw = {.source = "b", .provider = "brevo", .tenant = "acme",
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL};
    json_t *events = json_array();
    char err[256];
    assert_int_equal(mh_provider_find("brevo")->parse(&raw, events, err, sizeof(err)), want_rc);
    return events;
}

static const char *id_of(json_t *events, size_t i)
{
    return json_string_value(json_object_get(json_array_get(events, i), "event_id"));
}

/* Derived ids: stable; distinct for another event, time, link or recipient. */
static void test_event_ids(void **state)
{
    (void)state;
    json_t *e = parse("[{\"event\":\"click\",\"email\":\"A@x.org\",\"message-id\":\"<m>\","
                      "\"ts_epoch\":1,\"link\":\"https://a\"},"
                      "{\"event\":\"click\",\"email\":\"a@x.org\",\"message-id\":\"<m>\","
                      "\"ts_epoch\":1,\"link\":\"https://b\"},"
                      "{\"event\":\"click\",\"email\":\"a@x.org\",\"message-id\":\"<m>\","
                      "\"ts_epoch\":1,\"link\":\"https://a\"},"
                      "{\"event\":\"opened\",\"email\":\"a@x.org\",\"message-id\":\"<m>\","
                      "\"ts_epoch\":1},"
                      "{\"event\":\"opened\",\"email\":\"a@x.org\",\"message-id\":\"<m>\","
                      "\"ts_epoch\":2},"
                      "{\"event\":\"opened\",\"email\":\"b@x.org\",\"message-id\":\"<m>\","
                      "\"ts_epoch\":2}]",
                      0);
    assert_int_equal(json_array_size(e), 6);
    assert_string_equal(id_of(e, 0), id_of(e, 2)); /* recipient case does not matter */
    assert_string_not_equal(id_of(e, 0), id_of(e, 1));
    assert_string_not_equal(id_of(e, 0), id_of(e, 3));
    assert_string_not_equal(id_of(e, 3), id_of(e, 4));
    assert_string_not_equal(id_of(e, 4), id_of(e, 5));
    json_decref(e);
    /* Without ts_epoch, Brevo's local stamps keep two events apart. */
    e = parse("[{\"event\":\"opened\",\"email\":\"a@x.org\",\"ts_event\":10},"
              "{\"event\":\"opened\",\"email\":\"a@x.org\",\"ts_event\":11}]",
              0);
    assert_string_not_equal(id_of(e, 0), id_of(e, 1));
    assert_null(json_object_get(json_array_get(e, 0), "occurred_at"));
    json_decref(e);
    /* An empty batch is no event and no error; a bad element fails the record. */
    e = parse("[]", 0);
    assert_int_equal(json_array_size(e), 0);
    json_decref(e);
    json_decref(parse("[{\"event\":\"delivered\",\"email\":\"a@x.org\"},\"x\"]", -1));
}

/* delivery.sending_ip <- sending_ip (Brevo reports nothing else of a delivery); proxy opens. */
static void test_delivery_and_machine(void **state)
{
    (void)state;
    json_t *e = parse("[{\"event\":\"delivered\",\"email\":\"a@x.org\",\"ts_epoch\":1,"
                      "\"sending_ip\":\"185.41.28.109\"},"
                      "{\"event\":\"unique_proxy_open\",\"email\":\"a@x.org\",\"ts_epoch\":2},"
                      "{\"event\":\"opened\",\"email\":\"a@x.org\",\"ts_epoch\":3}]",
                      0);
    json_t *ev = json_array_get(e, 0);
    assert_string_equal(pt_str(ev, "delivery", "sending_ip"), "185.41.28.109");
    assert_int_equal(json_object_size(json_object_get(ev, "delivery")), 1);
    assert_null(pt_str(ev, "metadata", "sending_ip"));
    assert_true(json_is_true(json_object_get(json_object_get(json_array_get(e, 1), "open"), "machine")));
    assert_null(json_object_get(json_array_get(e, 2), "open"));
    json_decref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),         cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_header),        cmocka_unit_test(test_both_required),
        cmocka_unit_test(test_sign_roundtrip), cmocka_unit_test(test_options),
        cmocka_unit_test(test_event_ids), cmocka_unit_test(test_delivery_and_machine),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
