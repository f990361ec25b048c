/*
 * test_verify_resend.c — Resend's Svix / Standard Webhooks v1 signature (the shared
 * mh_stdwh_* functions in verify.c, through the resend provider): the official Standard
 * Webhooks vector and the negative cases of the reference libraries, the Resend-shaped
 * vector, tampering, header families, stale timestamps, secret formats and rotation,
 * secrets kept out of error texts, a `mailhook sign` round trip, the fixtures' headers,
 * and where parse takes the event id from.
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

/* samples/resend/selfgen-vector-email-bounced.json (self-generated, spec secret). */
#define RS_ID "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
#define RS_TS "1732318873"
#define RS_TS_MS 1732318873000LL
#define RS_SIG "v1,zSKjL6jC/pZaCQcyfw+DBKodOBEJXZrOKXNckF19gt8="
#define RS_BODY                                                                                    \
    "{\"type\":\"email.bounced\",\"created_at\":\"2024-11-22T23:41:12.126Z\",\"data\":{"              \
    "\"broadcast_id\":\"8b146471-e88e-4322-86af-016cd36fd216\",\"created_at\":\"2024-11-22T23:41:11." \
    "894719+00:00\",\"email_id\":\"56761188-7520-42d8-8898-ff6fc54ce618\",\"from\":\"Acme "          \
    "<onboarding@resend.dev>\",\"to\":[\"bounced@resend.dev\"],\"subject\":\"Sending this "         \
    "example\",\"template_id\":\"43f68331-0622-4e15-8202-246a0388854b\",\"tags\":{\"category\":"     \
    "\"confirm_email\"},\"bounce\":{\"message\":\"The recipient's email address is on the "         \
    "suppression list because it has a recent history of producing hard bounces.\",\"subType\":"   \
    "\"Suppressed\",\"type\":\"Permanent\"}}}"

/* Another valid secret (32 random bytes). */
#define OTHER_SECRET "whsec_9cXq8N6fBk3hL0pR2sT4uV6wX8yZ0a1B2c3D4e5F6g8="

/* A resend source "rs" with the given option lines. */
static struct mh_config *source_with(const char *options)
{
    char ini[4096];
    snprintf(ini, sizeof(ini), "[source.rs]\nprovider = resend\ntenant = acme\n%s", options);
    return pt_config(ini);
}

/* Verify with one header family ("svix" or "webhook"); NULL values are not sent. */
static enum mh_verdict verify_fam(struct mh_config *cfg, const char *fam, const char *body,
                                  const char *id, const char *ts, const char *sig, int64_t now,
                                  char *err_out)
{
    struct pt_request r;
    char name[64];
    pt_request_init(&r, "/v1/webhooks/rs", body, strlen(body), now);
    if (id) snprintf(name, sizeof(name), "%s-id", fam), mh_headers_add(&r.headers, name, id);
    if (ts) snprintf(name, sizeof(name), "%s-timestamp", fam), mh_headers_add(&r.headers, name, ts);
    if (sig) snprintf(name, sizeof(name), "%s-signature", fam), mh_headers_add(&r.headers, name, sig);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, "rs"), &r);
    if (v != MH_VERIFY_OK) print_message("verify: %s\n", r.err);
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
    /* Svix's names for the same three headers. */
    assert_int_equal(verify_fam(cfg, "svix", SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, 0, NULL),
                     MH_VERIFY_OK);
    /* Unknown versions are skipped; any matching v1 entry passes. */
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_MULTI, 0), MH_VERIFY_OK);
    mh_config_free(cfg);
    /* Default tolerance (300 s), a minute after signing. */
    cfg = source_with("secret = " SPEC_SECRET "\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 60000),
                     MH_VERIFY_OK);
    mh_config_free(cfg);
}

/* mh_stdwh_sign reproduces the official signature byte for byte. */
static void test_official_vector_sign(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\n");
    char sig[MH_STDWH_SIG_BUFSZ];
    assert_int_equal(mh_stdwh_sign(mh_config_source(cfg, "rs"), SPEC_ID, SPEC_TS,
                                   (const unsigned char *)SPEC_BODY, strlen(SPEC_BODY), sig),
                     0);
    assert_string_equal(sig, SPEC_SIG);
    unsigned char key[MH_STDWH_MAX_KEY];
    assert_int_equal(mh_stdwh_key(SPEC_SECRET, key, sizeof(key)), 24);
    mh_config_free(cfg);
}

