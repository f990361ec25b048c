/*
 * test_verify_getmailer.c — GetMailer's X-GetMailer-Signature (hex HMAC-SHA256 of the
 * raw body, "sha256=" prefix): accepted forms, wrong key, tampered body, missing or
 * malformed header, secret rotation, and the source's option validation.
 */
#include "provider_test.h"

#define BODY "{\"id\":\"evt_abc123\",\"type\":\"email.delivered\",\"timestamp\":\"2024-01-15T10:30:00Z\"}"
#define HEADER "X-GetMailer-Signature"

static const char *const ini =
    "[source.gm]\n"
    "provider = getmailer\n"
    "tenant = acme\n"
    "secret = whsec_old\n"
    "secret = whsec_current\n";

struct fixture {
    struct mh_config *cfg;
    struct mh_source *src;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->cfg = pt_config(ini);
    f->src = mh_config_source(f->cfg, "gm");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mh_config_free(f->cfg);
    free(f);
    return 0;
}

/* Verdict for BODY-or-body signed with secret and sent as prefix + signature. */
static enum mh_verdict run(struct fixture *f, const char *secret, const char *prefix,
                           const char *sent_body, int upper)
{
    char mac[2 * MH_MAX_MD + 1], header[200];
    struct pt_request r;
    pt_hmac("sha256", secret, BODY, strlen(BODY), 0, mac);
    for (char *p = mac; upper && *p; p++) *p = (char)toupper((unsigned char)*p);
    snprintf(header, sizeof(header), "%s%s", prefix, mac);
    pt_request_init(&r, "/v1/webhooks/gm", sent_body, strlen(sent_body), 0);
    mh_headers_add(&r.headers, HEADER, header);
    enum mh_verdict v = pt_verify(f->src, &r);
    pt_request_free(&r);
    return v;
}

static void test_documented_form(void **state)
{
    assert_int_equal(run(*state, "whsec_current", "sha256=", BODY, 0), MH_VERIFY_OK);
}

static void test_prefix_optional_and_case(void **state)
{
    assert_int_equal(run(*state, "whsec_current", "", BODY, 0), MH_VERIFY_OK);
    assert_int_equal(run(*state, "whsec_current", "SHA256=", BODY, 1), MH_VERIFY_OK);
}

static void test_rotation(void **state)
{
    /* The second configured secret matches: still accepted. */
    assert_int_equal(run(*state, "whsec_old", "sha256=", BODY, 0), MH_VERIFY_OK);
}

static void test_wrong_key(void **state)
{
    assert_int_equal(run(*state, "whsec_other", "sha256=", BODY, 0), MH_VERIFY_REJECT);
}

static void test_tampered_body(void **state)
{
    const char *tampered =
        "{\"id\":\"evt_abc123\",\"type\":\"email.bounced\",\"timestamp\":\"2024-01-15T10:30:00Z\"}";
    assert_int_equal(run(*state, "whsec_current", "sha256=", tampered, 0), MH_VERIFY_REJECT);
}

static void test_missing_and_malformed_header(void **state)
{
    struct fixture *f = *state;
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/gm", BODY, strlen(BODY), 0);
    assert_int_equal(pt_verify(f->src, &r), MH_VERIFY_REJECT);
    assert_non_null(strstr(r.err, "missing"));
    mh_headers_add(&r.headers, HEADER, "sha256=not-hex");
    assert_int_equal(pt_verify(f->src, &r), MH_VERIFY_REJECT);
    pt_request_free(&r);

    /* The right MAC in base64 is not what GetMailer sends. */
    char b64[100], header[120];
    pt_hmac("sha256", "whsec_current", BODY, strlen(BODY), 1, b64);
    snprintf(header, sizeof(header), "sha256=%s", b64);
    pt_request_init(&r, "/v1/webhooks/gm", BODY, strlen(BODY), 0);
    mh_headers_add(&r.headers, HEADER, header);
    assert_int_equal(pt_verify(f->src, &r), MH_VERIFY_REJECT);
    pt_request_free(&r);
}

/* `mailhook sign` produces a request that verifies. */
static void test_sign_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct pt_request r;
    char url[256] = "http://127.0.0.1:8080/v1/webhooks/gm", err[256];
    pt_request_init(&r, url, BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                             .headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(f->src->provider->sign(f->src, &sr, err, sizeof(err)), 0);
    assert_int_equal(strncmp(mh_headers_get(&r.headers, HEADER), "sha256=", 7), 0);
    assert_int_equal(pt_verify(f->src, &r), MH_VERIFY_OK);
    pt_request_free(&r);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.gm]\nprovider = getmailer\n", "needs a secret"));
    assert_true(pt_config_fails_with(
        "[source.gm]\nprovider = getmailer\nsecret = s\ntimestamp_tolerance_s = 300\n",
        "unknown key \"timestamp_tolerance_s\""));
}

