/*
 * test_api_console.c — the pure parts of mailhook-api's console endpoints: the ring of
 * scraped samples and counter increases (api/ring.c), quantiles from histogram buckets,
 * POST /v1/dlq/replays's body (api/replay_body.c) and GET /v1/dlq's cursor
 * (api/dlq_cursor.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dlq_cursor.h"
#include "replay_body.h"
#include "ring.h"

/* ---- ring ----------------------------------------------------------------------------- */

static void test_ring_keeps_the_newest_in_order(void **state)
{
    (void)state;
    struct src_ring r;
    src_ring_init(&r, 3);
    for (int i = 1; i <= 5; i++) {
        struct src_sample s = {.t = i};
        s.codes[1] = i * 10;
        src_ring_push(&r, &s);
        assert_int_equal(r.n, i < 3 ? i : 3);
    }
    assert_int_equal(src_ring_get(&r, 0)->t, 3);
    assert_int_equal(src_ring_get(&r, 1)->t, 4);
    assert_int_equal(src_ring_get(&r, 2)->t, 5);
    assert_true(src_ring_get(&r, 2)->codes[1] == 50);
    src_ring_free(&r);
}

static void test_ring_before_it_is_full(void **state)
{
    (void)state;
    struct src_ring r;
    src_ring_init(&r, 4);
    struct src_sample s = {.t = 7};
    src_ring_push(&r, &s);
    assert_int_equal(r.n, 1);
    assert_int_equal(src_ring_get(&r, 0)->t, 7);
    src_ring_free(&r);
}

static void test_counter_delta_survives_a_reset(void **state)
{
    (void)state;
    assert_true(counter_delta(10, 15) == 5);
    assert_true(counter_delta(10, 10) == 0);
    assert_true(counter_delta(10, 3) == 3); /* restarted: counts from zero */
}

/* ---- quantiles -------------------------------------------------------------------------- */

static const double bounds[3] = {0.1, 0.5, 1.0};

static void test_quantile_interpolates_inside_its_bucket(void **state)
{
    (void)state;
    double counts[4] = {0, 10, 0, 0}; /* all ten in (0.1, 0.5] */
    assert_float_equal(hist_quantile(counts, bounds, 4, 0.5), 0.3, 1e-9);
    assert_float_equal(hist_quantile(counts, bounds, 4, 1.0), 0.5, 1e-9);
    double spread[4] = {50, 49, 1, 0}; /* p50 at the top of the first bucket */
    assert_float_equal(hist_quantile(spread, bounds, 4, 0.5), 0.1, 1e-9);
    assert_float_equal(hist_quantile(spread, bounds, 4, 0.99), 0.5, 1e-9);
    assert_float_equal(hist_quantile(spread, bounds, 4, 0.995), 0.75, 1e-9);
}

static void test_quantile_of_nothing_and_of_the_inf_bucket(void **state)
{
    (void)state;
    double none[4] = {0, 0, 0, 0};
    assert_true(hist_quantile(none, bounds, 4, 0.5) < 0);
    double slow[4] = {1, 0, 0, 9}; /* beyond every bound: the largest finite one */
    assert_float_equal(hist_quantile(slow, bounds, 4, 0.99), 1.0, 1e-9);
    assert_float_equal(hist_quantile(slow, bounds, 4, 0.05), 0.05, 1e-9);
}

/* ---- POST /v1/dlq/replays's body -------------------------------------------------------- */

/* Parses text; returns the error ("" when it parsed) and the range. */
static const char *body(const char *text, char **from, char **until, long long *total)
{
    static char err[256];
    err[0] = '\0';
    json_t *b = json_loads(text, 0, NULL);
    assert_non_null(b);
    const char *topic;
    int64_t t = 0;
    int rc = replay_body_parse(b, from, until, &t, &topic, err, sizeof(err));
    *total = (long long)t;
    json_decref(b);
    if (rc == 0) return "";
    assert_true(err[0] != '\0');
    assert_null(*from);
    return err;
}

static void test_replay_body_covers_each_partition(void **state)
{
    (void)state;
    char *from = NULL, *until = NULL;
    long long total;
    assert_string_equal(body("{\"records\":[{\"partition\":2,\"offset\":40},{\"partition\":0,"
                             "\"offset\":7},{\"partition\":2,\"offset\":35}],"
                             "\"target_topic\":\"fixed.events\"}",
                             &from, &until, &total),
                        "");
    assert_string_equal(from, "0:7,2:35");
    assert_string_equal(until, "0:8,2:41");
    assert_int_equal(total, 1 + 6);
    free(from);
    free(until);
}

static void test_replay_body_mistakes_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"{\"records\":[],\"target_topic\":\"t\"}", "records"},
        {"{\"records\":[{\"partition\":0,\"offset\":1}]}", "target_topic"},
        {"{\"records\":[{\"partition\":0,\"offset\":1}],\"target_topic\":\"a b\"}", "target_topic"},
        {"{\"records\":[{\"partition\":0,\"offset\":1}],\"target_topic\":\"..\"}", "target_topic"},
        {"{\"records\":[{\"partition\":-1,\"offset\":1}],\"target_topic\":\"t\"}", "records[0]"},
        {"{\"records\":[{\"partition\":0,\"offset\":\"1\"}],\"target_topic\":\"t\"}", "records[0]"},
        {"{\"records\":[{\"partition\":0,\"offset\":1,\"x\":2}],\"target_topic\":\"t\"}",
         "records[0]"},
        {"{\"records\":[{\"partition\":0,\"offset\":1},7],\"target_topic\":\"t\"}", "records[1]"},
        {"{\"records\":[{\"partition\":0,\"offset\":1}],\"target_topic\":\"t\",\"yes\":true}",
         "unknown field \"yes\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *from = NULL, *until = NULL;
        long long total;
        const char *err = body(bad[i].text, &from, &until, &total);
        if (!strstr(err, bad[i].needle)) fail_msg("%s: %s", bad[i].text, err);
    }
}

/* ---- GET /v1/dlq's cursor ---------------------------------------------------------------- */

static void test_dlq_cursor(void **state)
{
    (void)state;
    struct dlq_cursor c;
    assert_int_equal(dlq_cursor_parse("0:15,3:0", &c), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(dlq_cursor_before(&c, 0), 15);
    assert_int_equal(dlq_cursor_before(&c, 3), 0);
    assert_int_equal(dlq_cursor_before(&c, 1), -1);
    static const char *const bad[] = {"", "0", "0:", ":1", "0:1,", "0:1,0:2", "a:1", "0:-1",
                                      "0:1;1:2", "0:99999999999999999999", " 0:1", NULL};
    for (const char *const *b = bad; *b; b++)
        if (dlq_cursor_parse(*b, &c) == 0) fail_msg("accepted \"%s\"", *b);
    assert_int_equal(dlq_cursor_parse(NULL, &c), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_keeps_the_newest_in_order),
        cmocka_unit_test(test_ring_before_it_is_full),
        cmocka_unit_test(test_counter_delta_survives_a_reset),
        cmocka_unit_test(test_quantile_interpolates_inside_its_bucket),
        cmocka_unit_test(test_quantile_of_nothing_and_of_the_inf_bucket),
        cmocka_unit_test(test_replay_body_covers_each_partition),
        cmocka_unit_test(test_replay_body_mistakes_are_refused),
        cmocka_unit_test(test_dlq_cursor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
