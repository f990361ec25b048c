/*
 * test_suppression_rules.c — which event does what to its recipient's suppression state
 * under a tenant's rules (shared/suppression_rules.c), the effect objects handed to
 * PostgreSQL, address normalization, and the [suppression] / [suppression.TENANT] /
 * [api] config sections (defaults, inheritance, errors with file and line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* The rules are pure functions; the test compiles them in directly. */
#include "mailhook/api_tokens.h"
#include "mailhook/suppression_rules.h"

static char path[64];

static struct mh_config *load_text(const char *text, char *err, size_t errlen)
{
    snprintf(path, sizeof(path), "/tmp/mh-test-supp-%d.ini", (int)getpid());
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    struct mh_config *cfg = mh_config_load(path, err, errlen);
    unlink(path);
    return cfg;
}

static json_t *event(const char *type, const char *bounce_class)
{
    json_t *ev = json_pack("{ssssssssssss}", "type", type, "tenant", "acme", "recipient",
                           "a@example.com", "event_id", "ev-1", "occurred_at",
                           "2026-11-20T12:00:00.000Z", "received_at", "2026-11-20T12:00:05.000Z");
    if (bounce_class) json_object_set_new(ev, "bounce", json_pack("{ss}", "class", bounce_class));
    return ev;
}

static struct mh_suppression_policy defaults(void)
{
    struct mh_suppression_policy p = {
        .hard_bounce = 1, .complaint = 1, .unsubscribe = 1, .resubscribe = 1,
        .soft_bounce_threshold = 5, .soft_bounce_window_hours = 72,
        .soft_bounce_suppress_hours = 168, .soft_bounce_count_delays = 1,
    };
    return p;
}

struct rule_case {
    const char *type, *bounce_class;
    enum supp_op op;
    const char *reason;
};

static void test_default_rules(void **state)
{
    (void)state;
    static const struct rule_case cases[] = {
        {"email.bounced", "hard", SUPP_SUPPRESS, "bounce"},
        {"email.bounced", "soft", SUPP_SOFT, "soft_bounce"},
        {"email.bounced", "undetermined", SUPP_SOFT, "soft_bounce"},
        {"email.bounced", NULL, SUPP_SOFT, "soft_bounce"},
        {"email.delivery_delayed", "soft", SUPP_SOFT, "soft_bounce"},
        {"email.complained", NULL, SUPP_SUPPRESS, "complaint"},
        {"email.unsubscribed", NULL, SUPP_SUPPRESS, "unsubscribe"},
        {"email.resubscribed", NULL, SUPP_LIFT, "resubscribe"},
        {"email.suppressed", NULL, SUPP_NONE, NULL},
        {"email.delivered", NULL, SUPP_RESET, "delivered"},
        {"email.opened", NULL, SUPP_NONE, NULL},
        {"email.failed", NULL, SUPP_NONE, NULL},
        {"other", NULL, SUPP_NONE, NULL},
    };
    struct mh_suppression_policy pol = defaults();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *ev = event(cases[i].type, cases[i].bounce_class);
        const char *reason = "unset";
        enum supp_op op = supp_rule(&pol, ev, &reason);
        if (op != cases[i].op) fail_msg("%s/%s: op %d, want %d", cases[i].type,
                                        cases[i].bounce_class ? cases[i].bounce_class : "-", op,
                                        cases[i].op);
        if (cases[i].reason) assert_string_equal(reason, cases[i].reason);
        else assert_null(reason);
        json_decref(ev);
    }
}

/* A GetMailer email.sent is the recipient server's acceptance: it resets the soft count
 * like a delivery. Another provider's email.sent (a hand-off a bounce may follow) does
 * not, and neither does a GetMailer sent when no soft rule is set. */
