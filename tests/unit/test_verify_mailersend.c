/*
 * test_verify_mailersend.c — MailerSend's Signature header (bare hex HMAC-SHA256 of the raw
 * body): vectors computed outside mailhook (openssl dgst), wrong signature, wrong secret,
 * missing or malformed header, secret rotation, error texts free of secrets, the
 * webhook.test ping signed with MailerSend's published test key, `mailhook sign`, the
 * source options, and the parse of every mapped type in both payload versions.
 */
#include <jansson.h>

#include "mailhook/verify.h"
#include "provider_test.h"

#define SECRET "Xq3lK9vR2mT7pW4zN8bC1dF6gH0jY5sA"
#define OLD_SECRET "oldSigningSecret0123456789abcdef"
#define TEST_KEY "test_Am3L1GuOIc4blLUuHqAPxxwkZaJyEk8G" /* MailerSend's published key */

#define BODY                                                                                   \
    "{\"type\":\"activity.delivered\",\"created_at\":\"2025-08-05T21:23:57.000000Z\","      \
    "\"data\":{\"id\":\"6892766a5b66e2daf3dc9166\",\"message_id\":\"6892766ae78995a317577ab1\"," \
    "\"email_id\":\"6892766a8d52ba62543d5e81\",\"type\":\"delivered\","                      \
    "\"email\":\"ops@example.org\",\"meta\":[]}}"
/* printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" */
#define BODY_SIG "89a8ed7901918e61c18fcf78d12fea3c4b3d712e9f5a8451bea3c43533b33558"
/* The same body under the published test key: must never pass. */
#define BODY_TESTKEY_SIG "5a3e965dd36cec28cdefd59e767a4423aee8d366806c3b23e00bad5dd8c4d01f"

#define PING                                                                                   \
    "{\"type\":\"webhook.test\",\"message\":\"This is a ping test message\","               \
    "\"created_at\":\"2025-08-05T21:20:00.577080Z\"}"
/* printf '%s' "$PING" | openssl dgst -sha256 -hmac "$TEST_KEY" */
#define PING_SIG "334c04b72620c6f64306d6341663912cdbe701bc6513deb01efc93cd2d0523a0"

static const char *const ini =
    "[source.ms]\n"
    "provider = mailersend\n"
    "tenant = acme\n"
    "secret = " SECRET "\n"
    "secret = " OLD_SECRET "\n"
    "\n"
    "[source.strict]\n"
    "provider = mailersend\n"
    "tenant = acme\n"
    "secret = " SECRET "\n"
    "accept_test_ping = false\n";

struct fixture {
    struct mh_config *cfg;
    struct mh_source *src, *strict;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->cfg = pt_config(ini);
    f->src = mh_config_source(f->cfg, "ms");
    f->strict = mh_config_source(f->cfg, "strict");
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

/* Verdict of src for body with the Signature header sig (none when NULL); err copied out. */
static enum mh_verdict check(const struct mh_source *src, const char *body, const char *sig,
                             char *err, size_t errlen)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/ms", body, strlen(body), 0);
    if (sig) mh_headers_add(&r.headers, "Signature", sig);
    enum mh_verdict v = pt_verify(src, &r);
    if (err) snprintf(err, errlen, "%s", r.err);
    pt_request_free(&r);
    return v;
}

/* No error text may carry a secret, the test key or an expected MAC. */
static void assert_clean(const char *err)
{
    char mac[2 * MH_MAX_MD + 1];
    assert_true(*err);
    assert_null(strstr(err, SECRET));
    assert_null(strstr(err, OLD_SECRET));
    assert_null(strstr(err, TEST_KEY));
    assert_null(strstr(err, BODY_SIG));
    pt_hmac("sha256", SECRET, PING, strlen(PING), 0, mac);
    assert_null(strstr(err, mac));
}

/* The shared helper against RFC 4231 test case 2. */
static void test_hmac_key_helper(void **state)
{
    (void)state;
    const char *data = "what do ya want for nothing?";
    struct mh_buf part = {data, strlen(data)};
    const char *want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    assert_true(mh_verify_hmac_key("Jefe", 4, "sha256", &part, 1, want, MH_SIG_HEX));
    assert_false(mh_verify_hmac_key("Jeff", 4, "sha256", &part, 1, want, MH_SIG_HEX));
    assert_false(mh_verify_hmac_key("Jefe", 4, "sha256", &part, 1, "5bdcc146", MH_SIG_HEX));
    assert_false(mh_verify_hmac_key("Jefe", 4, "sha256", &part, 1, NULL, MH_SIG_HEX));
    assert_false(mh_verify_hmac_key("Jefe", 4, "md5x", &part, 1, want, MH_SIG_HEX));
}

