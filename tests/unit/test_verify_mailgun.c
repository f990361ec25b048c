/*
 * test_verify_mailgun.c — Mailgun's signature block (HMAC-SHA256 of timestamp || token,
 * inside the JSON body), checked with the official mailgun-php vector (its good and its
 * bad case), the sample payloads, tampering of each signed part, the unsigned
 * event-data (the scheme's documented gap), missing and malformed blocks, the timestamp
 * tolerance, rotation, parent-signature, error texts free of secrets, and a `mailhook
 * sign` round trip whose re-signed body parses exactly like the original.
 */
#include <jansson.h>

#include "provider_test.h"

/* mailgun-php tests/Api/WebhookTest.php (testVerifyWebhookGood / testVerifyWebhookBad). */
#define VEC_KEY "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
#define VEC_TS "1403645220"
#define VEC_TOKEN "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6"
#define VEC_BAD_TOKEN "owyldpe6nxhmrn78epljl6bj0orrki1u3d2v5e6cnlmmuox8jr"
#define VEC_SIG "9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33"
#define VEC_MS 1403645220000LL
#define YEARS_LATER_MS 1767225600000LL /* 2026-01-01 */

#define EVENT_DATA                                                                                 \
    "{\"event\":\"delivered\",\"id\":\"CPgfbmQMTCKtHW6uIWtuVe\",\"timestamp\":1403645219.5,"     \
    "\"recipient\":\"alice@example.com\"}"

/* A mailgun source "mg" with the given option lines (and the vector key unless given). */
static struct mh_config *source_with(const char *options)
{
    char ini[4096];
    snprintf(ini, sizeof(ini), "[source.mg]\nprovider = mailgun\ntenant = acme\n%s", options);
    return pt_config(ini);
}

/* A body with the given signature block members (NULL: left out). Caller frees. */
static char *body_with(const char *ts, const char *token, const char *sig, const char *parent)
{
    json_t *block = json_object();
    if (ts) json_object_set_new(block, "timestamp", json_string(ts));
    if (token) json_object_set_new(block, "token", json_string(token));
    if (sig) json_object_set_new(block, "signature", json_string(sig));
    if (parent) json_object_set_new(block, "parent-signature", json_string(parent));
    json_t *root = json_object();
    json_object_set_new(root, "signature", block);
    json_object_set_new(root, "event-data", json_loads(EVENT_DATA, 0, NULL));
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

static enum mh_verdict verify_err(struct mh_config *cfg, const char *body, int64_t now_ms,
                                  char *err, size_t errlen)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/mg", body, strlen(body), now_ms);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, "mg"), &r);
    if (v != MH_VERIFY_OK) print_message("verify: %s\n", r.err);
    if (err) snprintf(err, errlen, "%s", r.err);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict verify_body(struct mh_config *cfg, const char *body, int64_t now_ms)
{
    return verify_err(cfg, body, now_ms, NULL, 0);
}

/* verify of a body built from the block members. */
static enum mh_verdict verify_block(struct mh_config *cfg, const char *ts, const char *token,
                                    const char *sig, const char *parent, int64_t now_ms)
{
    char *body = body_with(ts, token, sig, parent);
    enum mh_verdict v = verify_body(cfg, body, now_ms);
    free(body);
    return v;
}

static char *read_fixture(const char *name)
{
    char path[512], *buf = calloc(1, 65536);
    snprintf(path, sizeof(path), MH_FIXTURES_DIR "/mailgun/%s/body.json", name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, 65535, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static void test_official_vector(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " VEC_KEY "\n");
    /* Default tolerance, a minute after the vector was signed. */
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, VEC_MS + 60000),
                     MH_VERIFY_OK);
    /* testVerifyWebhookBad: the same signature over another token. */
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_BAD_TOKEN, VEC_SIG, NULL, VEC_MS),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);

    /* Years later only with the freshness check off. */
    cfg = source_with("secret = " VEC_KEY "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, YEARS_LATER_MS),
                     MH_VERIFY_OK);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_BAD_TOKEN, VEC_SIG, NULL, YEARS_LATER_MS),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

