/*
 * test_verify_postal.c — Postal's RSA webhook signatures, verified with the
 * self-generated vector (postal_vectors.h): SHA-256 preferred over SHA-1, every key
 * encoding a source may be given (SPKI PEM, PKCS#1 PEM, Postal's bare base64, a DKIM
 * record, JWKS with key ids), wrong key, tampered body, missing header, key rotation, the
 * envelope-timestamp freshness check, and option validation.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "postal_vectors.h"
#include "provider_test.h"

#define FRESH_MS (POSTAL_BODY_TS_MS + 60 * 1000)

static char *key_file(const char *content)
{
    return pt_temp_file(content);
}

static char *jwks_file(const char *kid1, const char *n1, const char *kid2, const char *n2)
{
    char buf[2048];
    if (kid2)
        snprintf(buf, sizeof(buf),
                 "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"},"
                 "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"AQAB\"},"
                 "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"AQAB\"}]}",
                 kid1, n1, kid2, n2);
    else
        snprintf(buf, sizeof(buf),
                 "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", kid1, n1);
    return pt_temp_file(buf);
}

/* A source "p" of the given provider with extra option lines. */
static struct mh_config *source_with(const char *provider, const char *options)
{
    char ini[4096];
    snprintf(ini, sizeof(ini), "[source.p]\nprovider = %s\ntenant = acme\n%s", provider, options);
    return pt_config(ini);
}

struct sig {
    const char *name, *value;
};

static enum mh_verdict verify_with(struct mh_config *cfg, const char *body, int64_t now_ms,
                                   const struct sig *sigs)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/p", body, strlen(body), now_ms);
    for (; sigs && sigs->name; sigs++) mh_headers_add(&r.headers, sigs->name, sigs->value);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, "p"), &r);
    if (v != MH_VERIFY_OK) print_message("verify: %s\n", r.err);
    pt_request_free(&r);
    return v;
}

static const struct sig both[] = {
    {"X-Postal-Signature", POSTAL_SIG_SHA1}, {"X-Postal-Signature-256", POSTAL_SIG_SHA256}, {NULL, NULL}};
static const struct sig sha1_only[] = {{"X-Postal-Signature", POSTAL_SIG_SHA1}, {NULL, NULL}};
static const struct sig sha256_only[] = {{"X-Postal-Signature-256", POSTAL_SIG_SHA256}, {NULL, NULL}};
/* Bad SHA-256 next to a good SHA-1: the SHA-256 one is the one checked. */
static const struct sig bad256_good1[] = {
    {"X-Postal-Signature", POSTAL_SIG_SHA1}, {"X-Postal-Signature-256", POSTAL_SIG_SHA1}, {NULL, NULL}};

static enum mh_verdict verify_key(const char *key_text, const struct sig *sigs)
{
    char *path = key_file(key_text), opts[512];
    snprintf(opts, sizeof(opts), "public_key_file = %s\n", path);
    struct mh_config *cfg = source_with("postal", opts);
    enum mh_verdict v = verify_with(cfg, POSTAL_BODY, FRESH_MS, sigs);
    mh_config_free(cfg);
    pt_remove(path);
    return v;
}

static void test_vector_matches_fixture(void **state)
{
    (void)state;
    FILE *fp = fopen(MH_FIXTURES_DIR "/postal/MessageSent-signed-raw-body/body.json", "rb");
    char buf[2048];
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_int_equal(n, strlen(POSTAL_BODY));
    assert_memory_equal(buf, POSTAL_BODY, n);
}

static void test_sha256_and_sha1(void **state)
{
    (void)state;
    assert_int_equal(verify_key(POSTAL_KEY_SPKI_PEM, both), MH_VERIFY_OK);
    assert_int_equal(verify_key(POSTAL_KEY_SPKI_PEM, sha256_only), MH_VERIFY_OK);
    assert_int_equal(verify_key(POSTAL_KEY_SPKI_PEM, sha1_only), MH_VERIFY_OK);
    assert_int_equal(verify_key(POSTAL_KEY_SPKI_PEM, bad256_good1), MH_VERIFY_REJECT);
}

static void test_key_encodings(void **state)
{
    (void)state;
    assert_int_equal(verify_key(POSTAL_KEY_PKCS1_PEM, both), MH_VERIFY_OK);
    assert_int_equal(verify_key(POSTAL_KEY_BARE_B64 "\n", both), MH_VERIFY_OK);
    assert_int_equal(verify_key("v=DKIM1; t=s; h=sha256; p=" POSTAL_KEY_BARE_B64 ";", both), MH_VERIFY_OK);
    assert_int_equal(verify_key("\"v=DKIM1; t=s; h=sha256; p=" POSTAL_KEY_BARE_B64 "\"", both), MH_VERIFY_OK);
}

