/*
 * test_verify_acs.c — Azure Communication Services Email through Event Grid. Event Grid
 * signs nothing: the URL's query parameter (or a delivery-property header) is checked.
 * Right, wrong, missing and rotated URL secrets; the Event Grid validation handshake
 * (answered with the code, nothing published, only after the credential passed); the
 * CloudEvents OPTIONS handshake; malformed bodies; sign -> verify; option validation;
 * and parse of both schemas.
 */
#include <jansson.h>

#include "provider_test.h"

#define BODY                                                                                  \
    "[{\"id\":\"e1\",\"eventType\":\"Microsoft.Communication.EmailDeliveryReportReceived\","   \
    "\"eventTime\":\"2025-03-04T10:15:31Z\",\"data\":{\"recipient\":\"a@x.org\","             \
    "\"messageId\":\"m1\",\"status\":\"Delivered\"}}]"
#define VALIDATION                                                                            \
    "[{\"id\":\"v1\",\"topic\":\"/subscriptions/x\",\"subject\":\"\",\"data\":{"               \
    "\"validationCode\":\"512d38b6-c7b8-40c8-89fe-f46f9e9622b6\","                            \
    "\"validationUrl\":\"https://rp-eastus2.eventgrid.azure.net/x\"},"                         \
    "\"eventType\":\"Microsoft.EventGrid.SubscriptionValidationEvent\","                       \
    "\"eventTime\":\"2025-03-04T10:00:00Z\",\"metadataVersion\":\"1\",\"dataVersion\":\"1\"}]"

static const char *const ini = "[source.q]\n"
                               "provider = acs\n"
                               "query_param = code\n"
                               "secret = new+Secret/2\n"
                               "secret = old-secret\n"
                               "\n"
                               "[source.h]\n"
                               "provider = acs\n"
                               "header = X-Hook-Key\n"
                               "secret = hdr-secret\n";

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

struct outcome {
    enum mh_verdict v;
    char err[512];
    char *reply_body;
    struct mh_headers reply_headers;
};

static void run_full(const char *source, const char *method, const char *uri, const char *body,
                     const char *hname, const char *hvalue, struct outcome *o)
{
    struct pt_request r;
    memset(o, 0, sizeof(*o));
    pt_request_init(&r, uri, body, strlen(body), 0);
    r.req.method = method;
    r.req.reply_headers = &o->reply_headers;
    r.req.reply_body = &o->reply_body;
    if (hname) mh_headers_add(&r.headers, hname, hvalue);
    o->v = pt_verify(mh_config_source(cfg, source), &r);
    snprintf(o->err, sizeof(o->err), "%s", r.err);
    pt_request_free(&r);
}

static void outcome_free(struct outcome *o)
{
    free(o->reply_body);
    mh_headers_clear(&o->reply_headers);
}

static enum mh_verdict run(const char *source, const char *uri, const char *body)
{
    struct outcome o;
    run_full(source, "POST", uri, body, NULL, NULL, &o);
    assert_null(o.reply_body);
    outcome_free(&o);
    return o.v;
}

static void test_url_secret(void **state)
{
    (void)state;
    /* The secret percent-encoded in the query, either of the configured secrets. */
    assert_int_equal(run("q", "/v1/webhooks/q?code=new%2BSecret%2F2", BODY), MH_VERIFY_OK);
    assert_int_equal(run("q", "/v1/webhooks/q?x=1&code=old-secret", BODY), MH_VERIFY_OK);
    /* Wrong, missing, empty, another parameter's value, a prefix: refused. */
    assert_int_equal(run("q", "/v1/webhooks/q?code=wrong", BODY), MH_VERIFY_REJECT);
    assert_int_equal(run("q", "/v1/webhooks/q", BODY), MH_VERIFY_REJECT);
    assert_int_equal(run("q", "/v1/webhooks/q?code=", BODY), MH_VERIFY_REJECT);
    assert_int_equal(run("q", "/v1/webhooks/q?key=old-secret", BODY), MH_VERIFY_REJECT);
    assert_int_equal(run("q", "/v1/webhooks/q?code=old-secre", BODY), MH_VERIFY_REJECT);
    /* The error names the parameter, never the secret. */
    struct outcome o;
    run_full("q", "POST", "/v1/webhooks/q?code=old-secreX", BODY, NULL, NULL, &o);
    assert_int_equal(o.v, MH_VERIFY_REJECT);
    assert_non_null(strstr(o.err, "\"code\""));
    assert_null(strstr(o.err, "old-secreX"));
    outcome_free(&o);
}

