/* test_lanes.c — how a batch is split over claim lanes (worker/lanes.c): one address,
 * one lane; lanes balanced by events; each lane's records in their order; no split when
 * a record's addresses are in two lanes already. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lanes.h"
#include "mailhook/config.h"

/* A record of events, each {"event_id", "tenant", "recipient"} (recipient NULL: none). */
static void add_rec(struct batch *b, const char *id, const char *tenant,
                    const char *const *recipients, size_t n)
{
    b->recs = realloc(b->recs, (b->n + 1) * sizeof(*b->recs));
    struct batch_rec *r = &b->recs[b->n++];
    memset(r, 0, sizeof(*r));
    if (n == 0) return; /* a dead letter: no events */
    r->events = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_pack("{s:s, s:s}", "event_id", id, "tenant", tenant);
        if (recipients[i]) json_object_set_new(ev, "recipient", json_string(recipients[i]));
        json_array_append_new(r->events, ev);
    }
}

/* A record of one event of the given canonical type. */
static void add_typed(struct batch *b, const char *id, const char *type, const char *recipient)
{
    const char *rc[] = {recipient};
    add_rec(b, id, "acme", rc, 1);
    json_t *ev = json_array_get(b->recs[b->n - 1].events, 0);
    json_object_set_new(ev, "type", json_string(type));
}

static void add_one(struct batch *b, const char *id, const char *recipient)
{
    const char *rc[] = {recipient};
    add_rec(b, id, "acme", rc, 1);
}

static const char *id_of(const struct batch *b, size_t i)
{
    if (!b->recs[i].events) return "-";
    return json_string_value(json_object_get(json_array_get(b->recs[i].events, 0), "event_id"));
}

static size_t lane_of(const size_t *start, size_t n, size_t i)
{
    for (size_t l = 0; l < n; l++)
        if (i >= start[l] && i < start[l + 1]) return l;
    return n;
}

static size_t find(const struct batch *b, const char *id)
{
    for (size_t i = 0; i < b->n; i++)
        if (!strcmp(id_of(b, i), id)) return i;
    fail_msg("no record %s", id);
    return 0;
}

static void free_batch(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) json_decref(b->recs[i].events);
    free(b->recs);
}

static void distinct_addresses_are_balanced_and_keep_their_order(void **state)
{
    (void)state;
    struct batch b = {0};
    char id[16], rcpt[32];
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        snprintf(rcpt, sizeof(rcpt), "u%d@example.com", i);
        add_one(&b, id, rcpt);
    }
    size_t start[3];
    assert_int_equal(lanes_plan(NULL, &b, 2, start), 0);
    assert_int_equal(start[0], 0);
    assert_int_equal(start[1], 4);
    assert_int_equal(start[2], 8);
    /* Each lane's records in the order they came. */
    for (size_t l = 0; l < 2; l++)
        for (size_t i = start[l] + 1; i < start[l + 1]; i++)
            assert_true(strcmp(id_of(&b, i - 1), id_of(&b, i)) < 0);
    free_batch(&b);
}

static void one_address_is_in_one_lane_whatever_its_case(void **state)
{
    (void)state;
    struct batch b = {0};
    add_one(&b, "a0", "Same@Example.com");
    add_one(&b, "b0", "other0@example.com");
    add_one(&b, "b1", "other1@example.com");
    add_one(&b, "a1", " same@example.com ");
    add_one(&b, "b2", "other2@example.com");
    add_one(&b, "a2", "SAME@EXAMPLE.COM");
    add_one(&b, "b3", "other3@example.com");
    size_t start[4];
    assert_int_equal(lanes_plan(NULL, &b, 3, start), 0);
    assert_int_equal(start[3], 7);
    size_t a0 = find(&b, "a0"), a1 = find(&b, "a1"), a2 = find(&b, "a2");
    assert_int_equal(lane_of(start, 3, a0), lane_of(start, 3, a1));
    assert_int_equal(lane_of(start, 3, a0), lane_of(start, 3, a2));
    assert_true(a0 < a1 && a1 < a2);
    /* The other lanes got the rest: none is empty. */
    for (size_t l = 0; l < 3; l++) assert_true(start[l + 1] > start[l]);
    free_batch(&b);
}

