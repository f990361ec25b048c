/*
 * test_verify_smtp2go.c — SMTP2GO signs nothing; a source checks the webhook's
 * Authorization (Basic from the URL's userinfo or the webhook's header setting, or a
 * bearer token), a custom header or a URL query parameter. Right, wrong, missing and
 * rotated credentials, sign -> verify, option validation, and parse (events, bounce
 * kinds, derived ids, both time forms).
 */
#include <jansson.h>

#include "provider_test.h"

#define BODY "{\"event\":\"delivered\",\"rcpt\":\"a@x.org\",\"time\":\"2025-04-01T09:30:15Z\"}"

static const char *const ini = "[source.basic]\n"
                               "provider = smtp2go\n"
                               "basic_user = hook\n"
                               "secret = new-pass\n"
                               "secret = old-pass\n"
                               "\n"
                               "[source.bearer]\n"
                               "provider = smtp2go\n"
                               "bearer = true\n"
                               "secret = tok\n"
                               "\n"
                               "[source.query]\n"
                               "provider = smtp2go\n"
                               "query_param = key\n"
                               "secret = q-secret\n";

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

static enum mh_verdict run(const char *source, const char *uri, const char *authz)
{
    struct pt_request r;
    pt_request_init(&r, uri, BODY, strlen(BODY), 0);
    if (authz) mh_headers_add(&r.headers, "Authorization", authz);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, source), &r);
    pt_request_free(&r);
    return v;
}

static const char *basic(const char *userpass, char *out)
{
    strcpy(out, "Basic ");
    mh_b64_encode((const unsigned char *)userpass, strlen(userpass), out + 6);
    return out;
}

static void test_credentials(void **state)
{
    (void)state;
    char b[256];
    assert_int_equal(run("basic", "/v1/webhooks/basic", basic("hook:new-pass", b)), MH_VERIFY_OK);
    assert_int_equal(run("basic", "/v1/webhooks/basic", basic("hook:old-pass", b)), MH_VERIFY_OK);
    assert_int_equal(run("basic", "/v1/webhooks/basic", basic("hook:nope", b)), MH_VERIFY_REJECT);
    assert_int_equal(run("basic", "/v1/webhooks/basic", basic("other:new-pass", b)),
                     MH_VERIFY_REJECT);
    assert_int_equal(run("basic", "/v1/webhooks/basic", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("bearer", "/v1/webhooks/bearer", "Bearer tok"), MH_VERIFY_OK);
    assert_int_equal(run("bearer", "/v1/webhooks/bearer", "Bearer tok2"), MH_VERIFY_REJECT);
    assert_int_equal(run("bearer", "/v1/webhooks/bearer", basic("hook:tok", b)), MH_VERIFY_REJECT);
    assert_int_equal(run("query", "/v1/webhooks/query?key=q-secret", NULL), MH_VERIFY_OK);
    assert_int_equal(run("query", "/v1/webhooks/query?key=q-secreT", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("query", "/v1/webhooks/query", "Bearer q-secret"), MH_VERIFY_REJECT);
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    static const char *const sources[] = {"basic", "bearer", "query", NULL};
    for (const char *const *s = sources; *s; s++) {
        const struct mh_source *src = mh_config_source(cfg, *s);
        struct mh_headers h = {0};
        char url[512], err[256];
        snprintf(url, sizeof(url), "http://127.0.0.1:8080/v1/webhooks/%s", *s);
        struct mh_sign_req sr = {.body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                                 .headers = &h, .url = url, .url_cap = sizeof(url)};
        assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
        assert_int_equal(run(*s, strstr(url, "/v1/"), mh_headers_get(&h, "authorization")),
                         MH_VERIFY_OK);
        mh_headers_clear(&h);
    }
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.s]\nprovider = smtp2go\nsecret = s\n", "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.s]\nprovider = smtp2go\nbasic_user = a\nbearer = true\nsecret = s\n", "bearer"));
}