static void test_wrong_key(void **state)
{
    (void)state;
    assert_int_equal(verify_key(OTHER_KEY_SPKI_PEM, both), MH_VERIFY_REJECT);
    assert_int_equal(verify_key(OTHER_KEY_SPKI_PEM, sha1_only), MH_VERIFY_REJECT);
}

static void test_tampered_body(void **state)
{
    (void)state;
    char *path = key_file(POSTAL_KEY_SPKI_PEM), opts[512];
    snprintf(opts, sizeof(opts), "public_key_file = %s\n", path);
    struct mh_config *cfg = source_with("postal", opts);
    char body[sizeof(POSTAL_BODY)];
    memcpy(body, POSTAL_BODY, sizeof(body));
    char *sent = strstr(body, "\"Sent\"");
    memcpy(sent, "\"Held\"", 6);
    assert_int_equal(verify_with(cfg, body, FRESH_MS, both), MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, body, FRESH_MS, sha1_only), MH_VERIFY_REJECT);
    /* A trailing newline is a different body too. */
    char longer[sizeof(POSTAL_BODY) + 1];
    snprintf(longer, sizeof(longer), "%s\n", POSTAL_BODY);
    assert_int_equal(verify_with(cfg, longer, FRESH_MS, both), MH_VERIFY_REJECT);
    mh_config_free(cfg);
    pt_remove(path);
}

static void test_missing_or_garbled_header(void **state)
{
    (void)state;
    static const struct sig garbled[] = {{"X-Postal-Signature-256", "%%%not base64%%%"}, {NULL, NULL}};
    static const struct sig empty[] = {{"X-Postal-Signature-256", ""}, {NULL, NULL}};
    assert_int_equal(verify_key(POSTAL_KEY_SPKI_PEM, NULL), MH_VERIFY_REJECT);
    assert_int_equal(verify_key(POSTAL_KEY_SPKI_PEM, garbled), MH_VERIFY_REJECT);
    assert_int_equal(verify_key(POSTAL_KEY_SPKI_PEM, empty), MH_VERIFY_REJECT);
}

static void test_sha1_can_be_refused(void **state)
{
    (void)state;
    char *path = key_file(POSTAL_KEY_SPKI_PEM), opts[512];
    snprintf(opts, sizeof(opts), "public_key_file = %s\nallow_sha1 = false\n", path);
    struct mh_config *cfg = source_with("postal", opts);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, sha1_only), MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, both), MH_VERIFY_OK);
    mh_config_free(cfg);
    pt_remove(path);
}

static void test_rotation(void **state)
{
    (void)state;
    /* Two configured keys; the second is the one that signed. */
    char *old = key_file(OTHER_KEY_SPKI_PEM), *cur = key_file(POSTAL_KEY_SPKI_PEM), opts[1024];
    snprintf(opts, sizeof(opts), "public_key_file = %s\npublic_key_file = %s\n", old, cur);
    struct mh_config *cfg = source_with("postal", opts);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, both), MH_VERIFY_OK);
    mh_config_free(cfg);
    pt_remove(old);
    pt_remove(cur);
}

static void test_jwks_and_kid(void **state)
{
    (void)state;
    char *jwks = jwks_file("old-kid", OTHER_JWK_N, "ci-kid", POSTAL_JWK_N), opts[512];
    snprintf(opts, sizeof(opts), "jwks_file = %s\n", jwks);
    struct mh_config *cfg = source_with("postal", opts);
    const struct sig with_kid[] = {
        {"X-Postal-Signature-256", POSTAL_SIG_SHA256}, {"X-Postal-Signature-KID", "ci-kid"}, {NULL, NULL}};
    const struct sig wrong_kid[] = {
        {"X-Postal-Signature-256", POSTAL_SIG_SHA256}, {"X-Postal-Signature-KID", "old-kid"}, {NULL, NULL}};
    const struct sig unknown_kid[] = {
        {"X-Postal-Signature-256", POSTAL_SIG_SHA256}, {"X-Postal-Signature-KID", "nope"}, {NULL, NULL}};
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, with_kid), MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, sha256_only), MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, wrong_kid), MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, unknown_kid), MH_VERIFY_REJECT);
    mh_config_free(cfg);
    pt_remove(jwks);
}

