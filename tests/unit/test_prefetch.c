/*
 * test_prefetch.c — the worker consumer's read-ahead: about a second of work whatever
 * the batch size, at least two batches, within librdkafka's range, and a [kafka]
 * setting replaces it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mailhook/config.h"
#include "mailhook/kafka.h"
#include "prefetch.h"

static void expect_setting(rd_kafka_conf_t *conf, const char *key, const char *want)
{
    char got[64];
    size_t sz = sizeof(got);
    assert_int_equal(rd_kafka_conf_get(conf, key, got, &sz), RD_KAFKA_CONF_OK);
    assert_string_equal(got, want);
}

static void test_default_batches_read_ahead_the_floor(void **state)
{
    (void)state;
    struct prefetch_defaults d;
    prefetch_defaults(&d, 500);
    assert_string_equal(d.pairs[0], "queued.min.messages");
    assert_int_equal(atol(d.pairs[1]), MH_PREFETCH_MIN_RECORDS);
    assert_string_equal(d.pairs[2], "queued.max.messages.kbytes");
    assert_int_equal(atol(d.pairs[3]), MH_PREFETCH_MAX_KBYTES);
    assert_null(d.pairs[4]);
    /* The bound is well under librdkafka's own defaults (100000 records, 64 MiB). */
    assert_true(MH_PREFETCH_MIN_RECORDS < 100000);
    assert_true(MH_PREFETCH_MAX_KBYTES < 65536);
}

static void test_large_batches_read_ahead_two_of_them(void **state)
{
    (void)state;
    struct prefetch_defaults d;
    prefetch_defaults(&d, MH_PREFETCH_MIN_RECORDS / 2);
    assert_int_equal(atol(d.pairs[1]), MH_PREFETCH_MIN_RECORDS);
    prefetch_defaults(&d, MH_PREFETCH_MIN_RECORDS / 2 + 1);
    assert_int_equal(atol(d.pairs[1]), MH_PREFETCH_MIN_RECORDS + 2);
    prefetch_defaults(&d, 100000);
    assert_int_equal(atol(d.pairs[1]), 200000);
    prefetch_defaults(&d, 9000000);
    assert_int_equal(atol(d.pairs[1]), 10000000);
}

/* The defaults make a valid consumer configuration, and [kafka] replaces either. */
static void test_kafka_setting_replaces_the_read_ahead(void **state)
{
    (void)state;
    static struct mh_config cfg;
    struct mh_kv kv = {.key = "queued.min.messages", .value = "5000", .line = 3};
    cfg.path = "worker.ini";
    char err[256] = "";
    struct prefetch_defaults d;
    prefetch_defaults(&d, 2000);

    cfg.kafka = NULL;
    rd_kafka_conf_t *conf = mh_kafka_conf_defaults(&cfg, d.pairs, NULL, err, sizeof(err));
    assert_non_null(conf);
    expect_setting(conf, "queued.min.messages", "20000");
    expect_setting(conf, "queued.max.messages.kbytes", "32768");
    rd_kafka_conf_destroy(conf);

    cfg.kafka = &kv;
    conf = mh_kafka_conf_defaults(&cfg, d.pairs, NULL, err, sizeof(err));
    assert_non_null(conf);
    expect_setting(conf, "queued.min.messages", "5000");
    expect_setting(conf, "queued.max.messages.kbytes", "32768");
    rd_kafka_conf_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_batches_read_ahead_the_floor),
        cmocka_unit_test(test_large_batches_read_ahead_two_of_them),
        cmocka_unit_test(test_kafka_setting_replaces_the_read_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
