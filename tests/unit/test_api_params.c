/*
 * test_api_params.c — mailhook-api's request parsing (api/params.c): query strings,
 * path segments, addresses and the suppression list's cursor, with the limits that
 * keep every stored address reachable and every over-long input a 400.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "params.h"

static const char *const names[] = {"tenant", "cursor", "limit", "message_id", NULL};

/* Parses query; returns the error ("" when it parsed). */
static const char *parse(struct api_query *q, const char *query)
{
    static char err[256];
    err[0] = '\0';
    if (api_query_parse(q, query, names, err, sizeof(err)) == 0) return "";
    assert_true(err[0] != '\0');
    return err;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_query_values(void **state)
{
    (void)state;
    struct api_query q = {0};
    assert_string_equal(parse(&q, "tenant=acme&limit=5&cursor="), "");
    assert_string_equal(api_query_get(&q, "tenant"), "acme");
    assert_string_equal(api_query_get(&q, "limit"), "5");
    assert_null(api_query_get(&q, "cursor")); /* empty is absent */
    assert_null(api_query_get(&q, "message_id"));
    api_query_clear(&q);
    assert_string_equal(parse(&q, NULL), "");
    api_query_clear(&q);
    assert_string_equal(parse(&q, "tenant=a%40b+c"), "");
    assert_string_equal(api_query_get(&q, "tenant"), "a@b c");
    api_query_clear(&q);
}

static void test_query_refusals(void **state)
{
    (void)state;
    struct api_query q = {0};
    assert_string_equal(parse(&q, "colour=red"), "unknown parameter \"colour\"");
    api_query_clear(&q);
    /* A name that is not text is not echoed. */
    assert_string_equal(parse(&q, "%FF\xfe=1"), "unknown parameter");
    api_query_clear(&q);
    assert_string_equal(parse(&q, "tenant=a&tenant=b"), "tenant: given more than once");
    api_query_clear(&q);
    /* A NUL would cut the value short: "a" must not pass for "a\0b". */
    assert_string_equal(parse(&q, "tenant=a%00b"), "malformed query string");
    api_query_clear(&q);
    assert_string_equal(parse(&q, "tenant=%FF"), "tenant: not UTF-8 text");
    api_query_clear(&q);
    assert_string_equal(parse(&q, "tenant=%C3"), "tenant: not UTF-8 text"); /* cut short */
    api_query_clear(&q);
    assert_string_equal(parse(&q, "tenant=%C3%A9"), "");
    api_query_clear(&q);
}

static void test_query_lengths(void **state)
{
    (void)state;
    struct api_query q = {0};
    char query[MH_CURSOR_MAX + 64];
    char *v = repeat('t', API_PARAM_MAX);
    snprintf(query, sizeof(query), "tenant=%s", v);
    assert_string_equal(parse(&q, query), "");
    api_query_clear(&q);
    snprintf(query, sizeof(query), "tenant=%sx", v);
    assert_string_equal(parse(&q, query), "tenant: longer than 1024 bytes");
    api_query_clear(&q);
    free(v);
    /* A cursor may be much longer than other values, but not without end. */
    v = repeat('c', MH_CURSOR_MAX);
    snprintf(query, sizeof(query), "cursor=%s", v);
    assert_string_equal(parse(&q, query), "");
    api_query_clear(&q);
    snprintf(query, sizeof(query), "cursor=%sc", v);
    assert_non_null(strstr(parse(&q, query), "cursor: longer than"));
    api_query_clear(&q);
    free(v);
}

static void test_limit(void **state)
{
    (void)state;
    long n;
    assert_int_equal(api_parse_limit(NULL, 100, 1000, &n), 0);
    assert_int_equal(n, 100);
    assert_int_equal(api_parse_limit("1000", 100, 1000, &n), 0);
    assert_int_equal(n, 1000);
    const char *bad[] = {"0", "1001", "-1", "5x", "", " 5", "99999999999999999999999", NULL};
    for (const char **b = bad; *b; b++) assert_int_equal(api_parse_limit(*b, 100, 1000, &n), -1);
}

static void test_path_segment_and_address(void **state)
{
    (void)state;
    char *seg = api_path_segment("%20Jane.Doe%40Example.COM", 100);
    assert_string_equal(seg, " Jane.Doe@Example.COM");
    char *addr = api_address(seg);
    assert_string_equal(addr, "jane.doe@example.com");
    free(addr);
    free(seg);
    seg = api_path_segment("a+b%2Fc@x", 100); /* "+" is a plus in a path */
    assert_string_equal(seg, "a+b/c@x");
    free(seg);
    assert_null(api_path_segment("", 100));
    assert_null(api_path_segment("a%00b@x", 100));
    assert_null(api_path_segment("%FF@x", 100));
    assert_null(api_path_segment("abcd", 3));
    assert_null(api_address("no-at-sign"));
    assert_null(api_address(NULL));

    /* The longest address there is, and one byte more. */
    char *longest = repeat('a', SUPP_ADDRESS_MAX);
    memcpy(longest + SUPP_ADDRESS_MAX - 12, "@example.com", 12);
    addr = api_address(longest);
    assert_non_null(addr);
    assert_int_equal(strlen(addr), SUPP_ADDRESS_MAX);
    free(addr);
    char *over = repeat('a', SUPP_ADDRESS_MAX + 1);
    memcpy(over + SUPP_ADDRESS_MAX + 1 - 12, "@example.com", 12);
    assert_null(api_address(over));
    free(over);
    /* Percent-encoded whole, it still fits the path segment bound http.c uses. */
    char *enc = malloc(3 * SUPP_ADDRESS_MAX + 1);
    for (size_t i = 0; i < SUPP_ADDRESS_MAX; i++) sprintf(enc + 3 * i, "%%%02X", longest[i]);
    seg = api_path_segment(enc, 4 * SUPP_ADDRESS_MAX);
    assert_string_equal(seg, longest);
    free(seg);
    free(enc);
    free(longest);
}

/* Any stored tenant and address, however odd, comes back from its cursor unchanged. */
static void test_list_cursor_round_trips(void **state)
{
    (void)state;
    const char *odd[] = {"a@example.com", "\"quoted, with comma\"@example.com", "x\\y@z",
                         "ünï@cödé.example", "ctl\x01\x1f@x", "[\"a\",\"b\"]@x", NULL};
    for (const char **a = odd; *a; a++) {
        char *cur = api_list_cursor_encode("ten,ant\"", *a), *t, *ad;
        assert_null(strpbrk(cur, "+/=%&? ")); /* travels in a query string as it is */
        assert_int_equal(api_list_cursor_decode(cur, &t, &ad), 0);
        assert_string_equal(t, "ten,ant\"");
        assert_string_equal(ad, *a);
        free(t);
        free(ad);
        free(cur);
    }
    /* The worst case: the longest tenant and address, every byte escaped by JSON. */
    char *tenant = repeat('\x01', MH_TENANT_MAX), *addr = repeat('\x02', SUPP_ADDRESS_MAX);
    char *cur = api_list_cursor_encode(tenant, addr), *t, *ad;
    assert_true(strlen(cur) <= MH_CURSOR_MAX);
    assert_int_equal(api_list_cursor_decode(cur, &t, &ad), 0);
    assert_string_equal(t, tenant);
    assert_string_equal(ad, addr);
    free(t);
    free(ad);
    free(cur);
    free(tenant);
    free(addr);
}

static void test_list_cursor_refusals(void **state)
{
    (void)state;
    char *t = (char *)1, *a = (char *)1;
    const char *bad[] = {"", "!!", "bm9wZQ" /* "nope" */, "WyJhIl0" /* ["a"] */,
                         "WyJhIiwxXQ" /* ["a",1] */, "WyJhIiwiYiIsImMiXQ" /* 3 strings */,
                         "eyJhIjoiYiJ9" /* {"a":"b"} */, NULL};
    for (const char **b = bad; *b; b++) {
        assert_int_equal(api_list_cursor_decode(*b, &t, &a), -1);
        assert_null(t);
        assert_null(a);
    }
    char *huge = repeat('A', MH_CURSOR_MAX + 4);
    assert_int_equal(api_list_cursor_decode(huge, &t, &a), -1);
    free(huge);
    /* The event log's cursors have four parts: not a list cursor. */
    const char *four[] = {"2026-11-20T12:00:00.000000Z", "acme", "maildog", "ev-1"};
    char *cur = mh_cursor_encode(four, 4);
    assert_int_equal(api_list_cursor_decode(cur, &t, &a), -1);
    json_t *arr = mh_cursor_decode(cur, 4);
    assert_string_equal(json_string_value(json_array_get(arr, 3)), "ev-1");
    json_decref(arr);
    free(cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_values),
        cmocka_unit_test(test_query_refusals),
        cmocka_unit_test(test_query_lengths),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_path_segment_and_address),
        cmocka_unit_test(test_list_cursor_round_trips),
        cmocka_unit_test(test_list_cursor_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