static void test_official_negatives(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_BAD_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, "v2," SPEC_OTHER, 0),
                     MH_VERIFY_REJECT);
    /* The right MAC under another version label is not a v1 signature. */
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS,
                                 "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS,
                                 "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 0),
                     MH_VERIFY_REJECT);
    /* Each header missing, or empty. */
    assert_int_equal(verify_spec(cfg, SPEC_BODY, NULL, SPEC_TS, SPEC_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, NULL, SPEC_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, NULL, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, NULL, NULL, NULL, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, "", SPEC_TS, SPEC_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, "", 0), MH_VERIFY_REJECT);
    /* Timestamps that are not Unix seconds, even with the freshness check off. */
    static const char *const bad_ts[] = {"hello", "161426533.0", "-1614265330", " 1614265330",
                                         "1614265330 ", "0x60380ef2", "99999999999999", NULL};
    for (const char *const *t = bad_ts; *t; t++)
        assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, *t, SPEC_SIG, 0), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

static void test_resend_vector(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, RS_ID, RS_TS, RS_SIG, 0, NULL), MH_VERIFY_OK);
    mh_config_free(cfg);
    cfg = source_with("secret = " SPEC_SECRET "\n");
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, RS_ID, RS_TS, RS_SIG, RS_TS_MS + 299000, NULL),
                     MH_VERIFY_OK);
    mh_config_free(cfg);
}

/* Body, id, timestamp and signature are all bound; a foreign secret never verifies. */
static void test_tampering(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    char body[sizeof(RS_BODY)];
    memcpy(body, RS_BODY, sizeof(body));
    body[strlen(body) - 5] = 'X'; /* "Permanent" -> "PermaneXt" */
    assert_int_equal(verify_fam(cfg, "svix", body, RS_ID, RS_TS, RS_SIG, 0, NULL), MH_VERIFY_REJECT);
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY " ", RS_ID, RS_TS, RS_SIG, 0, NULL),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X", RS_TS,
                                RS_SIG, 0, NULL),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, RS_ID, "1732318874", RS_SIG, 0, NULL),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, RS_ID, RS_TS,
                                "v1,ySKjL6jC/pZaCQcyfw+DBKodOBEJXZrOKXNckF19gt8=", 0, NULL),
                     MH_VERIFY_REJECT);
    /* Truncated MAC, and garbage that is not base64. */
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, RS_ID, RS_TS, "v1,zSKjL6jC/pZaCQcy", 0, NULL),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, RS_ID, RS_TS, "v1,%%%%", 0, NULL),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);

    cfg = source_with("secret = " OTHER_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, RS_ID, RS_TS, RS_SIG, 0, NULL), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

/* An id with '.' is refused even when correctly signed (the spec keeps '.' out of ids). */
static void test_dotted_id(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    const struct mh_source *src = mh_config_source(cfg, "rs");
    char sig[MH_STDWH_SIG_BUFSZ];
    assert_int_equal(mh_stdwh_sign(src, "msg_a.b", SPEC_TS, (const unsigned char *)SPEC_BODY,
                                   strlen(SPEC_BODY), sig),
                     0);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, "msg_a.b", SPEC_TS, sig, 0), MH_VERIFY_REJECT);
    mh_config_free(cfg);
}

