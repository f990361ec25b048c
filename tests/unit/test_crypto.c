/*
 * test_crypto.c — HMAC against RFC 4231's test vectors, hex/base64 round trips,
 * constant-time comparison, and mh_verify_hmac_any with rotated secrets.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mailhook/config.h"
#include "mailhook/crypto.h"
#include "mailhook/verify.h"

struct rfc4231_case {
    const char *key_hex;
    const char *data_hex;
    const char *sha256_hex;
    size_t truncate; /* case 5 compares only the first 128 bits */
};

/* RFC 4231 section 4, test cases 1-7 (HMAC-SHA-256 column). */
static const struct rfc4231_case cases[] = {
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
     "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 0},
    {"4a656665",
     "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 0},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
     "dddddddddddd",
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 0},
    {"0102030405060708090a0b0c0d0e0f10111213141516171819",
     "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
     "cdcdcdcdcdcd",
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 0},
    {"0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c",
     "546573742057697468205472756e636174696f6e",
     "a3b6167473100ee06e0c796c2955552b", 16},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368"
     "204b6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 0},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a"
     "65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865"
     "206b6579206e6565647320746f20626520686173686564206265666f7265206265696e672075736564206279"
     "2074686520484d414320616c676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 0},
};

static void test_rfc4231(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char key[256], data[512], mac[MH_MAX_MD];
        char hex[2 * MH_MAX_MD + 1];
        ssize_t klen = mh_hex_decode(cases[i].key_hex, strlen(cases[i].key_hex), key, sizeof(key));
        ssize_t dlen =
            mh_hex_decode(cases[i].data_hex, strlen(cases[i].data_hex), data, sizeof(data));
        assert_true(klen > 0);
        assert_true(dlen > 0);
        struct mh_buf part = {data, (size_t)dlen};
        int n = mh_hmac("sha256", key, (size_t)klen, &part, 1, mac);
        assert_int_equal(n, 32);
        size_t cmp = cases[i].truncate ? cases[i].truncate : 32;
        mh_hex_encode(mac, cmp, hex);
        assert_string_equal(hex, cases[i].sha256_hex);
    }
}

static void test_hmac_split_parts(void **state)
{
    (void)state;
    /* Test case 2 with its message in three parts gives the same MAC. */
    unsigned char a[MH_MAX_MD], b[MH_MAX_MD];
    const char *msg = "what do ya want for nothing?";
    struct mh_buf whole = {msg, strlen(msg)};
    struct mh_buf parts[] = {{msg, 4}, {msg + 4, 10}, {msg + 14, strlen(msg) - 14}};
    assert_int_equal(mh_hmac("sha256", "Jefe", 4, &whole, 1, a), 32);
    assert_int_equal(mh_hmac("sha256", "Jefe", 4, parts, 3, b), 32);
    assert_memory_equal(a, b, 32);
    assert_int_equal(mh_hmac("no-such-digest", "Jefe", 4, &whole, 1, a), -1);
}

/* RFC 4231 test case 2 ("Jefe") with each digest, and with an empty key. */
static const char *jefe_mac(const char *md)
{
    if (!strcmp(md, "sha256"))
        return "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    if (!strcmp(md, "sha512"))
        return "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
               "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";
    return "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"; /* sha1 */
}

static void check_jefe(const char *md, const char *key, size_t keylen, const char *want)
{
    const char *msg = "what do ya want for nothing?";
    struct mh_buf part = {msg, strlen(msg)};
    unsigned char mac[MH_MAX_MD];
    char hex[2 * MH_MAX_MD + 1];
    int n = mh_hmac(md, key, keylen, &part, 1, mac);
    assert_true(n > 0);
    mh_hex_encode(mac, (size_t)n, hex);
    assert_string_equal(hex, want);
}

/* Each thread reuses one keyed context: a change of key, of digest, or of key length
 * with a common prefix must never give a MAC of the previous key. */
