/*
 * test_event_limits.c — mh_event_make_storable: one test per rule of docs/design.md
 * "Storable events", and the MailDog (hmac) bodies that PostgreSQL used to refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mailhook/event.h"
#include "mailhook/event_limits.h"
#include "mailhook/pg.h"
#include "mailhook/provider.h"

static const struct mh_event_limits limits = {.max_event_bytes = 1000000,
                                              .received_fallback_ms = 0};

/* A well-formed event, as a provider would make it. */
static json_t *good_event(void)
{
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "schema",
                           "mailhook.event.v1", "event_id", "evt-1", "type", "email.delivered",
                           "provider", "hmac", "provider_event", "delivered", "source", "maildog",
                           "tenant", "acme", "recipient", "a@example.com", "occurred_at",
                           "2026-03-01T12:00:00.000Z", "received_at", "2026-03-01T12:00:01.000Z");
    assert_non_null(ev);
    return ev;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static const char *str(json_t *ev, const char *key)
{
    return json_string_value(json_object_get(ev, key));
}

static void test_storable_event_is_unchanged(void **state)
{
    (void)state;
    json_t *ev = good_event(), *copy = json_deep_copy(ev);
    char why[256] = "";
    assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), 0);
    assert_true(json_equal(ev, copy));
    json_decref(ev);
    json_decref(copy);
}

static void test_long_event_id_is_hashed_deterministically(void **state)
{
    (void)state;
    char why[256];
    char *id = repeat('x', 5 * 1024);
    json_t *a = good_event(), *b = good_event(), *c = good_event();
    json_object_set_new(a, "event_id", json_string(id));
    json_object_set_new(b, "event_id", json_string(id));
    id[100] = 'y'; /* another event: another id */
    json_object_set_new(c, "event_id", json_string(id));
    assert_int_equal(mh_event_make_storable(a, &limits, why, sizeof(why)), 1);
    assert_int_equal(mh_event_make_storable(b, &limits, why, sizeof(why)), 1);
    assert_int_equal(mh_event_make_storable(c, &limits, why, sizeof(why)), 1);
    assert_string_equal(str(a, "event_id"), str(b, "event_id"));
    assert_string_not_equal(str(a, "event_id"), str(c, "event_id"));
    assert_int_equal(strncmp(str(a, "event_id"), MH_HASHED_ID_PREFIX, 7), 0);
    assert_int_equal(strlen(str(a, "event_id")), 7 + 64);

    /* At the limit the id stays as it is. */
    id[MH_LIMIT_EVENT_ID] = '\0';
    json_object_set_new(c, "event_id", json_string(id));
    assert_int_equal(mh_event_make_storable(c, &limits, why, sizeof(why)), 0);
    assert_string_equal(str(c, "event_id"), id);
    free(id);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void test_event_id_with_nul_is_hashed(void **state)
{
    (void)state;
    char why[256];
    json_t *ev = good_event();
    json_object_set_new(ev, "event_id", json_stringn("ab\0cd", 5));
    assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), 1);
    assert_int_equal(strncmp(str(ev, "event_id"), MH_HASHED_ID_PREFIX, 7), 0);
    json_decref(ev);
}

static void test_over_long_keys_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *field;
        size_t limit;
    } keys[] = {
        {"recipient", MH_LIMIT_RECIPIENT}, {"message_id", MH_LIMIT_MESSAGE_ID},
        {"tenant", MH_LIMIT_TENANT},       {"source", MH_LIMIT_SOURCE},
        {"provider", MH_LIMIT_PROVIDER},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char why[256] = "";
        char *at_limit = repeat('a', keys[i].limit), *over = repeat('a', keys[i].limit + 1);
        json_t *ev = good_event();
        json_object_set_new(ev, keys[i].field, json_string(at_limit));
        assert_true(mh_event_make_storable(ev, &limits, why, sizeof(why)) >= 0);
        assert_string_equal(str(ev, keys[i].field), at_limit); /* never truncated */
        json_object_set_new(ev, keys[i].field, json_string(over));
        assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), -1);
        assert_non_null(strstr(why, keys[i].field));
        assert_non_null(strstr(why, "limit"));
        json_decref(ev);
        free(at_limit);
        free(over);
    }
}