/* The svix-* triple wins when complete; families never mix. */
static void test_header_families(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    const struct mh_source *src = mh_config_source(cfg, "rs");
    struct pt_request r;

    /* Complete but wrong svix-*, right webhook-*: svix-* is what counts. */
    pt_request_init(&r, "/", SPEC_BODY, strlen(SPEC_BODY), 0);
    mh_headers_add(&r.headers, "Svix-Id", SPEC_ID);
    mh_headers_add(&r.headers, "Svix-Timestamp", SPEC_TS);
    mh_headers_add(&r.headers, "Svix-Signature", SPEC_BAD_SIG);
    mh_headers_add(&r.headers, "Webhook-Id", SPEC_ID);
    mh_headers_add(&r.headers, "Webhook-Timestamp", SPEC_TS);
    mh_headers_add(&r.headers, "Webhook-Signature", SPEC_SIG);
    assert_int_equal(pt_verify(src, &r), MH_VERIFY_REJECT);
    pt_request_free(&r);

    /* Incomplete svix-* (no signature): the complete webhook-* triple is used. */
    pt_request_init(&r, "/", SPEC_BODY, strlen(SPEC_BODY), 0);
    mh_headers_add(&r.headers, "svix-id", "msg_other");
    mh_headers_add(&r.headers, "webhook-id", SPEC_ID);
    mh_headers_add(&r.headers, "webhook-timestamp", SPEC_TS);
    mh_headers_add(&r.headers, "webhook-signature", SPEC_SIG);
    assert_int_equal(pt_verify(src, &r), MH_VERIFY_OK);
    pt_request_free(&r);

    /* One header from each family is no triple. */
    pt_request_init(&r, "/", SPEC_BODY, strlen(SPEC_BODY), 0);
    mh_headers_add(&r.headers, "svix-id", SPEC_ID);
    mh_headers_add(&r.headers, "webhook-timestamp", SPEC_TS);
    mh_headers_add(&r.headers, "svix-signature", SPEC_SIG);
    assert_int_equal(pt_verify(src, &r), MH_VERIFY_REJECT);
    assert_non_null(strstr(r.err, "missing"));
    pt_request_free(&r);
    mh_config_free(cfg);
}

static void test_timestamp_tolerance(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\n");
    /* Reference libraries: more than 5 minutes old, or more than 5 minutes ahead. */
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 300000),
                     MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 301000),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS - 300000),
                     MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS - 301000),
                     MH_VERIFY_REJECT);
    /* The vector today: years stale. */
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, 1767225600000LL),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);

    cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 3600\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 3599000),
                     MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_TS_MS + 3601000),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);
    assert_true(pt_config_fails_with("[source.rs]\nprovider = resend\nsecret = " SPEC_SECRET
                                     "\ntimestamp_tolerance_s = -1\n",
                                     "timestamp_tolerance_s"));
    assert_true(pt_config_fails_with("[source.rs]\nprovider = resend\nsecret = " SPEC_SECRET
                                     "\ntimestamp_tolerance_s = soon\n",
                                     "timestamp_tolerance_s"));
}

/* Several secrets (rotation), and a header signed with old and new key at once. */
static void test_rotation(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " OTHER_SECRET "\nsecret = " SPEC_SECRET
                                        "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, 0), MH_VERIFY_OK);
    const struct mh_source *src = mh_config_source(cfg, "rs");
    char newsig[MH_STDWH_SIG_BUFSZ], both[2 * MH_STDWH_SIG_BUFSZ];
    /* Signs with the first (newest) secret. */
    assert_int_equal(mh_stdwh_sign(src, SPEC_ID, SPEC_TS, (const unsigned char *)SPEC_BODY,
                                   strlen(SPEC_BODY), newsig),
                     0);
    assert_string_not_equal(newsig, SPEC_SIG);
    snprintf(both, sizeof(both), "%s %s", newsig, SPEC_SIG);
    mh_config_free(cfg);

    /* Only the old secret configured, or only the new one: the two-entry header passes. */
    cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, both, 0), MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, newsig, 0), MH_VERIFY_REJECT);
    mh_config_free(cfg);
    cfg = source_with("secret = " OTHER_SECRET "\ntimestamp_tolerance_s = 0\n");
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, both, 0), MH_VERIFY_OK);
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, newsig, 0), MH_VERIFY_OK);
    mh_config_free(cfg);
}

