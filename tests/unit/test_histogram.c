/*
 * test_histogram.c — the Prometheus histogram: buckets by upper bound (a value on a bound
 * falls in it), cumulative _bucket lines ending in +Inf, _sum in seconds and _count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/histogram.h"

static char *render(const struct mh_histogram *h)
{
    struct evbuffer *b = evbuffer_new();
    mh_histogram_write(h, "t_seconds", "help text", b);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static void test_buckets_are_cumulative_and_bounds_inclusive(void **state)
{
    (void)state;
    struct mh_histogram h = {0};
    mh_histogram_observe_us(&h, 100);      /* 0.1 ms  -> le 0.0005 */
    mh_histogram_observe_us(&h, 1000);     /* 1 ms, on the bound -> le 0.001 */
    mh_histogram_observe_us(&h, 1001);     /* just over -> le 0.0025 */
    mh_histogram_observe_us(&h, 300000);   /* 0.3 s -> le 0.5 */
    mh_histogram_observe_us(&h, 60000000); /* 60 s -> +Inf only */
    mh_histogram_observe_us(&h, -5);       /* a clock step back counts as 0 */
    char *s = render(&h);
    assert_non_null(strstr(s, "# HELP t_seconds help text\n# TYPE t_seconds histogram\n"));
    assert_non_null(strstr(s, "t_seconds_bucket{le=\"0.0005\"} 2\n"));
    assert_non_null(strstr(s, "t_seconds_bucket{le=\"0.001\"} 3\n"));
    assert_non_null(strstr(s, "t_seconds_bucket{le=\"0.0025\"} 4\n"));
    assert_non_null(strstr(s, "t_seconds_bucket{le=\"0.25\"} 4\n"));
    assert_non_null(strstr(s, "t_seconds_bucket{le=\"0.5\"} 5\n"));
    assert_non_null(strstr(s, "t_seconds_bucket{le=\"10\"} 5\n"));
    assert_non_null(strstr(s, "t_seconds_bucket{le=\"+Inf\"} 6\n"));
    assert_non_null(strstr(s, "t_seconds_sum 60.302101\n"));
    assert_non_null(strstr(s, "t_seconds_count 6\n"));
    free(s);
}

static void test_empty_histogram_has_every_line(void **state)
{
    (void)state;
    struct mh_histogram h = {0};
    char *s = render(&h);
    size_t buckets = 0;
    for (const char *p = s; (p = strstr(p, "t_seconds_bucket")); p++) buckets++;
    assert_int_equal(buckets, MH_HIST_NBOUNDS + 1);
    assert_non_null(strstr(s, "t_seconds_sum 0.000000\nt_seconds_count 0\n"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_are_cumulative_and_bounds_inclusive),
        cmocka_unit_test(test_empty_histogram_has_every_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
