/*
 * test_verify_standard.c — the generic Standard Webhooks provider ("standard"): the
 * official spec vector and the reference libraries' negative cases, tampering, a wrong
 * secret, stale and future timestamps, rotation, option and secret validation, errors
 * free of secrets, a `mailhook sign` round trip (webhook-* headers), the fixtures'
 * headers, and the event id parse takes from webhook-id.
 */
#include <dirent.h>
#include <jansson.h>

#include "mailhook/stdwh.h"
#include "mailhook/verify.h"
#include "provider_test.h"

/* standard-webhooks, every libraries/ test suite (e.g. Go TestWebhookSign). */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS "1614265330"
#define SPEC_TS_MS 1614265330000LL
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define SPEC_BAD_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
#define SPEC_OTHER "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
#define SPEC_MULTI                                                                                 \
    "v1," SPEC_OTHER " v2," SPEC_OTHER " v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1," SPEC_OTHER

/* Another valid secret (32 bytes). */
#define OTHER_SECRET "whsec_9cXq8N6fBk3hL0pR2sT4uV6wX8yZ0a1B2c3D4e5F6g8="

#define EV_BODY                                                                                    \
    "{\"type\":\"email.bounced\",\"timestamp\":\"2026-02-25T12:00:00Z\",\"data\":{\"recipient\":"  \
    "\"a@example.org\",\"message_id\":\"m1\",\"bounce\":{\"diagnostic\":\"550 5.1.1 unknown\"}}}"

static struct mh_config *source_with(const char *options)
{
    char ini[4096];
    snprintf(ini, sizeof(ini), "[source.sw]\nprovider = standard\ntenant = acme\n%s", options);
    return pt_config(ini);
}

/* Verify with one header family ("webhook" or "svix"); NULL values are not sent. */
static enum mh_verdict verify_fam(struct mh_config *cfg, const char *fam, const char *body,
                                  const char *id, const char *ts, const char *sig, int64_t now,
                                  char *err_out)
{
    struct pt_request r;
    char name[64];
    pt_request_init(&r, "/v1/webhooks/sw", body, strlen(body), now);
    if (id) snprintf(name, sizeof(name), "%s-id", fam), mh_headers_add(&r.headers, name, id);
    if (ts) snprintf(name, sizeof(name), "%s-timestamp", fam), mh_headers_add(&r.headers, name, ts);
    if (sig) snprintf(name, sizeof(name), "%s-signature", fam), mh_headers_add(&r.headers, name, sig);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, "sw"), &r);
    if (err_out) strcpy(err_out, r.err);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict verify_spec(struct mh_config *cfg, const char *body, const char *id,
                                   const char *ts, const char *sig, int64_t now)
{
    return verify_fam(cfg, "webhook", body, id, ts, sig, now, NULL);
}

static void test_official_vector(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, 1767225600000LL),
                     MH_VERIFY_OK);
    assert_int_equal(verify_fam(cfg, "svix", SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, 0, NULL),
                     MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_MULTI, 0), MH_VERIFY_OK);
    /* mh_stdwh_sign reproduces the official signature. */
    char sig[MH_STDWH_SIG_BUFSZ];
    assert_int_equal(mh_stdwh_sign(mh_config_source(cfg, "sw"), SPEC_ID, SPEC_TS,
                                   (const unsigned char *)SPEC_BODY, strlen(SPEC_BODY), sig),
                     0);
    assert_string_equal(sig, SPEC_SIG);
    mh_config_free(cfg);
}