/* whsec_ optional, padding optional; empty, bare prefix and non-base64 refused at load. */
static void test_secret_formats(void **state)
{
    (void)state;
    static const char *const good[] = {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SPEC_SECRET, NULL};
    for (const char *const *s = good; *s; s++) {
        char opts[256];
        snprintf(opts, sizeof(opts), "secret = %s\ntimestamp_tolerance_s = 0\n", *s);
        struct mh_config *cfg = source_with(opts);
        assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_SIG, 0), MH_VERIFY_OK);
        mh_config_free(cfg);
    }
    unsigned char key[MH_STDWH_MAX_KEY];
    /* 32 bytes: padded and unpadded base64 give the same key. */
    assert_int_equal(mh_stdwh_key(OTHER_SECRET, key, sizeof(key)), 32);
    assert_int_equal(mh_stdwh_key("whsec_9cXq8N6fBk3hL0pR2sT4uV6wX8yZ0a1B2c3D4e5F6g8", key,
                                  sizeof(key)),
                     32);
    assert_int_equal(mh_stdwh_key("", key, sizeof(key)), -1);
    assert_int_equal(mh_stdwh_key("whsec_", key, sizeof(key)), -1);

    assert_true(pt_config_fails_with("[source.rs]\nprovider = resend\n", "needs a secret"));
    assert_true(pt_config_fails_with("[source.rs]\nprovider = resend\nsecret = whsec_\n",
                                     "secret #1: not a signing secret"));
    assert_true(pt_config_fails_with("[source.rs]\nprovider = resend\nsecret = " SPEC_SECRET
                                     "\nsecret = whsec_not*base64!\n",
                                     "secret #2: not a signing secret"));
    /* The error names the secret's position, never its text. */
    char err[512] = "";
    struct mh_config *cfg =
        pt_config_try("[source.rs]\nprovider = resend\nsecret = whsec_s3cr3t!!\n", err, sizeof(err));
    assert_null(cfg);
    assert_null(strstr(err, "s3cr3t"));
}

/* Rejections say why without echoing a secret, a key or the expected signature. */
static void test_errors_hold_no_secret(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    char err[512];
    assert_int_equal(verify_spec(cfg, SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_BAD_SIG, 0), MH_VERIFY_REJECT);
    assert_int_equal(verify_fam(cfg, "webhook", SPEC_BODY, SPEC_ID, SPEC_TS, SPEC_BAD_SIG, 0, err),
                     MH_VERIFY_REJECT);
    assert_true(err[0] != '\0');
    assert_null(strstr(err, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert_null(strstr(err, "g0hM9SsE"));
    mh_config_free(cfg);
}

/* `mailhook sign`: svix-* headers stamped now, an id derived from the body, verifies. */
static void test_sign_roundtrip(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " OTHER_SECRET "\nsecret = " SPEC_SECRET "\n");
    const struct mh_source *src = mh_config_source(cfg, "rs");
    const int64_t now = 1767225600123LL;
    char url[256] = "http://h/", err[256], id1[64];
    struct mh_headers h = {0};
    struct mh_sign_req sr = {.body = (const unsigned char *)RS_BODY, .body_len = strlen(RS_BODY),
                             .now_ms = now, .headers = &h, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    const char *id = mh_headers_get(&h, "svix-id"), *ts = mh_headers_get(&h, "svix-timestamp");
    const char *sig = mh_headers_get(&h, "svix-signature");
    assert_non_null(id);
    assert_non_null(sig);
    assert_string_equal(ts, "1767225600");
    assert_int_equal(strncmp(id, "msg_", 4), 0);
    assert_int_equal(strncmp(sig, "v1,", 3), 0);
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, id, ts, sig, now + 5000, NULL), MH_VERIFY_OK);
    /* Stale once outside the default 300 s. */
    assert_int_equal(verify_fam(cfg, "svix", RS_BODY, id, ts, sig, now + 301000, NULL),
                     MH_VERIFY_REJECT);
    snprintf(id1, sizeof(id1), "%s", id);
    mh_headers_clear(&h);

    /* The same body again: the same message id (a retry); another body: another id. */
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_string_equal(mh_headers_get(&h, "svix-id"), id1);
    mh_headers_clear(&h);
    sr.body = (const unsigned char *)SPEC_BODY;
    sr.body_len = strlen(SPEC_BODY);
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_string_not_equal(mh_headers_get(&h, "svix-id"), id1);
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
 * Every golden fixture's headers.json is a genuine, verifiable Svix triple (spec secret),
 * and its id is the one `mailhook sign` derives from body.json, so the end-to-end golden
 * run (which signs each body) yields the same event ids as expected.json.
 */
static void test_fixture_headers(void **state)
{
    (void)state;
    struct mh_config *cfg = source_with("secret = " SPEC_SECRET "\ntimestamp_tolerance_s = 0\n");
    const struct mh_source *src = mh_config_source(cfg, "rs");
    DIR *d = opendir(MH_FIXTURES_DIR "/resend");
    struct dirent *de;
    size_t checked = 0;
    assert_non_null(d);
    while ((de = readdir(d))) {
        char path[1024];
        size_t len = 0;
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), MH_FIXTURES_DIR "/resend/%s/expected.json", de->d_name);
        if (access(path, F_OK) != 0) continue;
        snprintf(path, sizeof(path), MH_FIXTURES_DIR "/resend/%s/headers.json", de->d_name);
        json_t *hdrs = json_load_file(path, 0, NULL);
        if (!hdrs) print_error("%s: golden case without headers.json\n", de->d_name);
        assert_non_null(hdrs);
        snprintf(path, sizeof(path), MH_FIXTURES_DIR "/resend/%s/body.json", de->d_name);
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
                                 .now_ms = 0, .headers = &signed_h, .url = url,
                                 .url_cap = sizeof(url)};
        struct mh_stdwh_headers t;
        assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
        assert_int_equal(mh_stdwh_headers(&r.headers, &t), 0);
        assert_string_equal(mh_headers_get(&signed_h, "svix-id"), t.id);
        mh_headers_clear(&signed_h);
        pt_request_free(&r);
        json_decref(hdrs);
        free(body);
        checked++;
    }
    closedir(d);
    assert_true(checked >= 15);
    mh_config_free(cfg);
}

