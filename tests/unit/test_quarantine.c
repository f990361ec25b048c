/*
 * test_quarantine.c — the quarantine record's request headers (a JSON array of
 * [name, value] pairs that round-trips, repeated names and all) and its rate limit (a
 * token bucket: a burst, then one token per 1/rate seconds, never more than the burst).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mailhook/quarantine.h"

static void test_headers_round_trip(void **state)
{
    (void)state;
    struct mh_headers h = {0}, back = {0};
    mh_headers_add(&h, "Content-Type", "application/json");
    mh_headers_add(&h, "X-Sig", "a\"b\\c\n\u00e9");
    mh_headers_add(&h, "x-sig", "second");
    mh_headers_add(&h, "Empty", "");
    char *text = mh_quarantine_headers_encode(&h);
    assert_string_equal(text, "[[\"Content-Type\",\"application/json\"],"
                              "[\"X-Sig\",\"a\\\"b\\\\c\\n\u00e9\"],[\"x-sig\",\"second\"],"
                              "[\"Empty\",\"\"]]");
    assert_int_equal(mh_quarantine_headers_decode(text, strlen(text), &back), 0);
    assert_int_equal(back.n, h.n);
    for (size_t i = 0; i < h.n; i++) {
        assert_string_equal(back.v[i].name, h.v[i].name);
        assert_string_equal(back.v[i].value, h.v[i].value);
    }
    free(text);
    mh_headers_clear(&h);
    mh_headers_clear(&back);
}

static void test_no_headers_is_an_empty_array(void **state)
{
    (void)state;
    struct mh_headers h = {0};
    char *text = mh_quarantine_headers_encode(&h);
    assert_string_equal(text, "[]");
    assert_int_equal(mh_quarantine_headers_decode(text, 2, &h), 0);
    assert_int_equal(h.n, 0);
    free(text);
}

static void test_decode_refuses_other_shapes(void **state)
{
    (void)state;
    const char *bad[] = {"", "{}", "[[\"a\"]]", "[[\"a\",1]]", "[[\"a\",\"b\",\"c\"]]",
                         "[\"a\"]", "[[\"a\",\"b\"]", NULL};
    for (const char **b = bad; *b; b++) {
        struct mh_headers h = {0};
        assert_int_equal(mh_quarantine_headers_decode(*b, strlen(*b), &h), -1);
        assert_int_equal(h.n, 0); /* nothing half-added */
    }
}

static int takes(struct mh_rate_limit *rl, long rate, long burst, int64_t now_us, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++) ok += mh_rate_limit_take(rl, rate, burst, now_us);
    return ok;
}

static void test_bucket_burst_then_rate(void **state)
{
    (void)state;
    struct mh_rate_limit rl = {0};
    const int64_t t0 = 1000000000; /* a monotonic clock far from 0 */
    assert_int_equal(takes(&rl, 2, 5, t0, 10), 5); /* a full bucket: the burst */
    assert_int_equal(takes(&rl, 2, 5, t0 + 400000, 1), 0); /* 0.4 s: no whole token */
    assert_int_equal(takes(&rl, 2, 5, t0 + 500000, 3), 1); /* 0.5 s at 2/s: one */
    assert_int_equal(takes(&rl, 2, 5, t0 + 1500000, 3), 2); /* 1 s more: two */
}

static void test_bucket_never_holds_more_than_burst(void **state)
{
    (void)state;
    struct mh_rate_limit rl = {0};
    const int64_t t0 = 5000000;
    assert_int_equal(takes(&rl, 10, 3, t0, 1), 1);
    /* An hour idle refills to the burst, not to 36000 tokens. */
    assert_int_equal(takes(&rl, 10, 3, t0 + 3600LL * 1000000, 10), 3);
}

static void test_bucket_follows_new_bounds(void **state)
{
    (void)state;
    struct mh_rate_limit rl = {0};
    const int64_t t0 = 7000000;
    assert_int_equal(takes(&rl, 1, 2, t0, 5), 2);
    /* A reload raising the burst lets more through at once; a rate limit of 0 or a
     * burst of 0 (never configured: the bounds forbid them) lets nothing through. */
    assert_int_equal(takes(&rl, 1, 4, t0, 5), 2);
    assert_int_equal(mh_rate_limit_take(&rl, 0, 4, t0 + 10000000), 0);
    assert_int_equal(mh_rate_limit_take(&rl, 1, 0, t0 + 10000000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_round_trip),
        cmocka_unit_test(test_no_headers_is_an_empty_array),
        cmocka_unit_test(test_decode_refuses_other_shapes),
        cmocka_unit_test(test_bucket_burst_then_rate),
        cmocka_unit_test(test_bucket_never_holds_more_than_burst),
        cmocka_unit_test(test_bucket_follows_new_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