static void test_timestamp(void **state)
{
    (void)state;
    char *path = key_file(POSTAL_KEY_SPKI_PEM), opts[512];
    snprintf(opts, sizeof(opts), "public_key_file = %s\n", path);
    struct mh_config *cfg = source_with("postal", opts);
    /* Default tolerance: one day, either direction. */
    assert_int_equal(verify_with(cfg, POSTAL_BODY, POSTAL_BODY_TS_MS + 36 * 60 * 1000LL, both),
                     MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, POSTAL_BODY_TS_MS + 86401 * 1000LL, both),
                     MH_VERIFY_REJECT);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, POSTAL_BODY_TS_MS - 86401 * 1000LL, both),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);

    snprintf(opts, sizeof(opts), "public_key_file = %s\ntimestamp_tolerance_s = 300\n", path);
    cfg = source_with("postal", opts);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, POSTAL_BODY_TS_MS + 299 * 1000LL, both), MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, POSTAL_BODY_TS_MS + 301 * 1000LL, both),
                     MH_VERIFY_REJECT);
    mh_config_free(cfg);

    snprintf(opts, sizeof(opts), "public_key_file = %s\ntimestamp_tolerance_s = 0\n", path);
    cfg = source_with("postal", opts);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, 1767225600000LL, both), MH_VERIFY_OK);
    mh_config_free(cfg);
    pt_remove(path);
}

static char *pem_file(EVP_PKEY *pkey, int private_half)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, text[4096];
    if (private_half) assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    else assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    long len = BIO_get_mem_data(bio, &data);
    assert_true(len > 0 && (size_t)len < sizeof(text));
    memcpy(text, data, (size_t)len);
    text[len] = '\0';
    BIO_free(bio);
    return pt_temp_file(text);
}

/* `mailhook sign --key` gives both of Postal's signatures, and each verifies alone. */
static void test_sign_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *pkey = EVP_RSA_gen(1024);
    assert_non_null(pkey);
    char *pub = pem_file(pkey, 0), *priv = pem_file(pkey, 1), opts[512], url[256] = "http://h/", err[256];
    snprintf(opts, sizeof(opts), "public_key_file = %s\n", pub);
    struct mh_config *cfg = source_with("postal", opts);
    const struct mh_source *src = mh_config_source(cfg, "p");
    struct mh_headers h = {0};
    struct mh_sign_req sr = {.body = (const unsigned char *)POSTAL_BODY, .body_len = strlen(POSTAL_BODY),
                             .now_ms = FRESH_MS, .private_key_file = priv, .headers = &h,
                             .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_null(sr.new_body); /* a fresh body is signed byte for byte */
    const struct sig s256[] = {{"X-Postal-Signature-256", mh_headers_get(&h, "x-postal-signature-256")},
                               {NULL, NULL}};
    const struct sig s1[] = {{"X-Postal-Signature", mh_headers_get(&h, "x-postal-signature")}, {NULL, NULL}};
    assert_non_null(s256[0].value);
    assert_non_null(s1[0].value);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, s256), MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, FRESH_MS, s1), MH_VERIFY_OK);
    mh_headers_clear(&h);
    mh_config_free(cfg);
    pt_remove(pub);
    pt_remove(priv);
    EVP_PKEY_free(pkey);
}

/* A body too old for the source's window is sent as Postal would send it now: its
 * envelope timestamp is now, the rest is kept, and the new body verifies now. */