/* parse of body with the given Kafka headers (name, value pairs, NULL-terminated). */
static json_t *parse_with(const char *body, const char *const *hdrs)
{
    struct mh_headers h = {0};
    for (; hdrs && *hdrs; hdrs += 2) mh_headers_add(&h, hdrs[0], hdrs[1]);
    struct mh_raw raw = {.source = "rs", .provider = "resend", .tenant = "acme", .headers = &h,
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL};
    json_t *events = json_array();
    char err[256];
    assert_int_equal(mh_provider_find("resend")->parse(&raw, events, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(events), 1);
    mh_headers_clear(&h);
    return events;
}

static const char *event_id(json_t *events)
{
    return json_string_value(json_object_get(json_array_get(events, 0), "event_id"));
}

/* The Svix message id is the event id; without one, a derived id that tells events apart. */
static void test_event_id(void **state)
{
    (void)state;
    static const char *const svix[] = {"svix-id", RS_ID, "svix-timestamp", RS_TS,
                                       "svix-signature", RS_SIG, NULL};
    static const char *const webhook[] = {"webhook-id", "msg_w", "webhook-timestamp", RS_TS,
                                          "webhook-signature", RS_SIG, NULL};
    static const char *const both[] = {"svix-id", RS_ID, "webhook-id", "msg_w", "webhook-timestamp",
                                       RS_TS, "webhook-signature", RS_SIG, NULL};
    json_t *e = parse_with(RS_BODY, svix);
    assert_string_equal(event_id(e), RS_ID);
    assert_string_equal(json_string_value(json_object_get(json_array_get(e, 0), "type")),
                        "email.bounced");
    json_decref(e);
    e = parse_with(RS_BODY, webhook);
    assert_string_equal(event_id(e), "msg_w");
    json_decref(e);
    /* svix-* incomplete, webhook-* complete: the id of the family verify used. */
    e = parse_with(RS_BODY, both);
    assert_string_equal(event_id(e), "msg_w");
    json_decref(e);

    /* No id header: SHA-256 over the identifying fields, stable and distinct. */
    static const char *const c1 = "{\"type\":\"email.clicked\",\"created_at\":\"2024-11-22T23:41:12.126Z\","
                                  "\"data\":{\"email_id\":\"e1\",\"to\":[\"a@example.com\"],\"click\":{\"link\":\"https://a\"}}}";
    static const char *const c2 = "{\"type\":\"email.clicked\",\"created_at\":\"2024-11-22T23:41:12.126Z\","
                                  "\"data\":{\"email_id\":\"e1\",\"to\":[\"a@example.com\"],\"click\":{\"link\":\"https://b\"}}}";
    json_t *a = parse_with(c1, NULL), *a2 = parse_with(c1, NULL), *b = parse_with(c2, NULL);
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
        cmocka_unit_test(test_official_vector),
        cmocka_unit_test(test_official_vector_sign),
        cmocka_unit_test(test_official_negatives),
        cmocka_unit_test(test_resend_vector),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_dotted_id),
        cmocka_unit_test(test_header_families),
        cmocka_unit_test(test_timestamp_tolerance),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_secret_formats),
        cmocka_unit_test(test_errors_hold_no_secret),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_fixture_headers),
        cmocka_unit_test(test_event_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
