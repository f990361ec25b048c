/*
 * test_pg_array.c — PostgreSQL binary arrays (shared/pg_array.c) carry exactly the bytes
 * array_recv reads: header, element OID, dimension, then each element's length and
 * big-endian value. That the server takes them is the claim statement's end-to-end tests'.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mailhook/pg_array.h"

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The header's fields: dimensions, has-nulls, element OID, length, lower bound. */
static void assert_header(const struct mh_pg_array *a, uint32_t oid, uint32_t n)
{
    assert_true(a->len >= 20);
    assert_int_equal(get32(a->buf), 1);
    assert_int_equal(get32(a->buf + 4), 0);
    assert_int_equal(get32(a->buf + 8), oid);
    assert_int_equal(get32(a->buf + 12), n);
    assert_int_equal(get32(a->buf + 16), 1);
}

static void test_empty_array_is_a_header_of_no_elements(void **state)
{
    (void)state;
    struct mh_pg_array a;
    mh_pg_array_init(&a, MH_PG_TEXT_OID);
    mh_pg_array_finish(&a);
    assert_int_equal(a.len, 20);
    assert_header(&a, MH_PG_TEXT_OID, 0);
    mh_pg_array_free(&a);
    assert_null(a.buf);
}

static void test_int4_elements_are_big_endian_and_signed(void **state)
{
    (void)state;
    struct mh_pg_array a;
    mh_pg_array_init(&a, MH_PG_INT4_OID);
    mh_pg_array_add_int4(&a, 0x01020304);
    mh_pg_array_add_int4(&a, -2);
    mh_pg_array_finish(&a);
    assert_int_equal(a.len, 20 + 2 * 8);
    assert_header(&a, MH_PG_INT4_OID, 2);
    static const unsigned char want[] = {0, 0, 0, 4, 1, 2, 3, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe};
    assert_memory_equal(a.buf + 20, want, sizeof(want));
    mh_pg_array_free(&a);
}

static void test_int8_elements_keep_all_64_bits(void **state)
{
    (void)state;
    struct mh_pg_array a;
    mh_pg_array_init(&a, MH_PG_INT8_OID);
    mh_pg_array_add_int8(&a, INT64_C(0x0102030405060708));
    mh_pg_array_add_int8(&a, INT64_MIN);
    mh_pg_array_finish(&a);
    assert_header(&a, MH_PG_INT8_OID, 2);
    static const unsigned char want[] = {0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
                                         0, 0, 0, 8, 0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(a.len, 20 + sizeof(want));
    assert_memory_equal(a.buf + 20, want, sizeof(want));
    mh_pg_array_free(&a);
}

static void test_text_elements_are_their_bytes_with_a_length(void **state)
{
    (void)state;
    struct mh_pg_array a;
    mh_pg_array_init(&a, MH_PG_TEXT_OID);
    mh_pg_array_add_text(&a, "acme", 4);
    mh_pg_array_add_text(&a, "", 0);
    mh_pg_array_add_text(&a, "{\"k\":\"\\u00e9\xc3\xa9\"}tail", 16); /* a prefix of s only */
    mh_pg_array_finish(&a);
    assert_header(&a, MH_PG_TEXT_OID, 3);
    const unsigned char *p = a.buf + 20;
    assert_int_equal(get32(p), 4);
    assert_memory_equal(p + 4, "acme", 4);
    p += 8;
    assert_int_equal(get32(p), 0);
    p += 4;
    assert_int_equal(get32(p), 16);
    assert_memory_equal(p + 4, "{\"k\":\"\\u00e9\xc3\xa9\"}", 16);
    assert_int_equal((size_t)(p + 4 + 16 - a.buf), a.len);
    mh_pg_array_free(&a);
}

/* bytea's binary form is its bytes, zero bytes included. */
static void test_bytea_elements_keep_zero_bytes(void **state)
{
    (void)state;
    struct mh_pg_array a;
    mh_pg_array_init(&a, MH_PG_BYTEA_OID);
    static const unsigned char key[4] = {0, 0xff, 0, 7};
    mh_pg_array_add_bytes(&a, key, sizeof(key));
    mh_pg_array_add_bytes(&a, key, 0);
    mh_pg_array_finish(&a);
    assert_header(&a, MH_PG_BYTEA_OID, 2);
    static const unsigned char want[] = {0, 0, 0, 4, 0, 0xff, 0, 7, 0, 0, 0, 0};
    assert_int_equal(a.len, 20 + sizeof(want));
    assert_memory_equal(a.buf + 20, want, sizeof(want));
    mh_pg_array_free(&a);
}

/* A NULL is the length -1 with no bytes, and sets the header's has-nulls flag. */
static void test_null_elements_set_the_has_nulls_flag(void **state)
{
    (void)state;
    struct mh_pg_array a;
    mh_pg_array_init(&a, MH_PG_TEXT_OID);
    mh_pg_array_add_text(&a, "a", 1);
    mh_pg_array_finish(&a);
    assert_int_equal(get32(a.buf + 4), 0);
    mh_pg_array_add_null(&a);
    mh_pg_array_add_text(&a, "b", 1);
    mh_pg_array_finish(&a);
    assert_int_equal(get32(a.buf), 1);
    assert_int_equal(get32(a.buf + 4), 1);
    assert_int_equal(get32(a.buf + 12), 3);
    static const unsigned char want[] = {0, 0, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 'b'};
    assert_int_equal(a.len, 20 + sizeof(want));
    assert_memory_equal(a.buf + 20, want, sizeof(want));
    mh_pg_array_free(&a);
}

/* Elements past the first allocation move the buffer; the count follows a later finish. */
static void test_many_elements_and_a_second_finish(void **state)
{
    (void)state;
    struct mh_pg_array a;
    mh_pg_array_init(&a, MH_PG_INT4_OID);
    for (int i = 0; i < 1000; i++) mh_pg_array_add_int4(&a, i);
    mh_pg_array_finish(&a);
    assert_header(&a, MH_PG_INT4_OID, 1000);
    mh_pg_array_add_int4(&a, 1000);
    mh_pg_array_finish(&a);
    assert_header(&a, MH_PG_INT4_OID, 1001);
    assert_int_equal(a.len, 20 + 1001 * 8);
    for (uint32_t i = 0; i <= 1000; i++) {
        assert_int_equal(get32(a.buf + 20 + i * 8), 4);
        assert_int_equal(get32(a.buf + 20 + i * 8 + 4), i);
    }
    mh_pg_array_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_array_is_a_header_of_no_elements),
        cmocka_unit_test(test_int4_elements_are_big_endian_and_signed),
        cmocka_unit_test(test_int8_elements_keep_all_64_bits),
        cmocka_unit_test(test_text_elements_are_their_bytes_with_a_length),
        cmocka_unit_test(test_bytea_elements_keep_zero_bytes),
        cmocka_unit_test(test_null_elements_set_the_has_nulls_flag),
        cmocka_unit_test(test_many_elements_and_a_second_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
