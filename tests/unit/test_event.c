/*
 * test_event.c — event ids (deterministic, field-sensitive, provider ids verbatim),
 * timestamp parsing/formatting, and IvyMail / MailDog normalization edge cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mailhook/event.h"
#include "mailhook/provider.h"
#include "mailhook/timeutil.h"

static const struct mh_raw base_raw = {
    .source = "src", .provider = "ivymail", .tenant = "t1", .received_ms = 1767225600000,
    .topic = "mailhook.raw", .partition = 3, .offset = 99,
};

/* Returns the id in a buffer of its own (two slots: the id kept and the one compared). */
static char *id_of(const struct mh_raw *raw, const char *msg, const char *event, const char *rcpt,
                   const char *when, const char *provider_id)
{
    static char buf[2][128];
    static int slot;
    json_t *ev = mh_event_new(raw, "email.delivered", event);
    mh_event_set_str(ev, "message_id", msg);
    mh_event_set_address(ev, "recipient", rcpt);
    mh_event_set_time(ev, "occurred_at", when);
    mh_event_finish(ev, provider_id, NULL);
    char *out = buf[slot++ % 2];
    strncpy(out, json_string_value(json_object_get(ev, "event_id")), 127);
    out[127] = '\0';
    json_decref(ev);
    return out;
}

static void test_event_ids(void **state)
{
    (void)state;
    char a[128];
    strcpy(a, id_of(&base_raw, "m1", "delivered", "A@x.com", "2026-01-01T00:00:00Z", NULL));
    assert_int_equal(strlen(a), 64);
    /* Same event, other raw record and case of the address, same instant spelled
     * differently: same id. */
    struct mh_raw other = base_raw;
    other.partition = 7;
    other.offset = 1;
    other.received_ms += 5000;
    assert_string_equal(a, id_of(&other, "m1", "delivered", "a@X.COM ", "2026-01-01T01:00:00+01:00",
                                 NULL));
    /* Any identifying field differs: different id. */
    assert_string_not_equal(a, id_of(&base_raw, "m2", "delivered", "a@x.com", "2026-01-01T00:00:00Z", NULL));
    assert_string_not_equal(a, id_of(&base_raw, "m1", "bounced", "a@x.com", "2026-01-01T00:00:00Z", NULL));
    assert_string_not_equal(a, id_of(&base_raw, "m1", "delivered", "b@x.com", "2026-01-01T00:00:00Z", NULL));
    assert_string_not_equal(a, id_of(&base_raw, "m1", "delivered", "a@x.com", "2026-01-01T00:00:01Z", NULL));
    struct mh_raw tenant2 = base_raw;
    tenant2.tenant = "t2";
    assert_string_not_equal(a, id_of(&tenant2, "m1", "delivered", "a@x.com", "2026-01-01T00:00:00Z", NULL));
    /* Field boundaries matter: ("m1d", "elivered") is not ("m1", "delivered"). */
    assert_string_not_equal(a, id_of(&base_raw, "m1d", "elivered", "a@x.com", "2026-01-01T00:00:00Z", NULL));
    /* A provider's own id is used as is. */
    assert_string_equal(id_of(&base_raw, "m1", "delivered", "a@x.com", NULL, "sg-evt-123"), "sg-evt-123");
}