static void test_hmac_reused_context(void **state)
{
    (void)state;
    /* HMAC-SHA256 of the message with the key "Jef" (a prefix of "Jefe") and with the
     * empty key (Python's hmac module). */
    const char *jef = "89630a7f7bb95aced9efa60255f18a10e7d378665751be11dd40bb9594158c29";
    const char *empty = "76d9e7194e7dbc3aa00bbe8ffb9f6fcb5a932170f971f948bb2ab61607d2b9d6";
    const char *msg = "what do ya want for nothing?";
    struct mh_buf part = {msg, strlen(msg)};
    unsigned char mac[MH_MAX_MD];
    for (int round = 0; round < 3; round++) {
        check_jefe("sha256", "Jefe", 4, jefe_mac("sha256"));
        check_jefe("sha256", "Jefe", 4, jefe_mac("sha256"));
        check_jefe("sha512", "Jefe", 4, jefe_mac("sha512"));
        check_jefe("sha1", "Jefe", 4, jefe_mac("sha1"));
        check_jefe("sha256", "Jefe", 3, jef);
        check_jefe("sha256", "Jefe", 4, jefe_mac("sha256"));
        check_jefe("sha256", "", 0, empty);
        check_jefe("sha256", NULL, 0, empty);
        check_jefe("sha256", "Jefe", 4, jefe_mac("sha256"));
        /* An unknown digest fails and leaves the next MAC right. */
        assert_int_equal(mh_hmac("no-such-digest", "Jefe", 4, &part, 1, mac), -1);
        check_jefe("sha256", "Jefe", 4, jefe_mac("sha256"));
    }
}

struct hmac_thread {
    const char *md;
    int failures;
};

static void *hmac_thread_main(void *arg)
{
    struct hmac_thread *t = arg;
    const char *msg = "what do ya want for nothing?";
    struct mh_buf part = {msg, strlen(msg)};
    for (int i = 0; i < 2000; i++) {
        unsigned char mac[MH_MAX_MD];
        char hex[2 * MH_MAX_MD + 1];
        int n = mh_hmac(t->md, "Jefe", 4, &part, 1, mac);
        if (n <= 0) {
            t->failures++;
            continue;
        }
        mh_hex_encode(mac, (size_t)n, hex);
        if (strcmp(hex, jefe_mac(t->md))) t->failures++;
    }
    return NULL;
}

/* Threads with different digests at once: each has its own context. */
static void test_hmac_threads(void **state)
{
    (void)state;
    struct hmac_thread t[3] = {{"sha256", 0}, {"sha512", 0}, {"sha1", 0}};
    pthread_t tid[3];
    for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&tid[i], NULL, hmac_thread_main, &t[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(t[i].failures, 0);
    }
}

static void test_hex_base64(void **state)
{
    (void)state;
    unsigned char out[64];
    char text[128];
    assert_int_equal(mh_hex_decode("DEADbeef", 8, out, sizeof(out)), 4);
    mh_hex_encode(out, 4, text);
    assert_string_equal(text, "deadbeef");
    assert_int_equal(mh_hex_decode("abc", 3, out, sizeof(out)), -1);
    assert_int_equal(mh_hex_decode("zz", 2, out, sizeof(out)), -1);
    assert_int_equal(mh_hex_decode("de:ad", 5, out, sizeof(out)), -1);

    size_t n = mh_b64_encode((const unsigned char *)"hello?>", 7, text);
    text[n] = '\0';
    assert_string_equal(text, "aGVsbG8/Pg==");
    assert_int_equal(mh_b64_decode("aGVsbG8/Pg==", 12, out, sizeof(out)), 7);
    assert_memory_equal(out, "hello?>", 7);
    /* URL-safe alphabet, no padding, surrounding white space. */
    assert_int_equal(mh_b64_decode(" aGVsbG8_Pg\n", 12, out, sizeof(out)), 7);
    assert_memory_equal(out, "hello?>", 7);
    assert_int_equal(mh_b64_decode("a$b=", 4, out, sizeof(out)), -1);
    assert_int_equal(mh_b64_decode("aGVsbG8/Pg==", 12, out, 3), -1);
}