static void test_key_with_nul_is_refused(void **state)
{
    (void)state;
    char why[256] = "";
    json_t *ev = good_event();
    json_object_set_new(ev, "recipient", json_stringn("a@b\0c", 5));
    assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "recipient"));
    json_decref(ev);
}

static void test_impossible_times_become_absent(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "0000-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "2026-02-30T00:00:00.000Z",
        "2026-03-01T12:00:00Z",     "99999-01-01T00:00:00.000Z", "yesterday",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[256];
        json_t *ev = good_event();
        json_object_set_new(ev, "occurred_at", json_string(bad[i]));
        json_object_set_new(mh_event_sub(ev, "delay"), "next_retry_at", json_string(bad[i]));
        assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), 2);
        assert_null(json_object_get(ev, "occurred_at"));
        assert_null(json_object_get(ev, "delay")); /* emptied: removed, as the schema wants */
        assert_string_equal(str(ev, "received_at"), "2026-03-01T12:00:01.000Z");
        json_decref(ev);
    }
    /* The edges are kept. */
    json_t *ev = good_event();
    char why[256];
    json_object_set_new(ev, "occurred_at", json_string("9999-12-31T23:59:59.999Z"));
    json_object_set_new(ev, "received_at", json_string("1970-01-01T00:00:00.000Z"));
    assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), 0);
    json_decref(ev);
}

static void test_received_at_falls_back_to_the_record_time(void **state)
{
    (void)state;
    char why[256];
    struct mh_event_limits lim = limits;
    lim.received_fallback_ms = 1767225600000; /* 2026-01-01 */
    json_t *ev = good_event();
    json_object_set_new(ev, "received_at", json_string("0000-01-01T00:00:00.000Z"));
    assert_true(mh_event_make_storable(ev, &lim, why, sizeof(why)) > 0);
    assert_string_equal(str(ev, "received_at"), "2026-01-01T00:00:00.000Z");
    json_decref(ev);
}

static void test_numbers_out_of_range_become_absent(void **state)
{
    (void)state;
    char why[256];
    json_t *ev = good_event();
    json_t *b = mh_event_sub(ev, "bounce");
    json_object_set_new(b, "class", json_string("hard"));
    json_object_set_new(b, "smtp_code", json_integer(99999999999LL));
    json_object_set_new(mh_event_sub(ev, "delay"), "attempt", json_integer(-1));
    json_object_set_new(mh_event_sub(ev, "delay"), "reason", json_string("later"));
    assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), 2);
    assert_null(json_object_get(b, "smtp_code"));
    assert_string_equal(str(b, "class"), "hard");
    assert_null(json_object_get(json_object_get(ev, "delay"), "attempt"));
    json_object_set_new(b, "smtp_code", json_integer(550));
    assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), 0);
    json_decref(ev);
}