static void test_acceptance_resets_for_getmailer_only(void **state)
{
    (void)state;
    struct mh_suppression_policy pol = defaults();
    const char *reason;
    json_t *ev = event("email.sent", NULL);
    assert_int_equal(supp_rule(&pol, ev, &reason), SUPP_NONE);
    json_object_set_new(ev, "provider", json_string("mailersend"));
    assert_int_equal(supp_rule(&pol, ev, &reason), SUPP_NONE);
    json_object_set_new(ev, "provider", json_string("getmailer"));
    assert_int_equal(supp_rule(&pol, ev, &reason), SUPP_RESET);
    assert_string_equal(reason, "delivered");
    pol.soft_bounce_threshold = 0;
    assert_int_equal(supp_rule(&pol, ev, &reason), SUPP_NONE);
    json_decref(ev);
}

static void test_rules_switched_off(void **state)
{
    (void)state;
    struct mh_suppression_policy pol = defaults();
    const char *reason;
    pol.hard_bounce = pol.complaint = pol.unsubscribe = pol.resubscribe = 0;
    pol.soft_bounce_count_delays = 0;
    const char *types[] = {"email.complained", "email.unsubscribed", "email.resubscribed",
                           "email.delivery_delayed"};
    for (size_t i = 0; i < 4; i++) {
        json_t *ev = event(types[i], NULL);
        assert_int_equal(supp_rule(&pol, ev, &reason), SUPP_NONE);
        json_decref(ev);
    }
    json_t *hard = event("email.bounced", "hard");
    assert_int_equal(supp_rule(&pol, hard, &reason), SUPP_NONE); /* not counted as soft either */
    json_t *soft = event("email.bounced", "soft");
    assert_int_equal(supp_rule(&pol, soft, &reason), SUPP_SOFT);
    pol.soft_bounce_threshold = 0;
    assert_int_equal(supp_rule(&pol, soft, &reason), SUPP_NONE);
    json_t *delivered = event("email.delivered", NULL);
    assert_int_equal(supp_rule(&pol, delivered, &reason), SUPP_NONE); /* no rule, no reset */
    json_decref(delivered);
    json_decref(hard);
    json_decref(soft);
}

static void test_no_recipient_no_effect(void **state)
{
    (void)state;
    struct mh_suppression_policy pol = defaults();
    const char *reason;
    json_t *ev = event("email.complained", NULL);
    json_object_del(ev, "recipient");
    assert_int_equal(supp_rule(&pol, ev, &reason), SUPP_NONE);
    assert_null(supp_effect(&pol, ev, 1));
    json_decref(ev);
}

/* State is kept for exactly the addresses the API and the CLI can name again. */
static void test_effect_needs_an_address_the_api_takes(void **state)
{
    (void)state;
    struct mh_suppression_policy pol = defaults();
    json_t *ev = event("email.complained", NULL);
    char addr[SUPP_ADDRESS_MAX + 2];
    memset(addr, 'b', sizeof(addr));
    memcpy(addr + SUPP_ADDRESS_MAX - 12, "@example.com", 13); /* SUPP_ADDRESS_MAX bytes */
    json_object_set_new(ev, "recipient", json_string(addr));
    json_t *e = supp_effect(&pol, ev, 1);
    assert_non_null(e);
    assert_int_equal(strlen(json_string_value(json_object_get(e, "address"))), SUPP_ADDRESS_MAX);
    json_decref(e);
    memset(addr, 'b', sizeof(addr));
    memcpy(addr + SUPP_ADDRESS_MAX + 1 - 12, "@example.com", 13); /* one byte more */
    json_object_set_new(ev, "recipient", json_string(addr));
    assert_null(supp_effect(&pol, ev, 1));
    json_object_set_new(ev, "recipient", json_string("undisclosed recipients"));
    assert_null(supp_effect(&pol, ev, 1));
    json_decref(ev);
}