/* contact.deleted says why the contact went: the reasons that end mail reach the rules. */
static void test_contact_deleted_reasons(void **state)
{
    (void)state;
    static const struct {
        const char *reason, *type, *bounce_class;
    } cases[] = {
        {"unsubscribed", "email.unsubscribed", NULL},
        {"bounced", "email.bounced", "hard"},
        {"complained", "email.complained", NULL},
        {"manual", "contact.deleted", NULL},
        {NULL, "contact.deleted", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"id\":\"evt_%zu\",\"type\":\"contact.deleted\",\"timestamp\":"
                 "\"2024-01-15T15:00:00Z\",\"data\":{\"contactId\":\"c1\",\"email\":"
                 "\"John@Example.com\"%s%s%s}}",
                 i, cases[i].reason ? ",\"reason\":\"" : "", cases[i].reason ? cases[i].reason : "",
                 cases[i].reason ? "\"" : "");
        json_t *ev = pt_parse_one("getmailer", body);
        assert_string_equal(pt_str(ev, "type", NULL), cases[i].type);
        assert_string_equal(pt_str(ev, "provider_event", NULL), "contact.deleted");
        assert_string_equal(pt_str(ev, "recipient", NULL), "john@example.com");
        if (cases[i].bounce_class)
            assert_string_equal(pt_str(ev, "bounce", "class"), cases[i].bounce_class);
        else
            assert_null(json_object_get(ev, "bounce"));
        if (cases[i].reason)
            assert_string_equal(pt_str(ev, "metadata", "deletion_reason"), cases[i].reason);
        json_decref(ev);
    }
}

/* bounceType is kept as sent; bounceReason next to the diagnostic code. */
static void test_bounce_fields_kept(void **state)
{
    (void)state;
    json_t *ev = pt_parse_one(
        "getmailer",
        "{\"id\":\"evt_b\",\"type\":\"email.bounced\",\"timestamp\":\"2024-01-15T10:31:00Z\","
        "\"data\":{\"to\":[\"a@example.com\"],\"bounceType\":\"soft\",\"bounceReason\":"
        "\"Mailbox full\",\"diagnosticCode\":\"552 5.2.2 Mailbox full\"}}");
    assert_string_equal(pt_str(ev, "bounce", "provider_type"), "soft");
    assert_string_equal(pt_str(ev, "bounce", "class"), "soft"); /* GetMailer's soft stands */
    assert_string_equal(pt_str(ev, "metadata", "bounce_reason"), "Mailbox full");
    assert_null(json_object_get(ev, "delivery")); /* no smtp_response: nothing known */
    json_decref(ev);
}

/* delivery.smtp_response <- smtp_response / smtpResponse, on delivery events only. */
static void test_delivery_reply(void **state)
{
    (void)state;
    json_t *ev = pt_parse_one("getmailer",
                              "{\"id\":\"evt_d\",\"type\":\"email.delivered\",\"data\":{\"to\":"
                              "\"a@example.com\",\"smtp_response\":\"250 2.0.0 OK\"}}");
    assert_string_equal(pt_str(ev, "delivery", "smtp_response"), "250 2.0.0 OK");
    json_decref(ev);
    ev = pt_parse_one("getmailer",
                      "{\"id\":\"evt_b2\",\"type\":\"email.bounced\",\"data\":{\"to\":"
                      "\"a@example.com\",\"smtpResponse\":\"550 5.1.1 unknown\"}}");
    assert_string_equal(pt_str(ev, "delivery", "smtp_response"), "550 5.1.1 unknown");
    json_decref(ev);
    ev = pt_parse_one("getmailer",
                      "{\"id\":\"evt_o\",\"type\":\"email.opened\",\"data\":{\"to\":"
                      "\"a@example.com\",\"smtp_response\":\"250 OK\"}}");
    assert_null(json_object_get(ev, "delivery"));
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_form),
        cmocka_unit_test(test_prefix_optional_and_case),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_tampered_body),
        cmocka_unit_test(test_missing_and_malformed_header),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_contact_deleted_reasons),
        cmocka_unit_test(test_bounce_fields_kept),
        cmocka_unit_test(test_delivery_reply),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