static void test_time(void **state)
{
    (void)state;
    int64_t ms;
    char buf[MH_TIME_BUFSZ];
    assert_int_equal(mh_time_parse("2026-02-25T12:00:00Z", &ms), 0);
    mh_time_format(ms, buf);
    assert_string_equal(buf, "2026-02-25T12:00:00.000Z");
    assert_int_equal(mh_time_parse("2026-02-25T13:30:00.123456+01:30", &ms), 0);
    mh_time_format(ms, buf);
    assert_string_equal(buf, "2026-02-25T12:00:00.123Z");
    assert_int_equal(mh_time_parse("2026-02-25 12:00:00", &ms), 0);
    mh_time_format(ms, buf);
    assert_string_equal(buf, "2026-02-25T12:00:00.000Z");
    assert_int_equal(mh_time_parse("1772020800", &ms), 0);
    mh_time_format(ms, buf);
    assert_string_equal(buf, "2026-02-25T12:00:00.000Z");
    assert_int_equal(mh_time_parse("1772020800.5", &ms), 0);
    assert_int_equal(ms, 1772020800500LL);
    /* Any int64 formats without overflow (INT64_MIN reached it once, from a huge SMTP2GO
     * time), clamped to the years RFC 3339 can write. */
    mh_time_format(INT64_MIN, buf);
    assert_int_equal(strncmp(buf, "0000-", 5), 0);
    assert_int_equal((int)strlen(buf), 24);
    mh_time_format(INT64_MAX, buf);
    assert_int_equal(strncmp(buf, "9999-", 5), 0);
    /* The formatter agrees with strftime's fields over years 0..9999, before and after
     * the epoch, and parses back to the same millisecond. */
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t v = (int64_t)(x % 315537897600000ULL) - 62167219200000LL;
        mh_time_format(v, buf);
        time_t secs = (time_t)(v >= 0 ? v / 1000 : (v - 999) / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char want[64];
        strftime(want, sizeof(want), "-%m-%dT%H:%M:%S", &tm);
        assert_int_equal((int)strlen(buf), 24);
        assert_int_equal(atoi(buf), tm.tm_year + 1900);
        assert_memory_equal(buf + 4, want, 15);
        assert_int_equal(atoi(buf + 20), (int)(v - (int64_t)secs * 1000));
        int64_t back;
        assert_int_equal(mh_time_parse(buf, &back), 0);
        assert_true(back == v);
    }
    assert_int_equal(mh_time_parse("Wed, 25 Feb 2026 12:00:00 GMT", &ms), 0);
    assert_int_equal(ms, 1772020800000LL);
    assert_int_equal(mh_time_parse("Wed, 25 Feb 2026 14:00:00 +0200", &ms), 0);
    assert_int_equal(ms, 1772020800000LL);
    const char *bad[] = {"", "yesterday", "2026-13-01T00:00:00Z", "2026-02-25T25:00:00Z",
                         "2026-02-25Tnoon", "2026-02-25T12:00:00+99:00", "12ab", NULL};
    for (const char **b = bad; *b; b++)
        if (mh_time_parse(*b, &ms) == 0) fail_msg("accepted \"%s\"", *b);
}

static json_t *parse(const char *provider, const char *body)
{
    const struct mh_provider *p = mh_provider_find(provider);
    assert_non_null(p);
    struct mh_raw raw = base_raw;
    raw.provider = provider;
    raw.body = (const unsigned char *)body;
    raw.body_len = strlen(body);
    json_t *events = json_array();
    char err[256];
    if (p->parse(&raw, events, err, sizeof(err)) < 0) {
        json_decref(events);
        return NULL;
    }
    return events;
}

static void test_unknown_events_are_kept(void **state)
{
    (void)state;
    json_t *evs = parse("ivymail", "{\"event\":\"teleported\",\"message_id\":\"m\",\"to\":\"A@B.C\"}");
    assert_non_null(evs);
    assert_int_equal(json_array_size(evs), 1);
    json_t *ev = json_array_get(evs, 0);
    assert_string_equal(mh_json_str(ev, "type"), "other");
    assert_string_equal(mh_json_str(ev, "provider_event"), "teleported");
    assert_string_equal(mh_json_str(ev, "recipient"), "a@b.c");
    json_decref(evs);

    evs = parse("hmac", "{\"event\":\"unicorn\",\"recipient\":\"x@y.z\"}");
    assert_non_null(evs);
    assert_string_equal(mh_json_str(json_array_get(evs, 0), "type"), "other");
    json_decref(evs);
}

static void test_malformed_bodies_fail_cleanly(void **state)
{
    (void)state;
    const char *bad[] = {"", "not json", "[1,2]", "{\"event\":42}", "{}", "\"str\"", "null",
                         "{\"event\":\"delivered\",\"event\":\"bounced\"}", "{\"a\":", NULL};
    for (const char **b = bad; *b; b++) {
        json_t *e1 = parse("ivymail", *b);
        json_t *e2 = parse("hmac", *b);
        if (e1 || e2) fail_msg("parsed \"%s\"", *b);
    }
}

static void test_wrong_types_are_absent_not_invented(void **state)
{
    (void)state;
    json_t *evs = parse("hmac", "{\"event\":\"hard_bounce\",\"recipient\":7,\"message_id\":[1],"
                                "\"timestamp\":\"garbage\",\"smtp_code\":\"550\","
                                "\"reason\":\"550 5.1.1 no such user\"}");
    assert_non_null(evs);
    json_t *ev = json_array_get(evs, 0);
    assert_null(json_object_get(ev, "recipient"));
    assert_null(json_object_get(ev, "message_id"));
    assert_null(json_object_get(ev, "occurred_at"));
    json_t *b = json_object_get(ev, "bounce");
    assert_int_equal(json_integer_value(json_object_get(b, "smtp_code")), 550);
    assert_string_equal(mh_json_str(b, "enhanced_code"), "5.1.1");
    assert_string_equal(mh_json_str(b, "class"), "hard");
    assert_string_equal(mh_json_str(b, "category"), "invalid_recipient");
    json_decref(evs);
}