static void test_effect_objects(void **state)
{
    (void)state;
    struct mh_suppression_policy pol = defaults();
    pol.soft_bounce_threshold = 3;
    pol.soft_bounce_suppress_hours = 24;
    json_t *ev = event("email.delivery_delayed", "soft");
    json_t *e = supp_effect(&pol, ev, 1);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "op")), "soft");
    assert_string_equal(json_string_value(json_object_get(e, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(e, "address")), "a@example.com");
    assert_string_equal(json_string_value(json_object_get(e, "at")), "2026-11-20T12:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(e, "event_id")), "ev-1");
    assert_string_equal(json_string_value(json_object_get(e, "source")), "email.delivery_delayed");
    assert_true(json_is_true(json_object_get(e, "fresh")));
    assert_int_equal(json_integer_value(json_object_get(e, "threshold")), 3);
    assert_int_equal(json_integer_value(json_object_get(e, "window_hours")), 72);
    assert_int_equal(json_integer_value(json_object_get(e, "duration_hours")), 24);
    json_decref(e);
    json_decref(ev);

    /* Without occurred_at the register orders the write by received_at. */
    ev = event("email.unsubscribed", NULL);
    json_object_del(ev, "occurred_at");
    e = supp_effect(&pol, ev, 0);
    assert_string_equal(json_string_value(json_object_get(e, "op")), "suppress");
    assert_string_equal(json_string_value(json_object_get(e, "reason")), "unsubscribe");
    assert_string_equal(json_string_value(json_object_get(e, "at")), "2026-11-20T12:00:05.000Z");
    assert_true(json_is_false(json_object_get(e, "fresh")));
    assert_null(json_object_get(e, "threshold"));
    json_decref(e);
    json_object_del(ev, "received_at");
    assert_null(supp_effect(&pol, ev, 1));
    json_decref(ev);
}

static void test_address_normalize(void **state)
{
    (void)state;
    char out[SUPP_ADDRESS_MAX + 1];
    assert_int_equal(supp_address_normalize("  Jane.Doe@Example.COM \n", out, sizeof(out)), 0);
    assert_string_equal(out, "jane.doe@example.com");
    assert_int_equal(supp_address_normalize("no-at-sign", out, sizeof(out)), -1);
    assert_int_equal(supp_address_normalize("", out, sizeof(out)), -1);
    assert_int_equal(supp_address_normalize("a b@example.com", out, sizeof(out)), -1);
    assert_int_equal(supp_address_normalize("a\x01@example.com", out, sizeof(out)), -1);
    /* Up to SUPP_ADDRESS_MAX bytes, white space around it aside. */
    char longer[SUPP_ADDRESS_MAX + 8];
    memset(longer, 'A', sizeof(longer));
    longer[0] = ' ';
    memcpy(longer + 1 + SUPP_ADDRESS_MAX - 12, "@example.com ", 14);
    assert_int_equal(supp_address_normalize(longer, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), SUPP_ADDRESS_MAX);
    assert_int_equal(out[0], 'a');
    memset(longer, 'a', sizeof(longer));
    memcpy(longer + SUPP_ADDRESS_MAX + 1 - 12, "@example.com", 13);
    assert_int_equal(supp_address_normalize(longer, out, sizeof(out)), -1); /* one byte over */
    assert_int_equal(supp_address_normalize(longer + 1, out, SUPP_ADDRESS_MAX), -1); /* no room */
    assert_int_equal(supp_address_normalize("a@b", out, 3), -1); /* no room */
    assert_true(supp_reason_valid("manual") && supp_reason_valid("bounce"));
    assert_false(supp_reason_valid("soft_bounce") || supp_reason_valid(NULL));
}

static void test_config_defaults(void **state)
{
    (void)state;
    char err[512];
    struct mh_config *cfg = load_text("[suppression.other]\n", err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->api.listen, "127.0.0.1:8081");
    assert_int_equal(cfg->api.n_tokens, 0);
    assert_int_equal(cfg->api.retention_days, 30);
    assert_int_equal(cfg->api.default_limit, 100);
    const struct mh_suppression_policy *p = mh_config_suppression(cfg, "acme");
    assert_ptr_equal(p, &cfg->suppression);
    assert_true(p->hard_bounce && p->complaint && p->unsubscribe && p->resubscribe);
    assert_int_equal(p->soft_bounce_threshold, 5);
    assert_int_equal(p->soft_bounce_window_hours, 72);
    assert_int_equal(p->soft_bounce_suppress_hours, 168);
    assert_true(p->soft_bounce_count_delays);
    mh_config_free(cfg);
}

static void test_config_tenant_inherits(void **state)
{
    (void)state;
    char err[512];
    setenv("MH_TEST_API_TOKEN", "tok-env", 1);
    /* The tenant section comes first: it still inherits the defaults set after it. */
    struct mh_config *cfg = load_text("[suppression.acme]\n"
                                      "complaint = false\n"
                                      "soft_bounce_threshold = 3\n"
                                      "[suppression]\n"
                                      "soft_bounce_window_hours = 48\n"
                                      "unsubscribe = no\n"
                                      "[api]\n"
                                      "listen = 0.0.0.0:9000\n"
                                      "token = one\n"
                                      "token_env = MH_TEST_API_TOKEN\n"
                                      "max_limit = 500\n",
                                      err, sizeof(err));
    if (!cfg) fail_msg("%s", err);
    const struct mh_suppression_policy *acme = mh_config_suppression(cfg, "acme");
    const struct mh_suppression_policy *def = mh_config_suppression(cfg, "zeta");
    assert_string_equal(acme->tenant, "acme");
    assert_false(acme->complaint);
    assert_true(def->complaint);
    assert_int_equal(acme->soft_bounce_threshold, 3);
    assert_int_equal(def->soft_bounce_threshold, 5);
    assert_int_equal(acme->soft_bounce_window_hours, 48);
    assert_false(acme->unsubscribe);
    assert_false(def->unsubscribe);
    assert_true(acme->hard_bounce);
    assert_string_equal(cfg->api.listen, "0.0.0.0:9000");
    assert_int_equal(cfg->api.n_tokens, 2);
    assert_ptr_equal(mh_api_token_find(cfg, "one", 3), &cfg->api.tokens[0]);
    assert_ptr_equal(mh_api_token_find(cfg, "tok-env", 7), &cfg->api.tokens[1]);
    assert_true(cfg->api.tokens[0].operator && cfg->api.tokens[1].operator);
    assert_int_equal(cfg->api.max_limit, 500);

    /* The rules follow the event's tenant. */
    json_t *ev = event("email.complained", NULL);
    const char *reason;
    assert_int_equal(supp_rule(acme, ev, &reason), SUPP_NONE);
    assert_int_equal(supp_rule(def, ev, &reason), SUPP_SUPPRESS);
    json_decref(ev);
    mh_config_free(cfg);
}

static void expect_error(const char *text, int line, const char *needle)
{
    char err[1024] = "", prefix[128];
    struct mh_config *cfg = load_text(text, err, sizeof(err));
    if (cfg) {
        mh_config_free(cfg);
        fail_msg("expected an error containing \"%s\"", needle);
    }
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
    if (!strstr(err, needle)) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_error("[suppression]\nhard_bounce = maybe\n", 2, "expected true or false");
    expect_error("[suppression]\n\nsoft_bounce_threshold = -1\n", 3, "outside 0..1000");
    expect_error("[suppression.acme]\nsoft_bounce_window_hours = 0\n", 2, "outside 1..8760");
    expect_error("[suppression.acme]\ncolour = red\n", 2,
                 "[suppression.acme]: unknown key \"colour\"");
    expect_error("[suppression.a/b]\nhard_bounce = true\n", 1, "tenant names");
    expect_error("[api]\ntoken =\n", 2, "[api] token: empty");
    expect_error("[api]\ntoken_env = MH_TEST_NO_SUCH_VARIABLE\n", 2, "is not set");
    expect_error("[api]\ntoken_file = /nonexistent/token\n", 2, "cannot read");
    expect_error("[api]\nmaintenance_interval_s = 100000\n", 2, "outside 0..86400");
    expect_error("[api]\nlisten_on = x\n", 2, "[api]: unknown key \"listen_on\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_rules),
        cmocka_unit_test(test_rules_switched_off),
        cmocka_unit_test(test_acceptance_resets_for_getmailer_only),
        cmocka_unit_test(test_no_recipient_no_effect),
        cmocka_unit_test(test_effect_needs_an_address_the_api_takes),
        cmocka_unit_test(test_effect_objects),
        cmocka_unit_test(test_address_normalize),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_tenant_inherits),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