static void test_official_negatives(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_BAD_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, "v2," SPEC_OTHER, 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, NULL, SPEC_TS, SPEC_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, NULL, SPEC_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, NULL, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, NULL, NULL, NULL, 0), MH_VERIFY_REJECT);
    static const char *const bad_ts[] = {"hello", "161426533.0", "-1614265330", NULL};
    for (const char *const *t = bad_ts; *t; t++)
        assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, *t, SPEC_SIG, 0), MH_VERIFY_REJECT);
    /* The spec keeps '.' out of ids. */
    assert_int_equal(verify_spec(cfg, SPEC_BODY, "msg.1", SPEC_TS, SPEC_SIG, 0), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

static void test_tampering_and_wrong_secret(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_spec(cfg, "{\"test\": 2432232315}", SPEC_ID, SPEC_TS, SPEC_SIG, 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY " ", SPEC_ID, SPEC_TS, SPEC_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, "msg_p5jXN8AQM9LWM0D4loKWxJeK", SPEC_TS, SPEC_SIG, 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, "1614265331", SPEC_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, "v1,g0hM9SsE", 0), MH_VERIFY_REJECT);
    mh_config_free(cfg);
    cfg = source_with("secret = " OTHER_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, 0), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

static void test_timestamp_tolerance(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\n"); /* default 300 s */
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 300000),
                     MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 301000),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS - 301000),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);
    cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 60\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 59000),
                     MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 61000),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);
    assert_true(pt_config_fails_with("[source.sw]\nprovider = standard\nsecret = " SPEC_SECRET
                                     "\ntimestamp_tolerance_s = -1\n",
                                     "timestamp_tolerance_s"));
}

static void test_rotation(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " OTHER_SECRET "\nsecret = " SPEC_SECRET
                                        "\ntimestamp_tolerance_s = 0\n");
    /* The old secret still verifies while both are configured. */
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, 0), MH_VERIFY_OK);
    mh_config_free(cfg);
}

static void test_secrets_and_errors(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.sw]\nprovider = standard\n", "needs a secret"));
    assert_true(pt_config_fails_with("[source.sw]\nprovider = standard\nsecret = whsec_\n",
                                     "secret #1: not a signing secret"));
    char err[512] = "";
    struct mh_config *cfg = pt_config_try("[source.sw]\nprovider = standard\nsecret = whsec_s3cr3t!!\n",
                                          err, sizeof(err));
    assert_null(cfg);
    assert_null(strstr(err, "s3cr3t"));

    cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_fam(cfg, "webhook", SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_BAD_SIG, 0, err),
                     MH_VERIFY_REJECT);
    assert_true(err[0] != '\0');
    assert_null(strstr(err, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert_null(strstr(err, "g0hM9SsE"));
    mh_config_free(cfg);
}

/* `mailhook sign`: webhook-* headers stamped now, an id derived from the body. */
static void test_sign_roundtrip(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " OTHER_SECRET "\nsecret = " SPEC_SECRET "\n");
    const struct mh_source *src = mh_config_source(cfg, "sw");
    const int64_t now = 1767225600123LL;
    char url[256] = "http://h/", err[256], id1[64];
    struct mh_headers h = {0};
    struct mh_sign_req sr = {.body = (const unsigned char *)EV_BODY, .body_len = strlen(EV_BODY),
                             .now_ms = now, .headers = &h, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    const char *id = mh_headers_get(&h, "webhook-id"), *ts = mh_headers_get(&h, "webhook-timestamp");
    const char *sig = mh_headers_get(&h, "webhook-signature");
    assert_non_null(id);
    assert_non_null(sig);
    assert_string_equal(ts, "1767225600");
    assert_int_equal(strncmp(sig, "v1,", 3), 0);
    assert_int_equal(verify_spec(cfg, EV_BODY, id, ts, sig, now + 5000), MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, EV_BODY, id, ts, sig, now + 301000), MH_VERIFY_REJECT);
    snprintf(id1, sizeof(id1), "%s", id);
    mh_headers_clear(&h);
    /* Signed with the first secret: a source holding only the old one rejects it. */
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_string_equal(mh_headers_get(&h, "webhook-id"), id1);
    struct mh_config *old = source_with("secret = " SPEC_SECRET "\n");
    assert_int_equal(verify_spec(old, EV_BODY, mh_headers_get(&h, "webhook-id"),
                                 mh_headers_get(&h, "webhook-timestamp"),
                                 mh_headers_get(&h, "webhook-signature"), now),
                     MH_VERIFY_REJECT);
    mh_config_free(old);
    mh_headers_clear(&h);
    mh_config_free(cfg);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    *len = 0;
    if (!fp) return NULL;
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, fp);
    buf[*len] = '\0';
    fclose(fp);
    return buf;
}

/*
 * Every golden fixture's headers.json verifies (spec secret) and carries the id `mailhook
 * sign` derives from body.json, so the golden e2e run yields expected.json's event ids.
 */