static void test_header_secret(void **state)
{
    (void)state;
    struct outcome o;
    run_full("h", "POST", "/v1/webhooks/h", BODY, "X-Hook-Key", "hdr-secret", &o);
    assert_int_equal(o.v, MH_VERIFY_OK);
    outcome_free(&o);
    run_full("h", "POST", "/v1/webhooks/h", BODY, "X-Hook-Key", "nope", &o);
    assert_int_equal(o.v, MH_VERIFY_REJECT);
    outcome_free(&o);
    assert_int_equal(run("h", "/v1/webhooks/h?code=hdr-secret", BODY), MH_VERIFY_REJECT);
}

/* Event Grid's handshake: 200 with the code, nothing published; refused without the
 * credential, so nobody else can bind an endpoint to their subscription. */
static void test_validation_handshake(void **state)
{
    (void)state;
    struct outcome o;
    run_full("q", "POST", "/v1/webhooks/q?code=old-secret", VALIDATION, "aeg-event-type",
             "SubscriptionValidation", &o);
    assert_int_equal(o.v, MH_VERIFY_ACK);
    assert_non_null(o.reply_body);
    json_t *reply = json_loads(o.reply_body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(reply, "validationResponse")),
                        "512d38b6-c7b8-40c8-89fe-f46f9e9622b6");
    assert_int_equal(json_object_size(reply), 1);
    json_decref(reply);
    outcome_free(&o);

    run_full("q", "POST", "/v1/webhooks/q?code=bad", VALIDATION, NULL, NULL, &o);
    assert_int_equal(o.v, MH_VERIFY_REJECT);
    assert_null(o.reply_body);
    outcome_free(&o);

    /* Without a code, or mixed with events: malformed, not answered. */
    run_full("q", "POST", "/v1/webhooks/q?code=old-secret",
             "[{\"id\":\"v\",\"eventType\":\"Microsoft.EventGrid.SubscriptionValidationEvent\","
             "\"data\":{}}]",
             NULL, NULL, &o);
    assert_int_equal(o.v, MH_VERIFY_MALFORMED);
    assert_null(o.reply_body);
    outcome_free(&o);
    char mixed[2048];
    snprintf(mixed, sizeof(mixed), "%.*s,%s", (int)strlen(VALIDATION) - 1, VALIDATION, BODY + 1);
    run_full("q", "POST", "/v1/webhooks/q?code=old-secret", mixed, NULL, NULL, &o);
    assert_int_equal(o.v, MH_VERIFY_MALFORMED);
    outcome_free(&o);

    /* A CloudEvents-schema validation event (one object) is answered the same way. */
    run_full("q", "POST", "/v1/webhooks/q?code=old-secret",
             "{\"id\":\"v2\",\"type\":\"Microsoft.EventGrid.SubscriptionValidationEvent\","
             "\"specversion\":\"1.0\",\"data\":{\"validationCode\":\"abc\"}}",
             NULL, NULL, &o);
    assert_int_equal(o.v, MH_VERIFY_ACK);
    assert_string_equal(o.reply_body, "{\"validationResponse\":\"abc\"}");
    outcome_free(&o);
}

/* CloudEvents' abuse protection: OPTIONS with WebHook-Request-Origin. */
static void test_options_handshake(void **state)
{
    (void)state;
    struct outcome o;
    run_full("q", "OPTIONS", "/v1/webhooks/q?code=new%2BSecret%2F2", "", "WebHook-Request-Origin",
             "eventgrid.azure.net", &o);
    assert_int_equal(o.v, MH_VERIFY_ACK);
    assert_string_equal(mh_headers_get(&o.reply_headers, "webhook-allowed-origin"),
                        "eventgrid.azure.net");
    assert_null(mh_headers_get(&o.reply_headers, "webhook-allowed-rate"));
    assert_null(o.reply_body);
    outcome_free(&o);

    run_full("q", "OPTIONS", "/v1/webhooks/q?code=wrong", "", "WebHook-Request-Origin",
             "eventgrid.azure.net", &o);
    assert_int_equal(o.v, MH_VERIFY_REJECT);
    assert_int_equal(o.reply_headers.n, 0);
    outcome_free(&o);

    run_full("q", "OPTIONS", "/v1/webhooks/q?code=old-secret", "", NULL, NULL, &o);
    assert_int_equal(o.v, MH_VERIFY_MALFORMED);
    outcome_free(&o);
}

