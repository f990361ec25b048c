/*
 * test_kafka_conf.c — how a client's librdkafka settings are made from [kafka]: a
 * client's defaults apply only where [kafka] says nothing (under any of librdkafka's
 * names for the setting), and the settings a client forces win over both.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mailhook/config.h"
#include "mailhook/kafka.h"

/* A config whose [kafka] section holds the given pairs (NULL-terminated). */
static struct mh_config *config_with(struct mh_kv *kvs, const char *const *pairs)
{
    static struct mh_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.path = "test.ini";
    size_t n = 0;
    for (const char *const *p = pairs; p && p[0]; p += 2, n++) {
        kvs[n] = (struct mh_kv){.key = (char *)p[0], .value = (char *)p[1], .line = (int)n + 1};
        if (n > 0) kvs[n - 1].next = &kvs[n];
    }
    cfg.kafka = n ? kvs : NULL;
    return &cfg;
}

static void expect_setting(rd_kafka_conf_t *conf, const char *key, const char *want)
{
    char got[64];
    size_t sz = sizeof(got);
    assert_int_equal(rd_kafka_conf_get(conf, key, got, &sz), RD_KAFKA_CONF_OK);
    assert_string_equal(got, want);
}

static const char *const ingest_like_defaults[] = {"linger.ms", "2", NULL};
static const char *const forced[] = {"acks", "all", NULL};

static void test_default_applies_when_kafka_is_silent(void **state)
{
    (void)state;
    struct mh_kv kvs[4];
    const char *const kafka[] = {"bootstrap.servers", "k1:9092", NULL};
    char err[256] = "";
    rd_kafka_conf_t *conf =
        mh_kafka_conf_defaults(config_with(kvs, kafka), ingest_like_defaults, forced, err,
                               sizeof(err));
    assert_non_null(conf);
    expect_setting(conf, "linger.ms", "2");
    expect_setting(conf, "queue.buffering.max.ms", "2");
    expect_setting(conf, "bootstrap.servers", "k1:9092");
    rd_kafka_conf_destroy(conf);
}

static void test_kafka_setting_wins_over_the_default(void **state)
{
    (void)state;
    struct mh_kv kvs[4];
    const char *const kafka[] = {"linger.ms", "0", NULL};
    char err[256] = "";
    rd_kafka_conf_t *conf = mh_kafka_conf_defaults(config_with(kvs, kafka), ingest_like_defaults,
                                                   forced, err, sizeof(err));
    assert_non_null(conf);
    expect_setting(conf, "linger.ms", "0");
    rd_kafka_conf_destroy(conf);
}

static void test_kafka_alias_wins_over_the_default(void **state)
{
    (void)state;
    struct mh_kv kvs[4];
    const char *const kafka[] = {"queue.buffering.max.ms", "7.5", NULL};
    char err[256] = "";
    rd_kafka_conf_t *conf = mh_kafka_conf_defaults(config_with(kvs, kafka), ingest_like_defaults,
                                                   forced, err, sizeof(err));
    assert_non_null(conf);
    expect_setting(conf, "linger.ms", "7.5");
    rd_kafka_conf_destroy(conf);
}

static void test_forced_setting_wins_over_kafka_and_defaults(void **state)
{
    (void)state;
    struct mh_kv kvs[4];
    const char *const kafka[] = {"acks", "1", NULL};
    const char *const defaults[] = {"acks", "0", NULL};
    char err[256] = "";
    rd_kafka_conf_t *conf =
        mh_kafka_conf_defaults(config_with(kvs, kafka), defaults, forced, err, sizeof(err));
    assert_non_null(conf);
    expect_setting(conf, "acks", "-1"); /* librdkafka's spelling of all */
    rd_kafka_conf_destroy(conf);
}

static void test_without_defaults_librdkafka_decides(void **state)
{
    (void)state;
    struct mh_kv kvs[4];
    char err[256] = "";
    rd_kafka_conf_t *conf = mh_kafka_conf(config_with(kvs, NULL), NULL, err, sizeof(err));
    assert_non_null(conf);
    expect_setting(conf, "linger.ms", "5"); /* librdkafka's own default */
    rd_kafka_conf_destroy(conf);
}

static void test_bad_kafka_value_names_the_line(void **state)
{
    (void)state;
    struct mh_kv kvs[4];
    const char *const kafka[] = {"bootstrap.servers", "k1:9092", "linger.ms", "soon", NULL};
    char err[256] = "";
    rd_kafka_conf_t *conf = mh_kafka_conf_defaults(config_with(kvs, kafka), ingest_like_defaults,
                                                   forced, err, sizeof(err));
    assert_null(conf);
    assert_non_null(strstr(err, "test.ini:2: [kafka]"));
}

/* A setting's value for a log line, and "?" for a key librdkafka does not know. */
static void test_setting_for_a_log_line(void **state)
{
    (void)state;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char buf[32];
    assert_int_equal(rd_kafka_conf_set(conf, "linger.ms", "7", NULL, 0), RD_KAFKA_CONF_OK);
    assert_string_equal(mh_kafka_setting(conf, "linger.ms", buf, sizeof(buf)), "7");
    assert_string_equal(mh_kafka_setting(conf, "no.such.setting", buf, sizeof(buf)), "?");
    rd_kafka_conf_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_applies_when_kafka_is_silent),
        cmocka_unit_test(test_kafka_setting_wins_over_the_default),
        cmocka_unit_test(test_kafka_alias_wins_over_the_default),
        cmocka_unit_test(test_forced_setting_wins_over_kafka_and_defaults),
        cmocka_unit_test(test_without_defaults_librdkafka_decides),
        cmocka_unit_test(test_bad_kafka_value_names_the_line),
        cmocka_unit_test(test_setting_for_a_log_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