static void test_fixture_headers(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    const struct mh_source *src = mh_config_source(cfg, "sw");
    DIR *d = opendir(MH_FIXTURES_DIR "/standard");
    struct dirent *de;
    size_t checked = 0;
    assert_non_null(d);
    while ((de = readdir(d))) {
        char path[1024];
        size_t len = 0;
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), MH_FIXTURES_DIR "/standard/%s/expected.json", de->d_name);
        if (access(path, F_OK) != 0) continue;
        snprintf(path, sizeof(path), MH_FIXTURES_DIR "/standard/%s/headers.json", de->d_name);
        json_t *hdrs = json_load_file(path, 0, NULL);
        assert_non_null(hdrs);
        snprintf(path, sizeof(path), MH_FIXTURES_DIR "/standard/%s/body.json", de->d_name);
        char *body = slurp(path, &len);
        assert_non_null(body);
        struct pt_request r;
        const char *k;
        json_t *v;
        pt_request_init(&r, "/", body, len, 0);
        json_object_foreach(hdrs, k, v) mh_headers_add(&r.headers, k, json_string_value(v));
        if (pt_verify(src, &r) != MH_VERIFY_OK) print_error("%s: %s\n", de->d_name, r.err);
        assert_int_equal(pt_verify(src, &r), MH_VERIFY_OK);
        struct mh_headers signed_h = {0};
        char url[64] = "", err[256];
        struct mh_sign_req sr = {.body = (const unsigned char *)body, .body_len = len,
                                 .headers = &signed_h, .url = url, .url_cap = sizeof(url)};
        assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
        assert_string_equal(mh_headers_get(&signed_h, "webhook-id"),
                            mh_headers_get(&r.headers, "webhook-id"));
        mh_headers_clear(&signed_h);
        pt_request_free(&r);
        json_decref(hdrs);
        free(body);
        checked++;
    }
    closedir(d);
    assert_true(checked >= 10);
    mh_config_free(cfg);
}

static json_t *parse_with(const char *body, const char *id_header, const char *id)
{
    struct mh_headers h = {0};
    if (id_header) mh_headers_add(&h, id_header, id);
    struct mh_raw raw = {.source = "sw", .provider = "standard", .tenant = "acme", .headers = &h,
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL};
    json_t *events = json_array();
    char err[256];
    assert_int_equal(mh_provider_find("standard")->parse(&raw, events, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(events), 1);
    mh_headers_clear(&h);
    return events;
}

static const char *event_id(json_t *events)
{
    return json_string_value(json_object_get(json_array_get(events, 0), "event_id"));
}

/* webhook-id (or svix-id) is the event id; without one, a stable derived id. */
static void test_event_id(void **state)
{
    (void)state;
    json_t *e = parse_with(EV_BODY, "webhook-id", "msg_abc");
    assert_string_equal(event_id(e), "msg_abc");
    json_t *ev = json_array_get(e, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "email.bounced");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "bounce"), "class")),
                        "hard");
    json_decref(e);
    e = parse_with(EV_BODY, "svix-id", "msg_svix");
    assert_string_equal(event_id(e), "msg_svix");
    json_decref(e);
    static const char *const c1 = "{\"type\":\"email.clicked\",\"timestamp\":\"2026-02-25T12:00:00Z\","
                                  "\"data\":{\"recipient\":\"a@example.org\",\"click\":{\"url\":\"https://a\"}}}";
    static const char *const c2 = "{\"type\":\"email.clicked\",\"timestamp\":\"2026-02-25T12:00:00Z\","
                                  "\"data\":{\"recipient\":\"a@example.org\",\"click\":{\"url\":\"https://b\"}}}";
    json_t *a = parse_with(c1, NULL, NULL), *a2 = parse_with(c1, NULL, NULL);
    json_t *b = parse_with(c2, NULL, NULL);
    assert_int_equal(strlen(event_id(a)), 64);
    assert_string_equal(event_id(a), event_id(a2));
    assert_string_not_equal(event_id(a), event_id(b));
    json_decref(a);
    json_decref(a2);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_official_vector),     cmocka_unit_test(test_official_negatives),
        cmocka_unit_test(test_tampering_and_wrong_secret),
        cmocka_unit_test(test_timestamp_tolerance), cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_secrets_and_errors),  cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_fixture_headers),     cmocka_unit_test(test_event_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
