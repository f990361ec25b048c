/* test_event_types.c — the canonical type table against the JSON Schema, and the
 * per-source, per-type counts of committed events (pipeline/event_counts.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "event_counts.h"
#include "mailhook/event_types.h"
#include "pipeline.h"

#define SCHEMA MH_FIXTURES_DIR "/../../schema/mailhook.event.v1.json"

static void table_is_the_schema_enum(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *schema = json_load_file(SCHEMA, 0, &jerr);
    assert_non_null(schema);
    json_t *types = json_object_get(json_object_get(json_object_get(schema, "properties"), "type"),
                                    "enum");
    assert_true(json_is_array(types));
    assert_int_equal(json_array_size(types), mh_event_types_n);
    for (size_t i = 0; i < mh_event_types_n; i++)
        assert_string_equal(json_string_value(json_array_get(types, i)), mh_event_types[i]);
    json_decref(schema);
}

static void index_of_known_and_unknown(void **state)
{
    (void)state;
    size_t other = mh_event_types_n - 1;
    assert_string_equal(mh_event_types[other], "other");
    assert_string_equal(mh_event_types[mh_event_type_index("email.bounced")], "email.bounced");
    assert_string_equal(mh_event_types[mh_event_type_index("email.complained")],
                        "email.complained");
    assert_int_equal(mh_event_type_index("email.bouncedx"), other);
    assert_int_equal(mh_event_type_index(""), other);
    assert_int_equal(mh_event_type_index(NULL), other);
}

static json_t *event(const char *source, const char *type)
{
    return json_pack("{s:s, s:s}", "source", source, "type", type);
}

/* Two sources; a batch with a claimed bounce, a duplicate bounce (not claimed), a dead
 * record and a record of a source the config no longer has. */
static void counts_only_claimed_events_of_known_sources(void **state)
{
    (void)state;
    struct mh_source a = {.name = "acme"}, b = {.name = "beta"};
    struct mh_source *srcs[] = {&a, &b};
    struct mh_config cfg = {.sources = srcs, .n_sources = 2};
    struct event_counts c;
    assert_int_equal(event_counts_init(&c, &cfg), 0);

    unsigned char yes_no[] = {1, 0}, yes[] = {1, 1};
    struct batch_rec recs[4] = {0};
    recs[0].events = json_pack("[o,o]", event("beta", "email.bounced"), event("beta", "email.bounced"));
    recs[0].emit = yes_no;
    recs[1].events = json_pack("[o,o]", event("acme", "email.delivered"), event("acme", "weird"));
    recs[1].emit = yes;
    recs[2].events = json_pack("[o]", event("acme", "email.delivered"));
    recs[2].emit = yes;
    recs[2].dlq_reason = "bad";
    recs[3].events = json_pack("[o]", event("gone", "email.delivered"));
    recs[3].emit = yes;
    struct batch batch = {.recs = recs, .n = 4};

    event_counts_add_batch(&c, &batch);
    event_counts_add_batch(&c, &batch);

    size_t bounced = mh_event_type_index("email.bounced");
    size_t delivered = mh_event_type_index("email.delivered");
    size_t other = mh_event_type_index("other");
    assert_int_equal(event_counts_get(&c, 1, bounced), 2);
    assert_int_equal(event_counts_get(&c, 0, bounced), 0);
    assert_int_equal(event_counts_get(&c, 0, delivered), 2);
    assert_int_equal(event_counts_get(&c, 0, other), 2);
    assert_int_equal(event_counts_get(&c, 1, delivered), 0);
    assert_int_equal(event_counts_get(&c, 2, delivered), 0); /* out of range */

    for (size_t i = 0; i < 4; i++) json_decref(recs[i].events);
    event_counts_free(&c);
    assert_null(c.n);
}

static void no_sources_counts_nothing(void **state)
{
    (void)state;
    struct mh_config cfg = {0};
    struct event_counts c;
    assert_int_equal(event_counts_init(&c, &cfg), 0);
    unsigned char yes[] = {1};
    struct batch_rec rec = {.events = json_pack("[o]", event("acme", "email.bounced")), .emit = yes};
    struct batch batch = {.recs = &rec, .n = 1};
    event_counts_add_batch(&c, &batch);
    assert_int_equal(event_counts_get(&c, 0, 0), 0);
    json_decref(rec.events);
    event_counts_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_is_the_schema_enum),
        cmocka_unit_test(index_of_known_and_unknown),
        cmocka_unit_test(counts_only_claimed_events_of_known_sources),
        cmocka_unit_test(no_sources_counts_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
