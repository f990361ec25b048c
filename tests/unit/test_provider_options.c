/*
 * test_provider_options.c — the generic parser of providers' typed options: types,
 * bounds, defaults, repetition, error texts and lines; every registered provider's
 * table; the errors mh_config_load reports for a source's options.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mailhook/config.h"
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"
#include "provider_test.h"

static const struct mh_option_def defs[] = {
    {.name = "count", .type = MH_OPT_INT, .def = "7", .min = -1, .max = 10, .help = "n"},
    {.name = "flag", .type = MH_OPT_BOOL, .def = "true", .help = "b"},
    {.name = "strict", .type = MH_OPT_BOOL, .def = "false", .flags = MH_OPT_STRICT, .help = "s"},
    {.name = "mode", .type = MH_OPT_CHOICE, .def = "b", .choices = "a|b|c", .help = "m"},
    {.name = "name", .type = MH_OPT_STRING, .help = "no default"},
    {.name = "path", .type = MH_OPT_FILE, .flags = MH_OPT_REPEATABLE, .help = "f"},
    {.name = "word", .type = MH_OPT_STRING, .flags = MH_OPT_NONEMPTY, .help = "w"},
    {0},
};
#define N_DEFS 7

/* A kv list from "key=value" strings; line numbers 10, 11, ... */
static struct mh_kv *kvs(struct mh_kv *store, const char *const *pairs)
{
    size_t n = 0;
    for (; pairs[n]; n++) {
        static char keys[16][32];
        const char *eq = strchr(pairs[n], '=');
        snprintf(keys[n], sizeof(keys[n]), "%.*s", (int)(eq - pairs[n]), pairs[n]);
        store[n] = (struct mh_kv){keys[n], (char *)eq + 1, 10 + (int)n, NULL};
        if (n) store[n - 1].next = &store[n];
    }
    return n ? store : NULL;
}

/* Parses pairs; returns the parser's result, with line and err. */
static int parse(const char *const *pairs, struct mh_opt_value *values, int *line, char *err)
{
    struct mh_kv store[16];
    return mh_options_parse(defs, "demo", kvs(store, pairs), values, line, err, 256);
}

static void test_defaults_and_values(void **state)
{
    (void)state;
    struct mh_opt_value v[N_DEFS];
    int line = -1;
    char err[256] = "";
    assert_int_equal(mh_options_count(defs), N_DEFS);
    assert_int_equal(parse((const char *const[]){NULL}, v, &line, err), 0);
    assert_int_equal(v[0].num, 7);
    assert_int_equal(v[0].line, 0);
    assert_int_equal(v[1].num, 1);
    assert_int_equal(v[2].num, 0);
    assert_int_equal(v[3].num, 1);
    assert_string_equal(v[3].str, "b");
    assert_null(v[4].str);

    const char *const set[] = {"count=-1", "flag=off", "mode=c", "name=", "path=/a", "path=/b",
                               NULL};
    assert_int_equal(parse(set, v, &line, err), 0);
    assert_int_equal(v[0].num, -1);
    assert_int_equal(v[0].line, 10);
    assert_int_equal(v[1].num, 0);
    assert_int_equal(v[3].num, 2);
    assert_string_equal(v[4].str, ""); /* a plain string may be empty */
    assert_string_equal(v[5].str, "/a"); /* repeatable: the first is the value */
    assert_int_equal(v[5].line, 14);
}

/* Each bad value: the parser fails on its line with the expected text. */
static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *pairs[3];
        int line;
        const char *msg;
    } cases[] = {
        {{"count=abc"}, 10, "count: \"abc\" is not a whole number"},
        {{"count=-5"}, 10, "count: -5 is outside -1..10"},
        {{"count=11"}, 10, "count: 11 is outside -1..10"},
        {{"count=3x"}, 10, "count: \"3x\" is not a whole number"},
        {{"count="}, 10, "count: \"\" is not a whole number"},
        {{"count=99999999999999999999999"}, 10, "is not a whole number"},
        {{"flag=maybe"}, 10, "flag: expected true or false, not \"maybe\""},
        {{"strict=yes"}, 10, "strict: expected true or false, not \"yes\""},
        {{"mode=d"}, 10, "mode: expected a, b or c, not \"d\""},
        {{"path="}, 10, "path: empty"},
        {{"word="}, 10, "word: empty"},
        {{"color=red"}, 10, "unknown key \"color\" for provider demo"},
        {{"count=1", "count=2"}, 11, "count: set twice (first on line 10)"},
        {{"path=/a", "path="}, 11, "path: empty"}, /* every occurrence is checked */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mh_opt_value v[N_DEFS];
        int line = -1;
        char err[256] = "";
        assert_int_equal(parse(cases[i].pairs, v, &line, err), -1);
        assert_int_equal(line, cases[i].line);
        if (!strstr(err, cases[i].msg)) fail_msg("\"%s\" lacks \"%s\"", err, cases[i].msg);
    }
    struct mh_opt_value v[N_DEFS];
    int line;
    char err[256];
    assert_int_equal(parse((const char *const[]){"strict=true", NULL}, v, &line, err), 0);
    assert_int_equal(v[2].num, 1);
}