static void test_sign_restamps_stale_body(void **state)
{
    (void)state;
    EVP_PKEY *pkey = EVP_RSA_gen(1024);
    assert_non_null(pkey);
    char *pub = pem_file(pkey, 0), *priv = pem_file(pkey, 1), opts[512], url[256] = "http://h/", err[256];
    snprintf(opts, sizeof(opts), "public_key_file = %s\n", pub);
    struct mh_config *cfg = source_with("postal", opts);
    const struct mh_source *src = mh_config_source(cfg, "p");
    struct mh_headers h = {0};
    const int64_t later = POSTAL_BODY_TS_MS + 400LL * 86400 * 1000;
    struct mh_sign_req sr = {.body = (const unsigned char *)POSTAL_BODY, .body_len = strlen(POSTAL_BODY),
                             .now_ms = later, .private_key_file = priv, .headers = &h,
                             .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_non_null(sr.new_body);
    char *body = strndup((const char *)sr.new_body, sr.new_body_len);
    json_t *root = json_loads(body, 0, NULL), *orig = json_loads(POSTAL_BODY, 0, NULL);
    assert_non_null(root);
    assert_true(json_number_value(json_object_get(root, "timestamp")) * 1000.0 > (double)later - 1000.0);
    assert_true(json_equal(json_object_get(root, "payload"), json_object_get(orig, "payload")));
    assert_string_equal(json_string_value(json_object_get(root, "uuid")),
                        json_string_value(json_object_get(orig, "uuid")));
    const struct sig s256[] = {{"X-Postal-Signature-256", mh_headers_get(&h, "x-postal-signature-256")},
                               {NULL, NULL}};
    assert_int_equal(verify_with(cfg, body, later, s256), MH_VERIFY_OK);
    assert_int_equal(verify_with(cfg, POSTAL_BODY, later, s256), MH_VERIFY_REJECT);
    json_decref(root);
    json_decref(orig);
    free(body);
    free(sr.new_body);
    mh_headers_clear(&h);
    mh_config_free(cfg);
    pt_remove(pub);
    pt_remove(priv);
    EVP_PKEY_free(pkey);
}

static void test_options(void **state)
{
    (void)state;
    char *shortkey = key_file(SHORT_KEY_SPKI_PEM), *junk = key_file("hello"), opts[512];
    char *badjson = key_file("{\"keys\": [");
    char *nokeys = key_file("{\"keys\": [{\"kty\":\"EC\"}]}");
    char *badn = key_file("{\"keys\": [{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}");
    assert_true(pt_config_fails_with("[source.p]\nprovider = postal\n", "needs public_key_file or jwks_file"));
    assert_true(pt_config_fails_with("[source.p]\nprovider = postal\npublic_key_file = /nonexistent/key.pem\n",
                                     "cannot open"));
    snprintf(opts, sizeof(opts), "[source.p]\nprovider = postal\npublic_key_file = %s\n", shortkey);
    assert_true(pt_config_fails_with(opts, "shorter than 1024 bits"));
    snprintf(opts, sizeof(opts), "[source.p]\nprovider = postal\npublic_key_file = %s\n", junk);
    assert_true(pt_config_fails_with(opts, "no RSA public key"));
    snprintf(opts, sizeof(opts), "[source.p]\nprovider = postal\njwks_file = %s\n", badjson);
    assert_true(pt_config_fails_with(opts, "line 1"));
    snprintf(opts, sizeof(opts), "[source.p]\nprovider = postal\njwks_file = %s\n", nokeys);
    assert_true(pt_config_fails_with(opts, "no RSA signing key"));
    snprintf(opts, sizeof(opts), "[source.p]\nprovider = postal\njwks_file = %s\n", badn);
    assert_true(pt_config_fails_with(opts, "bad \"n\" or \"e\""));
    snprintf(opts, sizeof(opts), "[source.p]\nprovider = postal\npublic_key_file = %s\nallow_sha1 = maybe\n",
             junk);
    assert_true(pt_config_fails_with(opts, "allow_sha1"));
    snprintf(opts, sizeof(opts),
             "[source.p]\nprovider = postal\npublic_key_file = %s\ntimestamp_tolerance_s = -1\n", junk);
    assert_true(pt_config_fails_with(opts, "timestamp_tolerance_s"));
    /* The error names the line of the offending option. */
    snprintf(opts, sizeof(opts), "[source.p]\nprovider = postal\n\npublic_key_file = %s\n", junk);
    assert_true(pt_config_fails_with(opts, ":4:"));
    pt_remove(shortkey);
    pt_remove(junk);
    pt_remove(badjson);
    pt_remove(nokeys);
    pt_remove(badn);
}

/* MessageLinkClicked keeps the link token; MessageBounced says which bounce message. */
static void test_click_token_and_bounce_message(void **state)
{
    (void)state;
    json_t *ev = pt_parse_one(
        "postal", "{\"event\":\"MessageLinkClicked\",\"timestamp\":1477945177.1,\"uuid\":\"u1\","
                  "\"payload\":{\"url\":\"https://atech.media\",\"token\":\"VJzsFA0S\",\"message\":"
                  "{\"id\":1,\"token\":\"t\",\"direction\":\"outgoing\",\"to\":\"a@x.org\"}}}");
    assert_string_equal(pt_str(ev, "click", "token"), "VJzsFA0S");
    json_decref(ev);
    ev = pt_parse_one(
        "postal", "{\"event\":\"MessageBounced\",\"timestamp\":1477945177.1,\"uuid\":\"u2\","
                  "\"payload\":{\"original_message\":{\"id\":1,\"token\":\"t\",\"direction\":"
                  "\"outgoing\",\"to\":\"a@x.org\"},\"bounce\":{\"id\":2,\"message_id\":\"m@b\","
                  "\"subject\":\"Delivery Error\",\"tag\":null}}}");
    json_t *bm = json_object_get(json_object_get(ev, "metadata"), "bounce_message");
    assert_int_equal(json_integer_value(json_object_get(bm, "id")), 2);
    assert_string_equal(json_string_value(json_object_get(bm, "message_id")), "m@b");
    assert_string_equal(json_string_value(json_object_get(bm, "subject")), "Delivery Error");
    assert_string_equal(pt_str(ev, "bounce", "class"), "hard");
    assert_null(json_object_get(json_object_get(ev, "bounce"), "provider_type")); /* Postal: none */
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_matches_fixture),
        cmocka_unit_test(test_sha256_and_sha1),
        cmocka_unit_test(test_key_encodings),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_tampered_body),
        cmocka_unit_test(test_missing_or_garbled_header),
        cmocka_unit_test(test_sha1_can_be_refused),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_jwks_and_kid),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_sign_restamps_stale_body),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_click_token_and_bounce_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