static void test_independent_vector(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(check(f->src, BODY, BODY_SIG, NULL, 0), MH_VERIFY_OK);
}

static void test_tolerated_forms(void **state)
{
    struct fixture *f = *state;
    char upper[80], padded[90];
    size_t i;
    for (i = 0; BODY_SIG[i]; i++) upper[i] = (char)toupper((unsigned char)BODY_SIG[i]);
    upper[i] = '\0';
    snprintf(padded, sizeof(padded), "  %s ", BODY_SIG);
    assert_int_equal(check(f->src, BODY, upper, NULL, 0), MH_VERIFY_OK);
    assert_int_equal(check(f->src, BODY, padded, NULL, 0), MH_VERIFY_OK);
}

static void test_wrong_signature(void **state)
{
    struct fixture *f = *state;
    char err[512], sig[80];
    snprintf(sig, sizeof(sig), "%s", BODY_SIG);
    sig[10] = sig[10] == '0' ? '1' : '0';
    assert_int_equal(check(f->src, BODY, sig, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "does not match"));
    assert_clean(err);
    /* A body changed after signing. */
    const char *tampered = "{\"type\":\"activity.hard_bounced\"}";
    assert_int_equal(check(f->src, tampered, BODY_SIG, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_clean(err);
}

static void test_wrong_secret(void **state)
{
    struct fixture *f = *state;
    char err[512], mac[2 * MH_MAX_MD + 1];
    pt_hmac("sha256", "some-other-secret", BODY, strlen(BODY), 0, mac);
    assert_int_equal(check(f->src, BODY, mac, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_clean(err);
}

static void test_missing_and_malformed_header(void **state)
{
    struct fixture *f = *state;
    char err[512], b64[100], prefixed[100];
    assert_int_equal(check(f->src, BODY, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    assert_clean(err);
    assert_int_equal(check(f->src, BODY, "", err, sizeof(err)), MH_VERIFY_REJECT);
    assert_int_equal(check(f->src, BODY, "not-hex", err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "not a hex SHA-256 HMAC"));
    /* MailerSend sends the bare digest: no "sha256=" prefix, no base64. */
    snprintf(prefixed, sizeof(prefixed), "sha256=%s", BODY_SIG);
    assert_int_equal(check(f->src, BODY, prefixed, err, sizeof(err)), MH_VERIFY_REJECT);
    pt_hmac("sha256", SECRET, BODY, strlen(BODY), 1, b64);
    assert_int_equal(check(f->src, BODY, b64, err, sizeof(err)), MH_VERIFY_REJECT);
    /* Truncated, and extended by a byte. */
    char shortsig[80], longsig[80];
    snprintf(shortsig, sizeof(shortsig), "%.62s", BODY_SIG);
    snprintf(longsig, sizeof(longsig), "%s00", BODY_SIG);
    assert_int_equal(check(f->src, BODY, shortsig, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_int_equal(check(f->src, BODY, longsig, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_clean(err);
}

static void test_rotation(void **state)
{
    struct fixture *f = *state;
    char mac[2 * MH_MAX_MD + 1];
    /* The older of the two configured secrets still verifies... */
    pt_hmac("sha256", OLD_SECRET, BODY, strlen(BODY), 0, mac);
    assert_int_equal(check(f->src, BODY, mac, NULL, 0), MH_VERIFY_OK);
    /* ...but not on a source that has only the new one. */
    assert_int_equal(check(f->strict, BODY, mac, NULL, 0), MH_VERIFY_REJECT);
}

/* The URL check MailerSend makes when a webhook is saved. */
static void test_webhook_test_ping(void **state)
{
    struct fixture *f = *state;
    char err[512], mac[2 * MH_MAX_MD + 1];
    assert_int_equal(check(f->src, PING, PING_SIG, NULL, 0), MH_VERIFY_ACK);
    /* Signed with the webhook's own secret, the ping passes too. */
    pt_hmac("sha256", SECRET, PING, strlen(PING), 0, mac);
    assert_int_equal(check(f->src, PING, mac, NULL, 0), MH_VERIFY_OK);
    /* The public key authenticates nothing but the ping. */
    assert_int_equal(check(f->src, BODY, BODY_TESTKEY_SIG, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "test key"));
    assert_clean(err);
    /* A ping whose type is repeated is no ping (duplicate keys are refused). */
    const char *dup = "{\"type\":\"webhook.test\",\"type\":\"activity.hard_bounced\"}";
    pt_hmac("sha256", TEST_KEY, dup, strlen(dup), 0, mac);
    assert_int_equal(check(f->src, dup, mac, NULL, 0), MH_VERIFY_REJECT);
    const char *nested = "{\"data\":{\"type\":\"webhook.test\"},\"type\":\"activity.sent\"}";
    pt_hmac("sha256", TEST_KEY, nested, strlen(nested), 0, mac);
    assert_int_equal(check(f->src, nested, mac, NULL, 0), MH_VERIFY_REJECT);
    /* accept_test_ping = false: only the source's secrets count. */
    assert_int_equal(check(f->strict, PING, PING_SIG, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_clean(err);
}

/* `mailhook sign` produces the request MailerSend would send, which verifies. */
static void test_sign_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct pt_request r;
    char url[256] = "http://127.0.0.1:8080/v1/webhooks/ms", err[256];
    pt_request_init(&r, url, BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                             .headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(f->src->provider->sign(f->src, &sr, err, sizeof(err)), 0);
    assert_string_equal(mh_headers_get(&r.headers, "Signature"), BODY_SIG); /* newest secret */
    assert_null(sr.new_body);
    assert_int_equal(pt_verify(f->src, &r), MH_VERIFY_OK);
    pt_request_free(&r);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.ms]\nprovider = mailersend\n", "needs a secret"));
    assert_true(pt_config_fails_with(
        "[source.ms]\nprovider = mailersend\nsecret = s\naccept_test_ping = yes\n",
        "accept_test_ping: expected true or false"));
    assert_true(pt_config_fails_with(
        "[source.ms]\nprovider = mailersend\nsecret = s\ntimestamp_tolerance_s = 300\n",
        "unknown key \"timestamp_tolerance_s\""));
    struct mh_config *cfg =
        pt_config("[source.ms]\nprovider = mailersend\nsecret = s\naccept_test_ping = true\n");
    mh_config_free(cfg);
}

/* ---- parse ---- */

/* Parses body; returns the events array (caller decrefs), or NULL with err. */
static json_t *parse(const char *body, char *err, size_t errlen)
{
    const struct mh_provider *p = mh_provider_find("mailersend");
    struct mh_raw raw = {.source = "ms", .provider = "mailersend", .tenant = "acme",
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL, .topic = "mailhook.raw",
                         .partition = 0, .offset = 1};
    json_t *events = json_array();
    err[0] = '\0';
    if (p->parse(&raw, events, err, errlen) < 0) {
        json_decref(events);
        return NULL;
    }
    return events;
}

static const char *get(json_t *ev, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *v = ev;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) v = json_object_get(v, tok);
    return json_string_value(v);
}

static void test_parse_types(void **state)
{
    (void)state;
    static const struct {
        const char *name, *type;
    } cases[] = {
        {"activity.sent", "email.sent"},
        {"activity.delivered", "email.delivered"},
        {"activity.soft_bounced", "email.bounced"},
        {"activity.hard_bounced", "email.bounced"},
        {"activity.deferred", "email.delivery_delayed"},
        {"activity.opened", "email.opened"},
        {"activity.opened_unique", "email.opened"},
        {"activity.clicked", "email.clicked"},
        {"activity.clicked_unique", "email.clicked"},
        {"activity.unsubscribed", "email.unsubscribed"},
        {"activity.spam_complaint", "email.complained"},
        {"activity.suppressed", "email.suppressed"},
        {"activity.survey_opened", "other"},
        {"activity.survey_submitted", "other"},
        {"activity.something_new", "other"},
    };
    char body[1024], err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* The second payload version... */
        snprintf(body, sizeof(body),
                 "{\"type\":\"%s\",\"created_at\":\"2025-08-05T21:23:57.000000Z\",\"data\":"
                 "{\"id\":\"act%zu\",\"message_id\":\"msg1\",\"email\":\"Ops@Example.org\","
                 "\"meta\":[]}}",
                 cases[i].name, i);
        json_t *events = parse(body, err, sizeof(err));
        if (!events) print_error("%s: %s\n", cases[i].name, err);
        assert_non_null(events);
        assert_int_equal(json_array_size(events), 1);
        json_t *ev = json_array_get(events, 0);
        assert_string_equal(get(ev, "type"), cases[i].type);
        assert_string_equal(get(ev, "provider_event"), cases[i].name);
        assert_string_equal(get(ev, "recipient"), "ops@example.org");
        assert_string_equal(get(ev, "message_id"), "msg1");
        assert_string_equal(get(ev, "occurred_at"), "2025-08-05T21:23:57.000Z");
        char id[32];
        snprintf(id, sizeof(id), "act%zu", i);
        assert_string_equal(get(ev, "event_id"), id);
        json_decref(events);

        /* ...and the first, same result. */
        snprintf(body, sizeof(body),
                 "{\"type\":\"%s\",\"data\":{\"object\":\"activity\",\"id\":\"act%zu\","
                 "\"created_at\":\"2025-08-05T21:23:57.000000Z\",\"email\":{\"message\":"
                 "{\"id\":\"msg1\"},\"recipient\":{\"email\":\"Ops@Example.org\"}},"
                 "\"morph\":null}}",
                 cases[i].name, i);
        events = parse(body, err, sizeof(err));
        assert_non_null(events);
        ev = json_array_get(events, 0);
        assert_string_equal(get(ev, "type"), cases[i].type);
        assert_string_equal(get(ev, "recipient"), "ops@example.org");
        assert_string_equal(get(ev, "message_id"), "msg1");
        assert_string_equal(get(ev, "event_id"), id);
        json_decref(events);
    }
}

static void test_parse_bounces(void **state)
{
    (void)state;
    char err[512];
    const char *hard =
        "{\"type\":\"activity.hard_bounced\",\"data\":{\"id\":\"a1\",\"email\":{\"message\":"
        "{\"id\":\"m1\"},\"recipient\":{\"email\":\"x@example.com\"}},\"morph\":{\"object\":"
        "\"recipient_bounce\",\"reason\":\"550 5.1.1 User unknown\"}}}";
    json_t *events = parse(hard, err, sizeof(err));
    assert_non_null(events);
    json_t *b = json_object_get(json_array_get(events, 0), "bounce");
    assert_string_equal(get(b, "class"), "hard");
    assert_string_equal(get(b, "category"), "invalid_recipient");
    assert_string_equal(get(b, "enhanced_code"), "5.1.1");
    assert_null(json_object_get(b, "provider_type")); /* the first version sends none */
    json_decref(events);

    const char *soft =
        "{\"type\":\"activity.soft_bounced\",\"data\":{\"id\":\"a2\",\"email\":\"x@example.com\","
        "\"meta\":{\"bounce_reason\":\"Mailbox full\",\"bounce_code\":\"452\","
        "\"bounce_type\":\"soft\"}}}";
    events = parse(soft, err, sizeof(err));
    assert_non_null(events);
    json_t *ev = json_array_get(events, 0);
    b = json_object_get(ev, "bounce");
    assert_string_equal(get(ev, "type"), "email.bounced");
    assert_string_equal(get(b, "class"), "soft");
    assert_string_equal(get(b, "category"), "mailbox_full");
    assert_int_equal(json_integer_value(json_object_get(b, "smtp_code")), 452);
    assert_string_equal(get(b, "provider_type"), "soft"); /* meta.bounce_type, as sent */
    assert_null(json_object_get(ev, "delivery"));        /* MailerSend reports none */
    json_decref(events);

    const char *deferred = "{\"type\":\"activity.deferred\",\"data\":{\"id\":\"a3\","
                           "\"email\":\"x@example.com\",\"meta\":[]}}";
    events = parse(deferred, err, sizeof(err));
    assert_non_null(events);
    b = json_object_get(json_array_get(events, 0), "bounce");
    assert_string_equal(get(b, "class"), "soft");
    assert_string_equal(get(b, "category"), "transient_failure");
    json_decref(events);
}

static void test_parse_ping_and_others(void **state)
{
    (void)state;
    char err[512];
    json_t *events = parse(PING, err, sizeof(err));
    assert_non_null(events);
    assert_int_equal(json_array_size(events), 0); /* the URL check is no event */
    json_decref(events);

    /* No activity: kept as "other", with an id derived from the envelope. */
    const char *m1 = "{\"type\":\"maintenance.start\",\"created_at\":\"2025-08-05 22:27:14\","
                     "\"data\":{\"domain_id\":\"d1\"}}";
    const char *m2 = "{\"type\":\"maintenance.end\",\"created_at\":\"2025-08-05 22:27:31\","
                     "\"data\":{\"domain_id\":\"d1\"}}";
    json_t *e1 = parse(m1, err, sizeof(err)), *e2 = parse(m2, err, sizeof(err));
    assert_non_null(e1);
    assert_non_null(e2);
    json_t *ev1 = json_array_get(e1, 0), *ev2 = json_array_get(e2, 0);
    assert_string_equal(get(ev1, "type"), "other");
    assert_string_equal(get(ev1, "provider_event"), "maintenance.start");
    assert_string_equal(get(ev1, "occurred_at"), "2025-08-05T22:27:14.000Z");
    assert_string_equal(get(ev1, "metadata.domain_id"), "d1");
    assert_null(json_object_get(ev1, "recipient"));
    assert_int_equal(strlen(get(ev1, "event_id")), 64);
    assert_string_not_equal(get(ev1, "event_id"), get(ev2, "event_id"));
    json_decref(e1);
    json_decref(e2);

    /* An object id is not an event id: two verifications of one identity stay apart. */
    const char *s1 = "{\"type\":\"sender_identity.verified\",\"created_at\":\"2025-08-05 22:27:14\","
                     "\"data\":{\"id\":\"w942\",\"email\":\"a@example.com\"}}";
    const char *s2 = "{\"type\":\"sender_identity.verified\",\"created_at\":\"2025-09-01 08:00:00\","
                     "\"data\":{\"id\":\"w942\",\"email\":\"a@example.com\"}}";
    e1 = parse(s1, err, sizeof(err));
    e2 = parse(s2, err, sizeof(err));
    ev1 = json_array_get(e1, 0);
    ev2 = json_array_get(e2, 0);
    assert_string_equal(get(ev1, "metadata.object_id"), "w942");
    assert_null(json_object_get(ev1, "recipient"));
    assert_string_not_equal(get(ev1, "event_id"), "w942");
    assert_string_not_equal(get(ev1, "event_id"), get(ev2, "event_id"));
    json_decref(e1);
    json_decref(e2);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"type\": ", "mailersend: invalid JSON"},
        {"[]", "not a JSON object"},
        {"\"activity.sent\"", "invalid JSON"}, /* a bare string is not a JSON text jansson takes */
        {"{\"data\":{}}", "without \"type\""},
        {"{\"type\":\"\"}", "without \"type\""},
        {"{\"type\":42}", "without \"type\""},
        {"{\"type\":\"activity.sent\"}", "without a \"data\" object"},
        {"{\"type\":\"activity.sent\",\"data\":[]}", "without a \"data\" object"},
        {"{\"type\":\"activity.sent\",\"data\":{\"id\":\"a\"}}", "without a recipient"},
        {"{\"type\":\"activity.sent\",\"data\":{\"id\":\"a\",\"email\":{\"recipient\":{}}}}",
         "without a recipient"},
        {"{\"type\":\"activity.sent\",\"type\":\"activity.sent\",\"data\":{}}", "invalid JSON"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *events = parse(cases[i].body, err, sizeof(err));
        if (events || !strstr(err, cases[i].want))
            print_error("%s: want error \"%s\", got \"%s\"\n", cases[i].body, cases[i].want, err);
        assert_null(events);
        assert_non_null(strstr(err, cases[i].want));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_key_helper),
        cmocka_unit_test(test_independent_vector),
        cmocka_unit_test(test_tolerated_forms),
        cmocka_unit_test(test_wrong_signature),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_missing_and_malformed_header),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_webhook_test_ping),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_parse_types),
        cmocka_unit_test(test_parse_bounces),
        cmocka_unit_test(test_parse_ping_and_others),
        cmocka_unit_test(test_parse_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
