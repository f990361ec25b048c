/*
 * test_api_raw_ref.c — the {partition}/{offset} of GET /v1/raw (api/raw_ref.c): decimal
 * digits only, within Kafka's ranges, anything else a 400 naming the bad part.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raw_ref.h"

static char err[256];

static int parse(const char *tail, struct api_raw_ref *ref)
{
    err[0] = '\0';
    int rc = api_raw_ref_parse(tail, ref, err, sizeof(err));
    if (rc < 0) assert_true(err[0] != '\0');
    return rc;
}

static void reads_partition_and_offset(void **state)
{
    (void)state;
    struct api_raw_ref r = {-1, -1};
    assert_int_equal(parse("3/1200", &r), 0);
    assert_int_equal(r.partition, 3);
    assert_int_equal(r.offset, 1200);
    assert_int_equal(parse("0/0", &r), 0);
    assert_int_equal(r.partition, 0);
    assert_int_equal(r.offset, 0);
    /* Leading zeros are still decimal. */
    assert_int_equal(parse("007/010", &r), 0);
    assert_int_equal(r.partition, 7);
    assert_int_equal(r.offset, 10);
}

static void takes_the_largest_values(void **state)
{
    (void)state;
    struct api_raw_ref r;
    assert_int_equal(parse("2147483647/9223372036854775806", &r), 0);
    assert_int_equal(r.partition, INT32_MAX);
    assert_true(r.offset == INT64_MAX - 1);
}

static void refuses_out_of_range(void **state)
{
    (void)state;
    struct api_raw_ref r = {5, 6};
    assert_int_equal(parse("2147483648/0", &r), -1);
    assert_non_null(strstr(err, "partition"));
    assert_int_equal(parse("0/9223372036854775807", &r), -1);
    assert_non_null(strstr(err, "offset"));
    assert_int_equal(parse("0/99999999999999999999", &r), -1);
    assert_non_null(strstr(err, "offset"));
    assert_int_equal(parse("99999999999/0", &r), -1);
    assert_non_null(strstr(err, "partition"));
    /* A refused path leaves the reference alone. */
    assert_int_equal(r.partition, 5);
    assert_int_equal(r.offset, 6);
}

static void refuses_what_is_not_digits(void **state)
{
    (void)state;
    struct api_raw_ref r;
    static const char *const bad_partition[] = {"/1", "-1/1", "+1/1", " 1/1", "1 /1", "x/1",
                                                "0x1/1", "1.0/1", "%31/1"};
    for (size_t i = 0; i < sizeof(bad_partition) / sizeof(*bad_partition); i++) {
        assert_int_equal(parse(bad_partition[i], &r), -1);
        assert_non_null(strstr(err, "partition"));
    }
    static const char *const bad_offset[] = {"1/", "1/-1", "1/+1", "1/1 ", "1/1/2", "1/1e3",
                                             "1/abc", "1/%31"};
    for (size_t i = 0; i < sizeof(bad_offset) / sizeof(*bad_offset); i++) {
        assert_int_equal(parse(bad_offset[i], &r), -1);
        assert_non_null(strstr(err, "offset"));
    }
}

static void needs_both_parts(void **state)
{
    (void)state;
    struct api_raw_ref r;
    assert_int_equal(parse("", &r), -1);
    assert_int_equal(parse("12", &r), -1);
    assert_int_equal(parse(NULL, &r), -1);
    assert_non_null(strstr(err, "{partition}/{offset}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_partition_and_offset),
        cmocka_unit_test(takes_the_largest_values),
        cmocka_unit_test(refuses_out_of_range),
        cmocka_unit_test(refuses_what_is_not_digits),
        cmocka_unit_test(needs_both_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