/* Metadata setters: what is skipped, and which value of a key set twice is kept. */
static void test_metadata_rules(void **state)
{
    (void)state;
    json_t *ev = json_object(), *a = json_string("a"), *b = json_string("b");
    json_t *blank = json_string(""), *obj = json_object(), *arr = json_array();
    mh_event_meta_set(ev, "k", NULL);
    mh_event_meta_set(ev, "k", json_null());
    mh_event_meta_set(ev, "k", blank);
    assert_null(json_object_get(ev, "metadata")); /* nothing set: no metadata object */

    mh_event_meta_set(ev, "k", a);
    mh_event_meta_set(ev, "k", b);
    json_t *meta = json_object_get(ev, "metadata");
    assert_string_equal(json_string_value(json_object_get(meta, "k")), "a");
    mh_event_meta_replace(ev, "k", b);
    assert_string_equal(json_string_value(json_object_get(meta, "k")), "b");
    mh_event_meta_replace(ev, "k", blank); /* a blank value never erases one */
    assert_string_equal(json_string_value(json_object_get(meta, "k")), "b");

    mh_event_meta_set(ev, "o", obj);
    mh_event_meta_set(ev, "l", arr);
    assert_non_null(json_object_get(meta, "o"));
    assert_non_null(json_object_get(meta, "l"));
    mh_event_meta_put(ev, "o2", obj, MH_META_REPLACE | MH_META_SKIP_EMPTY_OBJECT);
    mh_event_meta_put(ev, "l2", arr, MH_META_SKIP_EMPTY_ARRAY);
    assert_null(json_object_get(meta, "o2"));
    assert_null(json_object_get(meta, "l2"));
    assert_int_equal(mh_json_blank(arr, MH_META_SKIP_EMPTY_OBJECT), 0);
    assert_int_equal(mh_json_blank(obj, MH_META_SKIP_EMPTY_OBJECT), 1);

    json_decref(a);
    json_decref(b);
    json_decref(blank);
    json_decref(obj);
    json_decref(arr);
    json_decref(ev);
}

/* delivery: unknown values skipped, nothing known no key; machine only when set. */
static void test_delivery_and_machine(void **state)
{
    (void)state;
    json_t *ev = json_object();
    struct mh_delivery d = MH_DELIVERY_INIT;
    mh_event_set_delivery(ev, &d);
    assert_null(json_object_get(ev, "delivery"));
    d.remote_host = "mx.example.com";
    d.smtp_response = "";
    d.tls = 1;
    d.duration_ms = 0;
    d.attempt = 2;
    d.sending_ip = "192.0.2.25";
    mh_event_set_delivery(ev, &d);
    json_t *o = json_object_get(ev, "delivery");
    assert_string_equal(json_string_value(json_object_get(o, "remote_host")), "mx.example.com");
    assert_null(json_object_get(o, "smtp_response"));
    assert_null(json_object_get(o, "remote_ip"));
    assert_true(json_is_true(json_object_get(o, "tls")));
    assert_int_equal(json_integer_value(json_object_get(o, "duration_ms")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 2);
    assert_string_equal(json_string_value(json_object_get(o, "sending_ip")), "192.0.2.25");
    mh_event_set_machine(ev, "open");
    assert_true(json_is_true(json_object_get(json_object_get(ev, "open"), "machine")));
    json_decref(ev);

    json_t *v = json_pack("[b, i, i, s, s, s, n]", 1, 1, 0, "true", "1", "no");
    assert_true(mh_json_truthy(json_array_get(v, 0)));
    assert_true(mh_json_truthy(json_array_get(v, 1)));
    assert_false(mh_json_truthy(json_array_get(v, 2)));
    assert_true(mh_json_truthy(json_array_get(v, 3)));
    assert_true(mh_json_truthy(json_array_get(v, 4)));
    assert_false(mh_json_truthy(json_array_get(v, 5)));
    assert_false(mh_json_truthy(json_array_get(v, 6)));
    assert_false(mh_json_truthy(NULL));
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_ids),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_unknown_events_are_kept),
        cmocka_unit_test(test_malformed_bodies_fail_cleanly),
        cmocka_unit_test(test_wrong_types_are_absent_not_invented),
        cmocka_unit_test(test_metadata_rules),
        cmocka_unit_test(test_delivery_and_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