/* Every provider's table: unique names, help, sane bounds, defaults that parse. */
static void test_every_provider_table(void **state)
{
    (void)state;
    int tolerances = 0;
    for (const struct mh_provider *const *p = mh_providers; *p; p++) {
        const struct mh_option_def *t = (*p)->options;
        for (size_t i = 0; i < mh_options_count(t); i++) {
            assert_non_null(t[i].help);
            assert_true(*t[i].help);
            assert_ptr_equal(mh_options_find(t, t[i].name), &t[i]);
            if (t[i].type == MH_OPT_INT) assert_true(t[i].min <= t[i].max);
            if (t[i].type == MH_OPT_CHOICE) assert_non_null(t[i].choices);
            if (t[i].def) {
                struct mh_opt_value v;
                char err[256] = "";
                if (mh_option_parse_value(&t[i], t[i].def, &v, err, sizeof(err)) < 0)
                    fail_msg("%s: default of %s: %s", (*p)->name, t[i].name, err);
            }
            tolerances += !strcmp(t[i].name, "timestamp_tolerance_s");
        }
    }
    assert_true(tolerances >= 7);
}

static void test_postal_and_ark_defaults(void **state)
{
    (void)state;
    const struct mh_option_def *d =
        mh_options_find(mh_provider_find("postal")->options, "timestamp_tolerance_s");
    assert_string_equal(d->def, "86400");
    assert_int_equal(d->min, 0);
    assert_int_equal(d->max, 31L * 86400);
    d = mh_options_find(mh_provider_find("ark")->options, "timestamp_tolerance_s");
    assert_string_equal(d->def, "345600");
}

/* Through mh_config_load: the error names file, line and option; typed reads after. */
static void test_config_errors_and_reads(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        const char *msg;
    } bad[] = {
        {"-5", ":5: [source.mg]: timestamp_tolerance_s: -5 is outside 0..2678400"},
        {"abc", ":5: [source.mg]: timestamp_tolerance_s: \"abc\" is not a whole number"},
    };
    for (size_t i = 0; i < 2; i++) {
        char ini[256];
        snprintf(ini, sizeof(ini),
                 "[ingest]\n\n[source.mg]\nprovider = mailgun\ntimestamp_tolerance_s = %s\n"
                 "secret = k\n",
                 bad[i].value);
        assert_true(pt_config_fails_with(ini, bad[i].msg));
    }
    assert_true(pt_config_fails_with("[source.mg]\nprovider = mailgun\nsecret = k\n"
                                     "timestamp_tolerance_s = 1\ntimestamp_tolerance_s = 2\n",
                                     ":5: [source.mg]: timestamp_tolerance_s: set twice"));

    struct mh_config *cfg = pt_config("[source.mg]\nprovider = mailgun\nsecret = k\n"
                                      "[source.m2]\nprovider = mailgun\nsecret = k\n"
                                      "timestamp_tolerance_s = 60\n"
                                      "[source.b]\nprovider = brevo\nsecret = k\nbearer = true\n");
    assert_int_equal(mh_source_opt_int(mh_config_source(cfg, "mg"), "timestamp_tolerance_s"),
                     9 * 3600);
    assert_int_equal(mh_source_opt_int(mh_config_source(cfg, "m2"), "timestamp_tolerance_s"), 60);
    assert_int_equal(mh_source_opt_bool(mh_config_source(cfg, "b"), "bearer"), 1);
    assert_true(mh_source_takes(mh_config_source(cfg, "b"), "bearer"));
    assert_false(mh_source_takes(mh_config_source(cfg, "mg"), "bearer"));
    assert_string_equal(mh_source_opt(mh_config_source(cfg, "m2"), "timestamp_tolerance_s"),
                        "60");
    mh_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_every_provider_table),
        cmocka_unit_test(test_postal_and_ark_defaults),
        cmocka_unit_test(test_config_errors_and_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