static json_t *parse(const char *body, int want_rc, char *err)
{
    struct mh_raw raw = {.source = "s", .provider = "smtp2go", .tenant = "t",
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL, .topic = "mailhook.raw"};
    json_t *events = json_array();
    char buf[256];
    if (!err) err = buf;
    assert_int_equal(mh_provider_find("smtp2go")->parse(&raw, events, err, 256), want_rc);
    return events;
}

static const char *str(json_t *ev, const char *k1, const char *k2)
{
    json_t *v = json_object_get(ev, k1);
    return json_string_value(k2 ? json_object_get(v, k2) : v);
}

static void test_parse(void **state)
{
    (void)state;
    json_t *e = parse("{\"event\":\"bounce\",\"bounce\":\"soft\",\"rcpt\":\"A@X.org\","
                      "\"time\":\"2025-04-01T09:30:15Z\",\"email_id\":\"m1\",\"host\":\"mx.x.org\","
                      "\"message\":\"451 4.7.1 greylisted, try again\"}",
                      0, NULL);
    json_t *ev = json_array_get(e, 0);
    assert_string_equal(str(ev, "type", NULL), "email.bounced");
    assert_string_equal(str(ev, "recipient", NULL), "a@x.org");
    assert_string_equal(str(ev, "bounce", "class"), "soft");
    assert_string_equal(str(ev, "bounce", "remote_host"), "mx.x.org");
    assert_string_equal(str(ev, "message_id", NULL), "m1");
    assert_string_equal(str(ev, "bounce", "provider_type"), "soft");
    assert_string_equal(str(ev, "delivery", "remote_host"), "mx.x.org");
    assert_string_equal(str(ev, "delivery", "smtp_response"), "451 4.7.1 greylisted, try again");
    json_decref(e);

    /* delivery: "HOST [IP]" is split; message is the reply, not metadata. */
    e = parse("{\"event\":\"delivered\",\"rcpt\":\"a@x.org\",\"email_id\":\"m2\","
              "\"host\":\"mx.x.org [192.0.2.9]\",\"message\":\"250 2.0.0 OK\"}",
              0, NULL);
    ev = json_array_get(e, 0);
    assert_string_equal(str(ev, "delivery", "remote_host"), "mx.x.org");
    assert_string_equal(str(ev, "delivery", "remote_ip"), "192.0.2.9");
    assert_string_equal(str(ev, "delivery", "smtp_response"), "250 2.0.0 OK");
    assert_null(str(ev, "metadata", "message"));
    json_decref(e);
    /* an open is no delivery */
    e = parse("{\"event\":\"open\",\"rcpt\":\"a@x.org\",\"host\":\"mx.x.org\"}", 0, NULL);
    assert_null(json_object_get(json_array_get(e, 0), "delivery"));
    json_decref(e);

    /* Two clicks of one message apart only by their link: two ids. */
    e = parse("[{\"event\":\"click\",\"rcpt\":\"a@x.org\",\"email_id\":\"m\",\"time\":1743500000,"
              "\"url\":\"https://a/\"},{\"event\":\"click\",\"rcpt\":\"a@x.org\",\"email_id\":\"m\","
              "\"time\":1743500000,\"url\":\"https://b/\"}]",
              0, NULL);
    assert_int_equal(json_array_size(e), 2);
    assert_string_not_equal(str(json_array_get(e, 0), "event_id", NULL),
                            str(json_array_get(e, 1), "event_id", NULL));
    assert_string_equal(str(json_array_get(e, 0), "occurred_at", NULL), "2025-04-01T09:33:20.000Z");
    assert_string_equal(str(json_array_get(e, 1), "click", "url"), "https://b/");
    json_decref(e);

    /* The same event twice (a retry): the same id. */
    json_t *a = parse(BODY, 0, NULL), *b = parse(BODY, 0, NULL);
    assert_string_equal(str(json_array_get(a, 0), "event_id", NULL),
                        str(json_array_get(b, 0), "event_id", NULL));
    json_decref(a);
    json_decref(b);

    char err[256];
    json_decref(parse("{\"event\":\"spam\"}", -1, err));
    assert_non_null(strstr(err, "without \"rcpt\""));
    json_decref(parse("event=delivered&rcpt=a%40x.org", -1, err));
    assert_non_null(strstr(err, "invalid JSON"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