static void test_nul_and_invalid_utf8_are_replaced_everywhere_else(void **state)
{
    (void)state;
    char why[256];
    json_t *ev = good_event();
    json_t *meta = json_object();
    json_object_set_new(meta, "note", json_stringn("a\0b", 3));
    json_object_set_new(meta, "list", json_pack("[s]", "fine"));
    json_array_append_new(json_object_get(meta, "list"), json_stringn_nocheck("\xC3\x28", 2));
    json_object_setn_new(meta, "k\0ey", 4, json_integer(1));
    json_object_set_new(ev, "metadata", meta);
    json_object_set_new(ev, "subject", json_stringn_nocheck("\xED\xA0\x80x", 4)); /* surrogate */
    assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), 4);
    assert_string_equal(json_string_value(json_object_get(meta, "note")), "a\xEF\xBF\xBD" "b");
    assert_string_equal(json_string_value(json_array_get(json_object_get(meta, "list"), 1)),
                        "\xEF\xBF\xBD(");
    assert_non_null(json_object_get(meta, "k\xEF\xBF\xBD" "ey"));
    assert_string_equal(str(ev, "subject"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx");
    /* Now storable: a second pass changes nothing. */
    assert_int_equal(mh_event_make_storable(ev, &limits, why, sizeof(why)), 0);
    json_decref(ev);
}

static void test_text_storable(void **state)
{
    (void)state;
    assert_true(mh_text_storable("plain", 5));
    assert_true(mh_text_storable("\xE2\x82\xAC \xF0\x9F\x98\x80", 8));
    assert_false(mh_text_storable("a\0b", 3));
    assert_false(mh_text_storable("\xC0\xAF", 2));         /* overlong "/" */
    assert_false(mh_text_storable("\xF4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(mh_text_storable("\xE2\x82", 2));         /* cut short */
}

static void test_oversized_event_is_refused(void **state)
{
    (void)state;
    char why[256] = "";
    struct mh_event_limits lim = {.max_event_bytes = 4096};
    json_t *ev = good_event();
    char *big = repeat('d', 5000);
    json_object_set_new(ev, "subject", json_string(big));
    assert_int_equal(mh_event_make_storable(ev, &lim, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "4096-byte limit"));
    free(big);
    json_decref(ev);
}

/* The MailDog (hmac) bodies PostgreSQL refused, through the provider and the check. */
static json_t *parse_hmac(const char *body)
{
    const struct mh_provider *p = mh_provider_find("hmac");
    assert_non_null(p);
    struct mh_raw raw = {.source = "maildog", .provider = "hmac", .tenant = "acme",
                         .received_ms = 1767225600000, .body = (const unsigned char *)body, .body_len = strlen(body),
                         .topic = "mailhook.raw"};
    json_t *events = json_array();
    char err[256];
    assert_int_equal(p->parse(&raw, events, err, sizeof(err)), 0);
    return events;
}

static void test_hmac_year_zero_timestamp(void **state)
{
    (void)state;
    char why[256];
    json_t *events = parse_hmac("{\"event\":\"delivered\",\"timestamp\":\"0000-01-01T00:00:00Z\","
                                "\"message_id\":\"m1\",\"recipient\":\"a@example.com\"}");
    json_t *ev = json_array_get(events, 0);
    const char *id_before = str(ev, "event_id");
    char *keep = strdup(id_before);
    assert_true(mh_event_make_storable(ev, &limits, why, sizeof(why)) > 0);
    assert_null(json_object_get(ev, "occurred_at"));
    assert_string_equal(str(ev, "event_id"), keep); /* the id does not move */
    free(keep);
    json_decref(events);
}

/* The worker retries what may pass by itself and isolates the rest (dedup.c). */
static void test_sqlstate_classes(void **state)
{
    (void)state;
    static const char *const transient[] = {"", "08006", "53200", "57P01", "40001", "40P01",
                                            "55P03", NULL};
    static const char *const permanent[] = {"22008", "22023", "22P05", "23514", "23505",
                                            "54000", "42P01", "42501", "P0001", "XX000", NULL};
    for (const char *const *s = transient; *s; s++) assert_true(mh_pg_sqlstate_transient(*s));
    for (const char *const *s = permanent; *s; s++) assert_false(mh_pg_sqlstate_transient(*s));
    assert_true(mh_pg_sqlstate_transient(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storable_event_is_unchanged),
        cmocka_unit_test(test_long_event_id_is_hashed_deterministically),
        cmocka_unit_test(test_event_id_with_nul_is_hashed),
        cmocka_unit_test(test_over_long_keys_are_refused),
        cmocka_unit_test(test_key_with_nul_is_refused),
        cmocka_unit_test(test_impossible_times_become_absent),
        cmocka_unit_test(test_received_at_falls_back_to_the_record_time),
        cmocka_unit_test(test_numbers_out_of_range_become_absent),
        cmocka_unit_test(test_nul_and_invalid_utf8_are_replaced_everywhere_else),
        cmocka_unit_test(test_text_storable),
        cmocka_unit_test(test_oversized_event_is_refused),
        cmocka_unit_test(test_hmac_year_zero_timestamp),
        cmocka_unit_test(test_sqlstate_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
