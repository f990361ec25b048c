/*
 * test_dedup_scope.c — the scope dedup keys a claim on: the provider's name, or
 * "provider/source" for the generic providers whose ids are unique only per sender; and
 * migrations/0006, which converts old claims, naming exactly the providers so marked; and
 * the claim key the worker computes for mh_claims, as migrations/0008 documents it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mailhook/crypto.h"
#include "mailhook/dedup_scope.h"
#include "mailhook/event.h"
#include "mailhook/provider.h"

#define MIGRATION MH_FIXTURES_DIR "/../../migrations/0006_dedup_scope.sql"

static void assert_scope(const char *provider, const char *source, const char *want)
{
    char *got = mh_dedup_scope(provider, source);
    assert_string_equal(got, want);
    free(got);
}

static void test_generic_providers_scope_by_source(void **state)
{
    (void)state;
    assert_scope("hmac", "maildog", "hmac/maildog");
    assert_scope("hmac", "dog-b", "hmac/dog-b");
    assert_scope("standard", "billing", "standard/billing");
}

static void test_platform_providers_scope_by_name(void **state)
{
    (void)state;
    assert_scope("ivymail", "ivy-a", "ivymail");
    assert_scope("ivymail", "ivy-b", "ivymail");
    assert_scope("sendgrid", "sg", "sendgrid");
    assert_scope("resend", "rs", "resend"); /* Standard Webhooks signatures, own platform */
    assert_scope("nosuchprovider", "x", "nosuchprovider");
    assert_scope(NULL, "x", "");
    assert_scope("hmac", NULL, "hmac/");
}

static void test_only_hmac_and_standard_are_generic(void **state)
{
    (void)state;
    for (const struct mh_provider *const *p = mh_providers; *p; p++) {
        int generic = !strcmp((*p)->name, "hmac") || !strcmp((*p)->name, "standard");
        if ((*p)->dedup_per_source != generic) fail_msg("%s: dedup_per_source", (*p)->name);
    }
}

/* The scope of what the providers themselves make: two sources of one provider. */
static json_t *parse_one(const char *provider, const char *source, const char *body,
                         const struct mh_headers *headers)
{
    const struct mh_provider *p = mh_provider_find(provider);
    assert_non_null(p);
    struct mh_raw raw = {.source = source, .provider = provider, .tenant = "acme",
                         .headers = headers, .body = (const unsigned char *)body,
                         .body_len = strlen(body), .received_ms = 1767225600000,
                         .topic = "mailhook.raw"};
    json_t *events = json_array();
    char err[256] = "";
    if (p->parse(&raw, events, err, sizeof(err)) < 0) fail_msg("%s: %s", provider, err);
    assert_int_equal(json_array_size(events), 1);
    json_t *ev = json_incref(json_array_get(events, 0));
    json_decref(events);
    return ev;
}

static void assert_event_scope(json_t *ev, const char *want)
{
    char *got = mh_event_dedup_scope(ev);
    assert_string_equal(got, want);
    free(got);
    /* The event keeps its own provider: only the claim is scoped. */
    assert_null(strchr(json_string_value(json_object_get(ev, "provider")), '/'));
}

static void test_events_of_two_sources(void **state)
{
    (void)state;
    const char *dog = "{\"id\":\"1\",\"event\":\"delivered\",\"message_id\":\"m1\","
                      "\"recipient\":\"a@example.com\",\"timestamp\":\"2026-03-01T12:00:00Z\"}";
    json_t *a = parse_one("hmac", "dog-a", dog, NULL);
    json_t *b = parse_one("hmac", "dog-b", dog, NULL);
    /* Same id from two senders: different scopes, so two claims. */
    assert_string_equal(json_string_value(json_object_get(a, "event_id")),
                        json_string_value(json_object_get(b, "event_id")));
    assert_event_scope(a, "hmac/dog-a");
    assert_event_scope(b, "hmac/dog-b");
    json_decref(a);
    json_decref(b);

    struct mh_headers h = {0};
    mh_headers_add(&h, "webhook-id", "msg_1");
    const char *std = "{\"type\":\"email.delivered\",\"timestamp\":\"2026-03-01T12:00:00Z\","
                      "\"data\":{\"recipient\":\"a@example.com\",\"message_id\":\"m1\"}}";
    json_t *s = parse_one("standard", "std-a", std, &h);
    assert_event_scope(s, "standard/std-a");
    json_decref(s);
    mh_headers_clear(&h);

    const char *ivy = "{\"event\":\"delivered\",\"message_id\":\"m1\",\"to\":\"a@example.com\","
                      "\"timestamp\":\"2026-03-01T12:00:00Z\"}";
    json_t *i = parse_one("ivymail", "ivy-a", ivy, NULL);
    assert_event_scope(i, "ivymail");
    json_decref(i);
}