/* The official samples (copied byte for byte into the fixtures) carry the vector's block. */
static void test_sample_payloads(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " VEC_KEY "\ntimestamp_tolerance_s = 0\n");
    static const char *const samples[] = {"failed-permanent-bounce", "complained", NULL};
    for (const char *const *s = samples; *s; s++) {
        char *body = read_fixture(*s);
        assert_int_equal(verify_body(cfg, body, YEARS_LATER_MS), MH_VERIFY_OK);
        free(body);
    }
    mh_config_free(cfg);
}

/* Each signed part tampered with, and a wrong key. */
static void test_tampered_block(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " VEC_KEY "\ntimestamp_tolerance_s = 0\n");
    char sig[] = VEC_SIG, token[] = VEC_TOKEN;
    sig[63] = sig[63] == '3' ? '4' : '3';
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, sig, NULL, VEC_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, "1403645221", VEC_TOKEN, VEC_SIG, NULL, VEC_MS),
                     MH_VERIFY_REJECT);
    token[0] = 'x';
    assert_int_equal(verify_block(cfg, VEC_TS, token, VEC_SIG, NULL, VEC_MS), MH_VERIFY_REJECT);
    /* The MAC is over the plain concatenation (Mailgun's definition): moving a digit
     * from the timestamp to the token signs the same bytes. */
    assert_int_equal(verify_block(cfg, "140364522", "0" VEC_TOKEN, VEC_SIG, NULL, VEC_MS),
                     MH_VERIFY_OK);
    /* Upper-case hex is the same MAC; a truncated or padded one is not. */
    static const char upper[] = "9CFC5C41582E51246E73C88D34DB3AF0A3A2692A76FBAB81492842F000256D33";
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, upper, NULL, VEC_MS), MH_VERIFY_OK);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, "9cfc5c41582e5124", NULL, VEC_MS),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG "00", NULL, VEC_MS),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, "not hex at all", NULL, VEC_MS),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);

    cfg = source_with("secret = key-wrong\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, VEC_MS), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

/*
 * Mailgun's MAC does not cover event-data: a changed event under a valid block still
 * verifies. This test pins the documented gap (docs/providers/mailgun.md, "Replays").
 */
static void test_event_data_is_not_signed(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " VEC_KEY "\ntimestamp_tolerance_s = 0\n");
    char *body = read_fixture("complained");
    char *at = strstr(body, "complainer@example.com");
    assert_non_null(at);
    memcpy(at, "COMPLAINER", 10);
    assert_int_equal(verify_body(cfg, body, VEC_MS), MH_VERIFY_OK);
    free(body);
    mh_config_free(cfg);
}

static void test_missing_or_malformed_block(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " VEC_KEY "\ntimestamp_tolerance_s = 0\n");
    char err[512];
    assert_int_equal(verify_block(cfg, NULL, VEC_TOKEN, VEC_SIG, NULL, VEC_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, VEC_TS, NULL, VEC_SIG, NULL, VEC_MS), MH_VERIFY_REJECT);
    char *body = body_with(VEC_TS, VEC_TOKEN, NULL, NULL);
    assert_int_equal(verify_err(cfg, body, VEC_MS, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "signature.signature"));
    free(body);
    assert_int_equal(verify_block(cfg, "", VEC_TOKEN, VEC_SIG, NULL, VEC_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, VEC_TS, "", VEC_SIG, NULL, VEC_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, "", NULL, VEC_MS), MH_VERIFY_REJECT);

    static const char *const rejected[] = {
        "{\"event-data\":" EVENT_DATA "}",                      /* no block */
        "{\"signature\":\"" VEC_SIG "\"}",                      /* not an object */
        "{\"signature\":{\"timestamp\":1403645220,\"token\":\"" VEC_TOKEN /* a number */
        "\",\"signature\":\"" VEC_SIG "\"}}",
        "[{\"signature\":{\"timestamp\":\"" VEC_TS "\",\"token\":\"" VEC_TOKEN
        "\",\"signature\":\"" VEC_SIG "\"}}]", /* an array around it */
        "{}",
        NULL,
    };
    for (const char *const *b = rejected; *b; b++)
        assert_int_equal(verify_body(cfg, *b, VEC_MS), MH_VERIFY_REJECT);

    /* Not JSON (e.g. the legacy form-encoded webhooks), or ambiguous JSON: 400. */
    static const char *const malformed[] = {
        "timestamp=" VEC_TS "&token=" VEC_TOKEN "&signature=" VEC_SIG,
        "",
        "{\"signature\":{\"timestamp\":\"" VEC_TS "\",\"token\":\"" VEC_TOKEN
        "\",\"signature\":\"" VEC_SIG "\"},\"signature\":{}}",
        NULL,
    };
    for (const char *const *b = malformed; *b; b++)
        assert_int_equal(verify_body(cfg, *b, VEC_MS), MH_VERIFY_MALFORMED);
    mh_config_free(cfg);
}

static void test_timestamp_tolerance(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " VEC_KEY "\n");
    /* Default: 9 hours (longer than Mailgun's retries), either direction. */
    const int64_t h9 = 9 * 3600 * 1000LL;
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, VEC_MS + h9),
                     MH_VERIFY_OK);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, VEC_MS + h9 + 1000),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, VEC_MS - h9 - 1000),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, YEARS_LATER_MS),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);

    cfg = source_with("secret = " VEC_KEY "\ntimestamp_tolerance_s = 300\n");
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, VEC_MS + 299000),
                     MH_VERIFY_OK);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, VEC_MS + 301000),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);

    /* A timestamp that is not Unix seconds, with a MAC that matches it. */
    char mac[2 * MH_MAX_MD + 1];
    const char *odd_ts = "14036452x0";
    char msg[128];
    snprintf(msg, sizeof(msg), "%s%s", odd_ts, VEC_TOKEN);
    pt_hmac("sha256", VEC_KEY, msg, strlen(msg), 0, mac);
    cfg = source_with("secret = " VEC_KEY "\n");
    assert_int_equal(verify_block(cfg, odd_ts, VEC_TOKEN, mac, NULL, VEC_MS), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

/* Rotation: any configured key; a subaccount's parent-signature under the parent's key. */
static void test_rotation_and_parent(void **state)
{
    (void)state;
    struct mh_config *cfg =
        source_with("secret = key-new\nsecret = " VEC_KEY "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, VEC_SIG, NULL, VEC_MS), MH_VERIFY_OK);
    mh_config_free(cfg);

    char sub_sig[2 * MH_MAX_MD + 1];
    const char *msg = VEC_TS VEC_TOKEN;
    pt_hmac("sha256", "key-subaccount", msg, strlen(msg), 0, sub_sig);
    /* Configured with the parent's key: the subaccount's own MAC fails, the parent's passes. */
    cfg = source_with("secret = " VEC_KEY "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, sub_sig, VEC_SIG, VEC_MS), MH_VERIFY_OK);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, sub_sig, NULL, VEC_MS), MH_VERIFY_REJECT);
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, sub_sig, sub_sig, VEC_MS),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);
    /* Configured with the subaccount's key: its own MAC passes whatever the parent's is. */
    cfg = source_with("secret = key-subaccount\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_block(cfg, VEC_TS, VEC_TOKEN, sub_sig, VEC_SIG, VEC_MS), MH_VERIFY_OK);
    mh_config_free(cfg);
}

/* No error text repeats the key, the token or a signature. */
static void test_errors_hold_no_secrets(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " VEC_KEY "\n");
    char err[512];
    char *body = body_with(VEC_TS, VEC_BAD_TOKEN, VEC_SIG, VEC_SIG);
    assert_int_equal(verify_err(cfg, body, VEC_MS, err, sizeof(err)), MH_VERIFY_REJECT);
    free(body);
    body = body_with(VEC_TS, VEC_TOKEN, VEC_SIG, NULL);
    assert_int_equal(verify_err(cfg, body, YEARS_LATER_MS, err, sizeof(err)), MH_VERIFY_REJECT);
    free(body);
    assert_non_null(strstr(err, "tolerance"));
    assert_null(strstr(err, VEC_KEY));
    assert_null(strstr(err, VEC_TOKEN));
    assert_null(strstr(err, VEC_SIG));
    mh_config_free(cfg);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.mg]\nprovider = mailgun\n", "needs a secret"));
    assert_true(pt_config_fails_with(
        "[source.mg]\nprovider = mailgun\nsecret = k\ntimestamp_tolerance_s = -1\n",
        "timestamp_tolerance_s"));
    assert_true(pt_config_fails_with(
        "[source.mg]\nprovider = mailgun\nsecret = k\ntimestamp_tolerance_s = soon\n",
        "timestamp_tolerance_s"));
    assert_true(pt_config_fails_with("[source.mg]\nprovider = mailgun\nsecret = k\nheader = x\n",
                                     "unknown key \"header\""));
}

/* Parse of body as source "mg"; NULL with err when it fails. */
static json_t *parse_body(const char *body, char *err, size_t errlen)
{
    const struct mh_provider *p = mh_provider_find("mailgun");
    struct mh_raw raw = {.source = "mg", .provider = "mailgun", .tenant = "acme",
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = YEARS_LATER_MS};
    json_t *events = json_array();
    if (p->parse(&raw, events, err, errlen) < 0) {
        json_decref(events);
        return NULL;
    }
    return events;
}

/* `mailhook sign`: a fresh block over the same event, verifying now, parsing the same. */
static void test_sign_roundtrip(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = key-new\nsecret = " VEC_KEY "\n");
    const struct mh_source *src = mh_config_source(cfg, "mg");
    const int64_t now = 1767225600123LL;
    char *body = read_fixture("failed-permanent-bounce");
    char url[256] = "http://h/", err[512];
    struct mh_headers h = {0};
    struct mh_sign_req sr = {.body = (const unsigned char *)body, .body_len = strlen(body),
                             .now_ms = now, .headers = &h, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_non_null(((char *)sr.new_body));
    assert_int_equal(h.n, 0);
    assert_string_equal(url, "http://h/");
    assert_int_equal(verify_body(cfg, ((char *)sr.new_body), now + 1000), MH_VERIFY_OK);

    json_t *signed_root = json_loads(((char *)sr.new_body), 0, NULL), *orig = json_loads(body, 0, NULL);
    json_t *block = json_object_get(signed_root, "signature");
    assert_string_equal(json_string_value(json_object_get(block, "timestamp")), "1767225600");
    assert_int_equal(strlen(json_string_value(json_object_get(block, "token"))), 50);
    /* event-data unchanged; the block's place in the body unchanged. */
    assert_true(json_equal(json_object_get(signed_root, "event-data"),
                           json_object_get(orig, "event-data")));
    assert_int_equal(strncmp(((char *)sr.new_body), "{\"signature\":", 13), 0);

    /* The newest secret signs: a source with only the old one refuses it. */
    struct mh_config *old = source_with("secret = " VEC_KEY "\n");
    assert_int_equal(verify_body(old, ((char *)sr.new_body), now), MH_VERIFY_REJECT);
    mh_config_free(old);

    /* What the worker makes of the re-signed body is what it makes of the original. */
    json_t *a = parse_body(body, err, sizeof(err));
    json_t *b = parse_body(((char *)sr.new_body), err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    assert_true(json_equal(a, b));

    /* Two signings never share a token. */
    struct mh_sign_req sr2 = sr;
    sr2.new_body = NULL;
    assert_int_equal(src->provider->sign(src, &sr2, err, sizeof(err)), 0);
    json_t *again = json_loads(((char *)sr2.new_body), 0, NULL);
    assert_string_not_equal(json_string_value(json_object_get(block, "token")),
                            json_string_value(json_object_get(json_object_get(again, "signature"),
                                                              "token")));
    json_decref(again);
    free(sr2.new_body);

    json_decref(a);
    json_decref(b);
    json_decref(signed_root);
    json_decref(orig);
    free(sr.new_body);

    /* A body that is not a JSON object cannot carry the block. */
    struct mh_sign_req bad = {.body = (const unsigned char *)"[1]", .body_len = 3, .now_ms = now,
                              .headers = &h, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &bad, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "JSON object"));
    assert_null(bad.new_body);
    mh_headers_clear(&h);
    free(body);
    mh_config_free(cfg);
}

/* Bodies the fixtures cannot hold (ingest refuses them before they are published). */
static void test_parse_errors(void **state)
{
    (void)state;
    char err[512];
    assert_null(parse_body("timestamp=1&token=t", err, sizeof(err)));
    assert_non_null(strstr(err, "mailgun: invalid JSON"));
    assert_null(parse_body("[{\"event-data\":" EVENT_DATA "}]", err, sizeof(err)));
    assert_non_null(strstr(err, "mailgun: body is not a JSON object"));
    json_t *ok = parse_body("{\"event-data\":" EVENT_DATA "}", err, sizeof(err));
    assert_non_null(ok);
    assert_int_equal(json_array_size(ok), 1);
    json_decref(ok);
}

/* The one event of an event-data object (a JSON text). */
static json_t *parse_event_data(const char *ed)
{
    char body[2048], err[512];
    snprintf(body, sizeof(body), "{\"event-data\":%s}", ed);
    json_t *events = parse_body(body, err, sizeof(err));
    if (!events) print_error("%s\n", err);
    assert_non_null(events);
    assert_int_equal(json_array_size(events), 1);
    json_t *ev = json_incref(json_array_get(events, 0));
    json_decref(events);
    return ev;
}

/* client-info.bot marks machine opens and clicks; empty or absent marks nothing. */
static void test_machine_engagement(void **state)
{
    (void)state;
    json_t *ev = parse_event_data("{\"event\":\"clicked\",\"id\":\"c1\",\"timestamp\":1715016100,"
                                  "\"recipient\":\"a@x.org\",\"url\":\"https://x.org/\","
                                  "\"client-info\":{\"bot\":\"generic\"}}");
    assert_true(json_is_true(json_object_get(json_object_get(ev, "click"), "machine")));
    assert_string_equal(pt_str(ev, "metadata", "bot"), "generic");
    json_decref(ev);
    ev = parse_event_data("{\"event\":\"opened\",\"id\":\"o1\",\"timestamp\":1715016100,"
                          "\"recipient\":\"a@x.org\",\"client-info\":{\"bot\":\"apple\"}}");
    assert_true(json_is_true(json_object_get(json_object_get(ev, "open"), "machine")));
    json_decref(ev);
    ev = parse_event_data("{\"event\":\"clicked\",\"id\":\"c2\",\"timestamp\":1715016100,"
                          "\"recipient\":\"a@x.org\",\"url\":\"https://x.org/\","
                          "\"client-info\":{\"bot\":\"\"}}");
    assert_null(json_object_get(json_object_get(ev, "click"), "machine"));
    assert_null(json_object_get(ev, "metadata"));
    json_decref(ev);
}

/* severity / reason are the raw bounce type; envelope.sending-ip is delivery.sending_ip. */
static void test_failure_kind_and_sending_ip(void **state)
{
    (void)state;
    json_t *ev = parse_event_data(
        "{\"event\":\"failed\",\"id\":\"f1\",\"timestamp\":1715016100,\"recipient\":\"a@x.org\","
        "\"severity\":\"permanent\",\"reason\":\"bounce\",\"envelope\":{\"sending-ip\":"
        "\"192.0.2.10\"},\"delivery-status\":{\"code\":550,\"message\":\"5.1.1 no such user\"}}");
    assert_string_equal(pt_str(ev, "bounce", "provider_type"), "permanent");
    assert_string_equal(pt_str(ev, "bounce", "provider_subtype"), "bounce");
    assert_string_equal(pt_str(ev, "delivery", "sending_ip"), "192.0.2.10");
    json_decref(ev);
    ev = parse_event_data("{\"event\":\"delivered\",\"id\":\"d1\",\"timestamp\":1715016100,"
                          "\"recipient\":\"a@x.org\",\"envelope\":{\"sending-ip\":\"192.0.2.11\"},"
                          "\"delivery-status\":{\"code\":250,\"message\":\"OK\"}}");
    assert_string_equal(pt_str(ev, "delivery", "sending_ip"), "192.0.2.11");
    assert_null(json_object_get(ev, "bounce"));
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_official_vector),
        cmocka_unit_test(test_sample_payloads),
        cmocka_unit_test(test_tampered_block),
        cmocka_unit_test(test_event_data_is_not_signed),
        cmocka_unit_test(test_missing_or_malformed_block),
        cmocka_unit_test(test_timestamp_tolerance),
        cmocka_unit_test(test_rotation_and_parent),
        cmocka_unit_test(test_errors_hold_no_secrets),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_machine_engagement),
        cmocka_unit_test(test_failure_kind_and_sending_ip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