static void tenants_keep_addresses_apart(void **state)
{
    (void)state;
    struct batch b = {0};
    const char *x[] = {"x@example.com"};
    add_rec(&b, "t1", "one", x, 1);
    add_rec(&b, "t2", "two", x, 1);
    size_t start[3];
    /* Two tenants' "x@example.com" are two addresses: balanced over two lanes. */
    assert_int_equal(lanes_plan(NULL, &b, 2, start), 0);
    assert_int_equal(start[1], 1);
    assert_int_not_equal(lane_of(start, 2, find(&b, "t1")), lane_of(start, 2, find(&b, "t2")));
    free_batch(&b);
}

static void a_record_bridging_two_lanes_stops_the_split(void **state)
{
    (void)state;
    struct batch b = {0};
    add_one(&b, "p", "p@example.com"); /* lane 0 */
    add_one(&b, "q", "q@example.com"); /* lane 1: the emptier */
    const char *both[] = {"q@example.com", "P@example.com"};
    add_rec(&b, "pq", "acme", both, 2);
    size_t start[3];
    assert_int_equal(lanes_plan(NULL, &b, 2, start), -1);
    /* Left as it was. */
    assert_string_equal(id_of(&b, 0), "p");
    assert_string_equal(id_of(&b, 1), "q");
    assert_string_equal(id_of(&b, 2), "pq");
    free_batch(&b);
}

static void records_without_an_address_fill_the_emptier_lanes(void **state)
{
    (void)state;
    struct batch b = {0};
    const char *three[] = {"m1@example.com", "m2@example.com", "m3@example.com"};
    add_rec(&b, "many", "acme", three, 3); /* lane 0, 3 events */
    const char *none[] = {NULL};
    add_rec(&b, "domain1", "acme", none, 1); /* no recipient: lane 1 */
    add_rec(&b, "dead", "acme", NULL, 0);    /* a dead letter: lane 1 */
    add_rec(&b, "domain2", "acme", none, 1); /* lane 1 has 2 */
    add_one(&b, "m2again", "m2@example.com"); /* its address is in lane 0 */
    size_t start[3];
    assert_int_equal(lanes_plan(NULL, &b, 2, start), 0);
    assert_int_equal(lane_of(start, 2, find(&b, "many")), 0);
    assert_int_equal(lane_of(start, 2, find(&b, "m2again")), 0);
    assert_int_equal(lane_of(start, 2, find(&b, "domain1")), 1);
    assert_int_equal(lane_of(start, 2, find(&b, "domain2")), 1);
    assert_int_equal(start[1], 2);
    assert_int_equal(start[2], 5);
    free_batch(&b);
}

static void one_lane_or_too_many_lanes(void **state)
{
    (void)state;
    struct batch b = {0};
    add_one(&b, "e1", "a@example.com");
    add_one(&b, "e2", "b@example.com");
    size_t start[MH_CLAIM_LANES_MAX + 2];
    assert_int_equal(lanes_plan(NULL, &b, 1, start), 0);
    assert_int_equal(start[0], 0);
    assert_int_equal(start[1], 2);
    assert_string_equal(id_of(&b, 0), "e1");
    assert_int_equal(lanes_plan(NULL, &b, 0, start), -1);
    assert_int_equal(lanes_plan(NULL, &b, MH_CLAIM_LANES_MAX + 1, start), -1);
    free_batch(&b);
}