static void assert_claim_key(const char *tenant, const char *scope, const char *event_id,
                             const char *want_hex)
{
    unsigned char key[MH_CLAIM_KEY_LEN];
    char hex[2 * MH_CLAIM_KEY_LEN + 1];
    mh_claim_key(tenant, scope, event_id, key);
    mh_hex_encode(key, sizeof(key), hex);
    assert_string_equal(hex, want_hex);
}

/* The first 16 bytes of SHA-256 over the three UTF-8 strings joined by a zero byte (the
 * expected keys: Python's hashlib over the same bytes). The zero byte keeps ("ab", "c")
 * and ("a", "bc") apart. */
static void test_claim_key_is_documented_digest(void **state)
{
    (void)state;
    assert_claim_key("acme", "ivymail", "ivy-1", "7b60f4ce64b2971f6d8b43ab3eaf3fd5");
    assert_claim_key("acme", "hmac/dog-a", "1", "8fbc570c754f4f5e7e2f043f7654f777");
    assert_claim_key("", "", "", "96a296d224f285c67bee93c30f8a3091");
    assert_claim_key(NULL, NULL, NULL, "96a296d224f285c67bee93c30f8a3091");
    assert_claim_key("t\xc3\xa9", "resend", "\xc3\xa9v\xc3\xa9nement-\xf0\x9f\x93\xa7",
                     "e3d16a7e2c51777d924b01008f8abd3d");
    unsigned char ab_c[MH_CLAIM_KEY_LEN], a_bc[MH_CLAIM_KEY_LEN];
    mh_claim_key("t", "ab", "c", ab_c);
    mh_claim_key("t", "a", "bc", a_bc);
    assert_memory_not_equal(ab_c, a_bc, MH_CLAIM_KEY_LEN);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* The conversion's lists of providers are SQL: each must name the flagged ones, no other. */
static void test_migration_converts_exactly_the_generic_providers(void **state)
{
    (void)state;
    const char *sql = slurp(MIGRATION);
    int lists = 0;
    for (const char *at = strstr(sql, "provider IN ("); at; at = strstr(at + 1, "provider IN (")) {
        const char *end = strchr(at, ')');
        assert_non_null(end);
        lists++;
        for (const struct mh_provider *const *p = mh_providers; *p; p++) {
            char quoted[80];
            snprintf(quoted, sizeof(quoted), "'%s'", (*p)->name);
            const char *hit = strstr(at, quoted);
            int named = hit && hit < end;
            if (named != (*p)->dedup_per_source)
                fail_msg("0006_dedup_scope.sql list %d: %s %s", lists, (*p)->name,
                         named ? "is converted but not dedup_per_source" : "is not converted");
        }
    }
    assert_int_equal(lists, 2); /* the DELETE and the UPDATE */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generic_providers_scope_by_source),
        cmocka_unit_test(test_platform_providers_scope_by_name),
        cmocka_unit_test(test_only_hmac_and_standard_are_generic),
        cmocka_unit_test(test_events_of_two_sources),
        cmocka_unit_test(test_claim_key_is_documented_digest),
        cmocka_unit_test(test_migration_converts_exactly_the_generic_providers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