static void test_malformed(void **state)
{
    (void)state;
    assert_int_equal(run("q", "/v1/webhooks/q?code=old-secret", "not json"), MH_VERIFY_MALFORMED);
    assert_int_equal(run("q", "/v1/webhooks/q?code=old-secret", "\"x\""), MH_VERIFY_MALFORMED);
    /* The credential is checked first: garbage without it is a 401. */
    assert_int_equal(run("q", "/v1/webhooks/q", "not json"), MH_VERIFY_REJECT);
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    const struct mh_source *src = mh_config_source(cfg, "q");
    struct mh_headers h = {0};
    char url[512] = "http://127.0.0.1:8080/v1/webhooks/q", err[256];
    struct mh_sign_req sr = {.body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                             .headers = &h, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_string_equal(url, "http://127.0.0.1:8080/v1/webhooks/q?code=new%2BSecret%2F2");
    assert_int_equal(run("q", strstr(url, "/v1/"), BODY), MH_VERIFY_OK);
    mh_headers_clear(&h);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.a]\nprovider = acs\nsecret = s\n",
                                     "query_param"));
    assert_true(pt_config_fails_with(
        "[source.a]\nprovider = acs\nquery_param = co&de\nsecret = s\n", "query_param"));
    assert_true(pt_config_fails_with("[source.a]\nprovider = acs\nquery_param = code\n",
                                     "secret"));
}

static json_t *parse(const char *body, int want_rc)
{
    struct mh_raw raw = {.source = "a", .provider = "acs", .tenant = "t",
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL, .topic = "mailhook.raw"};
    json_t *events = json_array();
    char err[256];
    assert_int_equal(mh_provider_find("acs")->parse(&raw, events, err, sizeof(err)), want_rc);
    return events;
}

static void test_parse(void **state)
{
    (void)state;
    /* Event Grid's id is the event id; the delivery attempt time is occurred_at. */
    json_t *e = parse(BODY, 0);
    assert_int_equal(json_array_size(e), 1);
    json_t *ev = json_array_get(e, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "event_id")), "e1");
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "email.delivered");
    assert_string_equal(json_string_value(json_object_get(ev, "occurred_at")),
                        "2025-03-04T10:15:31.000Z");
    json_decref(e);
    /* Status and engagement kind are matched without regard to case. */
    e = parse("{\"id\":\"c1\",\"type\":\"Microsoft.Communication.EmailEngagementTrackingReportReceived\","
              "\"time\":\"2025-03-04T10:15:31Z\",\"specversion\":\"1.0\",\"data\":{\"messageId\":\"m\","
              "\"engagementType\":\"VIEW\"}}",
              0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(e, 0), "type")),
                        "email.opened");
    json_decref(e);
    e = parse("[{\"id\":\"x\",\"eventType\":\"Microsoft.Communication.EmailDeliveryReportReceived\","
              "\"data\":{\"status\":\"bounced\",\"recipient\":\"a@x.org\"}}]",
              0);
    ev = json_array_get(e, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "email.bounced");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "bounce"), "class")),
                        "hard");
    json_decref(e);
    json_decref(parse("[{\"eventType\":\"x\",\"data\":{}}]", -1));

    /* delivery: the receiving server, and its reply only when statusMessage is one. */
    e = parse("[{\"id\":\"d1\",\"eventType\":\"Microsoft.Communication.EmailDeliveryReportReceived\","
              "\"data\":{\"status\":\"Delivered\",\"recipient\":\"a@x.org\",\"deliveryStatusDetails\":"
              "{\"statusMessage\":\"No error.\",\"recipientMailServerHostName\":\"mx.x.org\"}}},"
              "{\"id\":\"d2\",\"eventType\":\"Microsoft.Communication.EmailDeliveryReportReceived\","
              "\"data\":{\"status\":\"Bounced\",\"recipient\":\"a@x.org\",\"deliveryStatusDetails\":"
              "{\"statusMessage\":\"550 5.1.1 not found\"}}}]",
              0);
    json_t *d = json_object_get(json_array_get(e, 0), "delivery");
    assert_string_equal(json_string_value(json_object_get(d, "remote_host")), "mx.x.org");
    assert_null(json_object_get(d, "smtp_response"));
    assert_null(json_object_get(json_object_get(json_array_get(e, 0), "metadata"),
                                "recipient_mail_server"));
    d = json_object_get(json_array_get(e, 1), "delivery");
    assert_string_equal(json_string_value(json_object_get(d, "smtp_response")), "550 5.1.1 not found");
    assert_null(json_object_get(d, "remote_host"));
    json_decref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_secret),
        cmocka_unit_test(test_header_secret),
        cmocka_unit_test(test_validation_handshake),
        cmocka_unit_test(test_options_handshake),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
