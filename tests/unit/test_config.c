/*
 * test_config.c — the config loader: defaults, sources and secrets, environment
 * overrides, and that every bad file fails with file, line and the problem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mailhook/config.h"
#include "mailhook/provider.h"

static char path[64];

static void write_file(const char *p, const char *text)
{
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static struct mh_config *load_text(const char *text, char *err, size_t errlen)
{
    snprintf(path, sizeof(path), "/tmp/mh-test-config-%d.ini", (int)getpid());
    write_file(path, text);
    struct mh_config *cfg = mh_config_load(path, err, errlen);
    unlink(path);
    return cfg;
}

/* Asserts that text fails to load with "<path>:<line>: ...<needle>...". */
static void expect_error(const char *text, int line, const char *needle)
{
    char err[1024] = "", prefix[128];
    struct mh_config *cfg = load_text(text, err, sizeof(err));
    if (cfg) {
        mh_config_free(cfg);
        fail_msg("expected an error containing \"%s\"", needle);
    }
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
    if (!strstr(err, needle)) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[512];
    unsetenv("MAILHOOK_KAFKA_BROKERS");
    unsetenv("MAILHOOK_PG_DSN");
    struct mh_config *cfg = load_text("; empty but valid\n", err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->ingest.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->ingest.ack_deadline_ms, 5000);
    assert_int_equal(cfg->ingest.request_deadline_ms, 30000);
    assert_string_equal(cfg->ingest.raw_topic, "mailhook.raw");
    assert_string_equal(cfg->worker.raw_topic, "mailhook.raw");
    assert_string_equal(cfg->worker.events_topic, "mailhook.events");
    assert_int_equal(cfg->worker.replication_factor, -1);
    assert_int_equal(cfg->worker.min_insync_replicas, 0);
    assert_int_equal(cfg->worker.batch_size, 1000);
    assert_int_equal(cfg->worker.batch_max_bytes, 4194304);
    assert_int_equal(cfg->worker.batch_max_events, 2000);
    assert_int_equal(cfg->worker.claim_lanes, 2);
    assert_int_equal(cfg->n_sources, 0);
    assert_string_equal(cfg->api.listen, "127.0.0.1:8081");
    assert_int_equal(cfg->api.db_connections, 4);
    assert_true(mh_config_kafka_has_brokers(cfg));
    mh_config_free(cfg);
}

static void test_sources_and_secrets(void **state)
{
    (void)state;
    char err[512], secret_file[64];
    snprintf(secret_file, sizeof(secret_file), "/tmp/mh-test-secret-%d", (int)getpid());
    write_file(secret_file, "from-file\n");
    setenv("MH_TEST_SECRET", "from-env", 1);
    char text[1024];
    snprintf(text, sizeof(text),
             "[ingest]\nlisten = 0.0.0.0:9999\nack_deadline_ms = 2500\n"
             "[kafka]\nbootstrap.servers = k1:9092\nlinger.ms = 5\n"
             "[source.ivy]\nprovider = ivymail\ntenant = acme\nsecret = inline\n"
             "secret_env = MH_TEST_SECRET\nsecret_file = %s\n"
             "[source.dog]\nprovider = hmac\nheader = X-Dog-Sig\nencoding = base64\n"
             "secret = s\nenabled = false\n",
             secret_file);
    struct mh_config *cfg = load_text(text, err, sizeof(err));
    unlink(secret_file);
    if (!cfg) fail_msg("%s", err);
    assert_string_equal(cfg->ingest.listen, "0.0.0.0:9999");
    assert_int_equal(cfg->ingest.ack_deadline_ms, 2500);
    struct mh_source *ivy = mh_config_source(cfg, "ivy");
    assert_non_null(ivy);
    assert_string_equal(ivy->provider->name, "ivymail");
    assert_string_equal(ivy->tenant, "acme");
    assert_int_equal(ivy->n_secrets, 3);
    assert_string_equal(ivy->secrets[0], "inline");
    assert_string_equal(ivy->secrets[1], "from-env");
    assert_string_equal(ivy->secrets[2], "from-file");
    assert_true(ivy->enabled);
    struct mh_source *dog = mh_config_source(cfg, "dog");
    assert_non_null(dog);
    assert_false(dog->enabled);
    assert_string_equal(dog->tenant, "default");
    assert_string_equal(mh_source_opt(dog, "header"), "X-Dog-Sig");
    /* The signature header is forwarded onto raw records, lower-cased. */
    int found = 0;
    for (size_t i = 0; i < dog->n_forward; i++)
        if (!strcmp(dog->forward_headers[i], "x-dog-sig")) found = 1;
    assert_true(found);
    assert_null(mh_config_source(cfg, "nope"));
    mh_config_free(cfg);
}

