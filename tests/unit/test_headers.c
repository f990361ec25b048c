/*
 * test_headers.c — the header list: copied pairs, borrowed pairs (ingest's view of a
 * request's headers, no copies), case-insensitive lookup, and reuse after clearing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "mailhook/headers.h"

static void test_added_pairs_are_copies(void **state)
{
    (void)state;
    struct mh_headers h = {0};
    char value[] = "abc";
    mh_headers_add(&h, "X-Sig", value);
    value[0] = 'z';
    assert_string_equal(mh_headers_get(&h, "x-sig"), "abc");
    assert_ptr_not_equal(mh_headers_get(&h, "X-SIG"), value);
    mh_headers_clear(&h);
    assert_int_equal(h.n, 0);
}

static void test_borrowed_pairs_point_at_the_callers_strings(void **state)
{
    (void)state;
    struct mh_headers h = {0};
    const char *name = "Content-Type", *value = "application/json";
    mh_headers_borrow(&h, name, value);
    mh_headers_borrow(&h, "X-Empty", NULL);
    assert_ptr_equal(mh_headers_get(&h, "content-type"), value);
    assert_string_equal(mh_headers_get(&h, "x-empty"), "");
    assert_null(mh_headers_get(&h, "x-missing"));
    mh_headers_clear(&h); /* frees the list, not the strings */
    assert_string_equal(value, "application/json");
    /* A cleared list may hold copies again. */
    mh_headers_add(&h, "A", "1");
    assert_string_equal(mh_headers_get(&h, "a"), "1");
    mh_headers_clear(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_added_pairs_are_copies),
        cmocka_unit_test(test_borrowed_pairs_point_at_the_callers_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