static struct mh_config *default_config(void)
{
    char path[64], err[512];
    snprintf(path, sizeof(path), "/tmp/mh-test-lanes-%d.ini", (int)getpid());
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("[worker]\nclaim_lanes = 2\n", fp);
    fclose(fp);
    struct mh_config *cfg = mh_config_load(path, err, sizeof(err));
    unlink(path);
    assert_non_null(cfg);
    return cfg;
}

static void records_with_a_suppression_effect_all_go_to_the_first_lane(void **state)
{
    (void)state;
    struct mh_config *cfg = default_config();
    struct batch b = {0};
    add_typed(&b, "c1", "email.complained", "c1@example.com");
    add_typed(&b, "d1", "email.delivered", "d1@example.com");
    add_typed(&b, "c2", "email.complained", "c2@example.com");   /* lane 0 though fuller */
    add_typed(&b, "s1", "email.bounced", "s1@example.com");      /* a soft bounce */
    add_typed(&b, "d2", "email.delivered", "d2@example.com");
    add_typed(&b, "o1", "email.opened", "o1@example.com");       /* no effect */
    size_t start[3];
    assert_int_equal(lanes_plan(cfg, &b, 2, start), 0);
    for (const char *const *id = (const char *const[]){"c1", "c2", "s1", NULL}; *id; id++)
        assert_int_equal(lane_of(start, 2, find(&b, *id)), 0);
    /* Deliveries (a reset locks only an address under suppression) and the rest fill
     * the other lane. */
    assert_int_equal(lane_of(start, 2, find(&b, "d1")), 1);
    assert_int_equal(lane_of(start, 2, find(&b, "d2")), 1);
    assert_int_equal(lane_of(start, 2, find(&b, "o1")), 1);
    free_batch(&b);

    /* A complaint for an address a delivery put in the second lane: no split. */
    b = (struct batch){0};
    add_typed(&b, "c1", "email.complained", "c1@example.com");
    add_typed(&b, "d1", "email.delivered", "x@example.com");
    add_typed(&b, "c2", "email.complained", "X@example.com");
    assert_int_equal(lanes_plan(cfg, &b, 2, start), -1);
    assert_string_equal(id_of(&b, 1), "d1");
    free_batch(&b);
    mh_config_free(cfg);
}

/* claim_lanes is the group's: a worker's share follows the partitions it holds. */
static void a_worker_splits_into_its_share_of_the_lanes(void **state)
{
    (void)state;
    assert_int_equal(lanes_for_share(2, 6, 6), 2);  /* alone */
    assert_int_equal(lanes_for_share(2, 3, 6), 1);  /* one of two */
    assert_int_equal(lanes_for_share(2, 4, 6), 2);  /* the larger part of an uneven split */
    assert_int_equal(lanes_for_share(2, 2, 6), 1);
    assert_int_equal(lanes_for_share(8, 3, 6), 4);
    assert_int_equal(lanes_for_share(8, 1, 12), 1); /* never fewer than one */
    assert_int_equal(lanes_for_share(4, 5, 12), 2);
    assert_int_equal(lanes_for_share(1, 6, 6), 1);
    /* Counts not known: all of them, as before any assignment. */
    assert_int_equal(lanes_for_share(3, 0, 6), 3);
    assert_int_equal(lanes_for_share(3, 2, -1), 3);
    assert_int_equal(lanes_for_share(3, 7, 6), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(distinct_addresses_are_balanced_and_keep_their_order),
        cmocka_unit_test(one_address_is_in_one_lane_whatever_its_case),
        cmocka_unit_test(tenants_keep_addresses_apart),
        cmocka_unit_test(a_record_bridging_two_lanes_stops_the_split),
        cmocka_unit_test(records_without_an_address_fill_the_emptier_lanes),
        cmocka_unit_test(one_lane_or_too_many_lanes),
        cmocka_unit_test(records_with_a_suppression_effect_all_go_to_the_first_lane),
        cmocka_unit_test(a_worker_splits_into_its_share_of_the_lanes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