static void test_env_overrides(void **state)
{
    (void)state;
    char err[512];
    setenv("MAILHOOK_KAFKA_BROKERS", "envbroker:1234", 1);
    setenv("MAILHOOK_PG_DSN", "postgresql://env@db/x", 1);
    struct mh_config *cfg = load_text("[kafka]\nbootstrap.servers = file:9092\n"
                                      "[postgres]\ndsn = postgresql://file@db/y\n",
                                      err, sizeof(err));
    unsetenv("MAILHOOK_KAFKA_BROKERS");
    unsetenv("MAILHOOK_PG_DSN");
    assert_non_null(cfg);
    assert_string_equal(cfg->postgres.dsn, "postgresql://env@db/x");
    const char *brokers = NULL;
    for (struct mh_kv *kv = cfg->kafka; kv; kv = kv->next)
        if (!strcmp(kv->key, "bootstrap.servers")) brokers = kv->value;
    assert_string_equal(brokers, "envbroker:1234");
    mh_config_free(cfg);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_error("[ingest]\nlisten = x:1\nlisen = y\n", 3, "unknown key \"lisen\"");
    expect_error("[ingest]\n\n[nosuch]\nkey = 1\n", 3, "unknown section [nosuch]");
    expect_error("[worker]\nbatch_size = lots\n", 2, "not a whole number");
    expect_error("[worker]\nbatch_size = 0\n", 2, "outside 1..100000");
    expect_error("[worker]\nbatch_max_bytes = 100\n", 2,
                 "[worker] batch_max_bytes: 100 is outside 1024..1073741824");
    expect_error("[worker]\nbatch_max_events = 0\n", 2,
                 "[worker] batch_max_events: 0 is outside 1..10000000");
    expect_error("[worker]\nclaim_lanes = 65\n", 2, "[worker] claim_lanes: 65 is outside 1..64");
    expect_error("[api]\ntoken = t\ndb_connections = 0\n", 3, "outside 1..64");
    expect_error("[ingest]\nlisten = x:1\nrequest_deadline_ms = 50\n", 3,
                 "[ingest] request_deadline_ms: 50 is outside 100..600000");
    expect_error("[ingest]\nthis line is not ini\n", 2, "syntax error");
    expect_error("[source.a]\nprovider = nosuchprovider\n", 2, "unknown provider");
    expect_error("[ingest]\n\n[source.a]\ntenant = t\nsecret = x\n", 3, "missing \"provider\"");
    expect_error("[source.a]\nprovider = ivymail\n", 1, "needs a secret");
    expect_error("[source.a]\nprovider = ivymail\nsecret = s\nheader = x\n", 4,
                 "unknown key \"header\" for provider ivymail");
    expect_error("[source.a]\nprovider = hmac\nsecret = s\nencoding = rot13\n", 4,
                 "encoding: expected hex or base64");
    expect_error("[source.a]\nprovider = ivymail\nsecret_env = MH_TEST_UNSET_VAR\n", 3,
                 "MH_TEST_UNSET_VAR is not set");
    expect_error("[source.a]\nprovider = ivymail\nsecret_file = /nonexistent/secret\n", 3,
                 "cannot read /nonexistent/secret");
    expect_error("[source.a]\nprovider = ivymail\nsecret = s\nenabled = maybe\n", 4,
                 "expected true or false");
    expect_error("[source.bad/name]\nprovider = ivymail\n", 1, "source names");
    expect_error("[worker]\nreplication_factor = 0\n", 2, "0 replicas");
    expect_error("[worker]\nreplication_factor = 2\nmin_insync_replicas = 3\n", 3,
                 "min_insync_replicas 3 is more than replication_factor 2");
}

static void test_replication_keys(void **state)
{
    (void)state;
    char err[512];
    struct mh_config *cfg = load_text(
        "[worker]\nreplication_factor = 3\nmin_insync_replicas = 2\n", err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->worker.replication_factor, 3);
    assert_int_equal(cfg->worker.min_insync_replicas, 2);
    mh_config_free(cfg);
    /* The broker's replication factor, stated minimum: nothing to compare it with. */
    cfg = load_text("[worker]\nmin_insync_replicas = 2\n", err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->worker.replication_factor, -1);
    mh_config_free(cfg);
}

static void test_errors_never_echo_secrets(void **state)
{
    (void)state;
    char err[1024] = "";
    struct mh_config *cfg = load_text("[source.a]\nprovider = hmac\nsecret = TOPSECRETVALUE\n"
                                      "algorithm = md5\n",
                                      err, sizeof(err));
    assert_null(cfg);
    assert_non_null(strstr(err, "algorithm"));
    assert_null(strstr(err, "TOPSECRETVALUE"));
}

/* quarantine is a source key of every provider, off by default; its bounds are [ingest]'s. */
static void test_quarantine_keys(void **state)
{
    (void)state;
    char err[1024] = "";
    struct mh_config *cfg = load_text("[ingest]\nquarantine_rate = 5\nquarantine_burst = 20\n"
                                      "[source.on]\nprovider = ivymail\nsecret = s\n"
                                      "quarantine = true\n"
                                      "[source.off]\nprovider = hmac\nsecret = s\n",
                                      err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(mh_config_source(cfg, "on")->quarantine, 1);
    assert_int_equal(mh_config_source(cfg, "off")->quarantine, 0);
    assert_null(mh_source_opt(mh_config_source(cfg, "on"), "quarantine"));
    assert_string_equal(cfg->ingest.quarantine_topic, "mailhook.quarantine");
    assert_int_equal(cfg->ingest.quarantine_max_bytes, 1048576);
    assert_int_equal(cfg->ingest.quarantine_rate, 5);
    assert_int_equal(cfg->ingest.quarantine_burst, 20);
    mh_config_free(cfg);
    expect_error("[source.a]\nprovider = ivymail\nsecret = s\nquarantine = maybe\n", 4,
                 "quarantine: expected true or false");
    expect_error("[ingest]\nquarantine_rate = 0\n", 2, "outside 1..100000");
    expect_error("[ingest]\nquarantine_max_bytes = -1\n", 2, "outside 1..67108864");
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[512];
    assert_null(mh_config_load("/nonexistent/mailhook.ini", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/mailhook.ini: cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sources_and_secrets),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_errors_never_echo_secrets),
        cmocka_unit_test(test_quarantine_keys),
        cmocka_unit_test(test_replication_keys),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