/* FIPS 180-2's "abc", whole and in parts, as bytes and as hex. */
static void test_sha256_parts(void **state)
{
    (void)state;
    static const char *want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const struct mh_buf whole = {"abc", 3};
    const struct mh_buf parts[] = {{"a", 1}, {"", 0}, {"bc", 2}};
    unsigned char a[32], b[32];
    char hex[65];
    mh_sha256(&whole, 1, a);
    mh_sha256(parts, 3, b);
    assert_memory_equal(a, b, 32);
    mh_hex_encode(a, 32, hex);
    assert_string_equal(hex, want);
    mh_sha256_hex(parts, 3, hex);
    assert_string_equal(hex, want);
}

static void test_ct_equal(void **state)
{
    (void)state;
    assert_true(mh_ct_equal("abc", 3, "abc", 3));
    assert_false(mh_ct_equal("abc", 3, "abd", 3));
    assert_false(mh_ct_equal("abc", 3, "abcd", 4));
}

static struct mh_config *load(const char *text)
{
    char path[] = "/tmp/mh-test-crypto-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[512];
    struct mh_config *cfg = mh_config_load(path, err, sizeof(err));
    unlink(path);
    if (!cfg) fail_msg("config: %s", err);
    return cfg;
}

static void test_verify_rotation(void **state)
{
    (void)state;
    struct mh_config *cfg = load("[source.s]\nprovider = ivymail\nsecret = old-secret\n"
                                 "secret = new-secret\n");
    struct mh_source *src = mh_config_source(cfg, "s");
    const char *body = "{\"event\":\"delivered\"}";
    struct mh_buf part = {body, strlen(body)};
    unsigned char mac[MH_MAX_MD];
    char hex[2 * MH_MAX_MD + 1], b64[2 * MH_MAX_MD + 1];

    /* Signed with the second secret: still valid while both are active. */
    int n = mh_hmac("sha256", "new-secret", 10, &part, 1, mac);
    mh_hex_encode(mac, (size_t)n, hex);
    b64[mh_b64_encode(mac, (size_t)n, b64)] = '\0';
    assert_true(mh_verify_hmac_any(src, "sha256", &part, 1, hex, MH_SIG_HEX));
    assert_true(mh_verify_hmac_any(src, "sha256", &part, 1, b64, MH_SIG_BASE64));
    /* Wrong key. */
    n = mh_hmac("sha256", "other", 5, &part, 1, mac);
    mh_hex_encode(mac, (size_t)n, hex);
    assert_false(mh_verify_hmac_any(src, "sha256", &part, 1, hex, MH_SIG_HEX));
    /* Tampered body. */
    n = mh_hmac("sha256", "old-secret", 10, &part, 1, mac);
    mh_hex_encode(mac, (size_t)n, hex);
    assert_true(mh_verify_hmac_any(src, "sha256", &part, 1, hex, MH_SIG_HEX));
    struct mh_buf tampered = {"{\"event\":\"delivereD\"}", strlen(body)};
    assert_false(mh_verify_hmac_any(src, "sha256", &tampered, 1, hex, MH_SIG_HEX));
    /* Truncated, empty and missing signatures. */
    hex[20] = '\0';
    assert_false(mh_verify_hmac_any(src, "sha256", &part, 1, hex, MH_SIG_HEX));
    assert_false(mh_verify_hmac_any(src, "sha256", &part, 1, "", MH_SIG_HEX));
    assert_false(mh_verify_hmac_any(src, "sha256", &part, 1, NULL, MH_SIG_HEX));
    mh_config_free(cfg);
}

static void test_timestamp_window(void **state)
{
    (void)state;
    assert_true(mh_verify_timestamp(1000000, 1000000 + 299000, 300));
    assert_true(mh_verify_timestamp(1000000 + 300000, 1000000, 300));
    assert_false(mh_verify_timestamp(1000000, 1000000 + 301000, 300));
    assert_true(mh_verify_timestamp(0, 1000000000, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4231),        cmocka_unit_test(test_hmac_split_parts),
        cmocka_unit_test(test_hmac_reused_context), cmocka_unit_test(test_hmac_threads),
        cmocka_unit_test(test_hex_base64),     cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_sha256_parts),
        cmocka_unit_test(test_verify_rotation), cmocka_unit_test(test_timestamp_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
