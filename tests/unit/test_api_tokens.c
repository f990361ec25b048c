/*
 * test_api_tokens.c — [api] bearer tokens and the tenants each may act for: the entry
 * syntax in token, token_env and token_file, configs from before tokens had tenants,
 * errors that name file and line but never a token, and the lookup of a presented token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mailhook/api_tokens.h"
#include "mailhook/config.h"

static char ini[64], tokens[64];

static void write_file(const char *p, const char *text)
{
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    (void)state;
    snprintf(ini, sizeof(ini), "/tmp/mh-test-tokens-%d.ini", (int)getpid());
    snprintf(tokens, sizeof(tokens), "/tmp/mh-test-tokens-%d.txt", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(ini);
    unlink(tokens);
    return 0;
}

static struct mh_config *load(const char *api_section, char *err, size_t errlen)
{
    char text[2048];
    snprintf(text, sizeof(text), "[api]\n%s", api_section);
    write_file(ini, text);
    return mh_config_load(ini, err, errlen);
}

static const struct mh_api_token *find(const struct mh_config *cfg, const char *tok)
{
    return mh_api_token_find(cfg, tok, strlen(tok));
}

static void test_entries_and_scopes(void **state)
{
    (void)state;
    char err[512];
    setenv("MH_TEST_TOKEN_ACME", "env-secret", 1);
    write_file(tokens, "# tokens of mailhook-api\n"
                       "\n"
                       "file-operator\n"
                       "  file-acme   acme  \r\n"
                       "file-two acme,beta.eu\n"
                       "file-star *\n");
    char section[512];
    snprintf(section, sizeof(section),
             "token = inline-op\n"
             "token = inline-beta beta.eu\n"
             "token_env = MH_TEST_TOKEN_ACME acme\n"
             "token_file = %s\n", tokens);
    struct mh_config *cfg = load(section, err, sizeof(err));
    if (!cfg) fail_msg("%s", err);
    assert_int_equal(cfg->api.n_tokens, 7);

    const struct mh_api_token *op = find(cfg, "inline-op");
    assert_non_null(op);
    assert_true(mh_api_token_allows(op, NULL) && mh_api_token_allows(op, "anyone"));
    const struct mh_api_token *beta = find(cfg, "inline-beta");
    assert_true(mh_api_token_allows(beta, "beta.eu"));
    assert_false(mh_api_token_allows(beta, "acme") || mh_api_token_allows(beta, NULL));
    const struct mh_api_token *env = find(cfg, "env-secret");
    assert_true(mh_api_token_allows(env, "acme"));
    assert_false(mh_api_token_allows(env, "acme2") || mh_api_token_allows(env, "acm"));
    assert_true(mh_api_token_allows(find(cfg, "file-operator"), NULL));
    assert_true(mh_api_token_allows(find(cfg, "file-star"), NULL));
    const struct mh_api_token *acme = find(cfg, "file-acme");
    assert_true(mh_api_token_allows(acme, "acme"));
    assert_false(mh_api_token_allows(acme, NULL));
    const struct mh_api_token *two = find(cfg, "file-two");
    assert_true(mh_api_token_allows(two, "acme") && mh_api_token_allows(two, "beta.eu"));
    assert_false(mh_api_token_allows(two, "beta"));

    /* Only the whole token: no prefix, no extension, no other case, no scope text. */
    const char *wrong[] = {"", "inline", "inline-op ", "inline-opx", "INLINE-OP", "acme",
                           "file-acme acme", NULL};
    for (const char **w = wrong; *w; w++) assert_null(find(cfg, *w));
    assert_false(mh_api_token_allows(NULL, "acme"));
    mh_config_free(cfg);
}

/* A token file as deploy/local writes it (one secret and a newline) and a token without
 * tenants anywhere: operator tokens, as every token was before tokens had tenants. */
static void test_existing_configs_are_operator_tokens(void **state)
{
    (void)state;
    char err[512], section[256];
    write_file(tokens, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
    setenv("MH_TEST_TOKEN_OLD", " old-env\n", 1); /* white space around it is not part of it */
    snprintf(section, sizeof(section), "token_file = %s\ntoken = t\ntoken_env = MH_TEST_TOKEN_OLD\n",
             tokens);
    struct mh_config *cfg = load(section, err, sizeof(err));
    if (!cfg) fail_msg("%s", err);
    assert_int_equal(cfg->api.n_tokens, 3);
    const struct mh_api_token *t =
        find(cfg, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_non_null(t);
    assert_true(t->operator && mh_api_token_allows(t, NULL));
    assert_true(find(cfg, "t")->operator && find(cfg, "old-env")->operator);
    mh_config_free(cfg);
}

/* Asserts that the [api] section fails with needle, at "<ini>:<line>:" and, for a token
 * file, "<tokens>:<fline>:"; and that no secret is quoted. */
static void expect_error(const char *section, int line, int fline, const char *needle)
{
    char err[1024] = "", want[160];
    struct mh_config *cfg = load(section, err, sizeof(err));
    assert_null(cfg);
    snprintf(want, sizeof(want), "%s:%d: ", ini, line);
    if (strncmp(err, want, strlen(want))) fail_msg("error \"%s\" does not start with %s", err, want);
    if (fline) {
        snprintf(want, sizeof(want), "%s:%d: ", tokens, fline);
        if (!strstr(err, want)) fail_msg("error \"%s\" does not name %s", err, want);
    }
    if (!strstr(err, needle)) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    if (strstr(err, "s3cr3t")) fail_msg("error \"%s\" quotes a token", err);
}

static void test_errors_name_file_line_and_problem(void **state)
{
    (void)state;
    char section[256];
    snprintf(section, sizeof(section), "listen = 127.0.0.1:1\ntoken_file = %s\n", tokens);
    write_file(tokens, "# ok\ns3cr3t-a acme\ns3cr3t-b acme,,beta\n");
    expect_error(section, 3, 3, "empty name");
    write_file(tokens, "s3cr3t-a acme beta\n");
    expect_error(section, 3, 1, "expected TOKEN [TENANTS]");
    write_file(tokens, "s3cr3t-a acme,*\n");
    expect_error(section, 3, 1, "stands alone");
    write_file(tokens, "s3cr3t-a acme\ns3cr3t-a beta\n");
    expect_error(section, 3, 2, "configured twice, with different tenants");
    write_file(tokens, "# only a comment\n\n");
    expect_error(section, 3, 0, "no token in it");
    write_file(tokens, "s3cr3t-\x01 acme\n");
    expect_error(section, 3, 1, "not visible ASCII");
    unlink(tokens);
    expect_error(section, 3, 0, "cannot read");
    expect_error("token = s3cr3t a,\n", 2, 0, "[api] token: tenants: an empty name");
    expect_error("\n\ntoken =\n", 4, 0, "[api] token: empty token");
    expect_error("token_env = MH_TEST_TOKEN_UNSET_XYZ acme\n", 2, 0, "is not set");
    setenv("MH_TEST_TOKEN_BAD", "s3cr3t", 1);
    expect_error("token_env = MH_TEST_TOKEN_BAD acme beta\n", 2, 0, "expected VARIABLE [TENANTS]");
    expect_error("token = s3cr3t *\ntoken = s3cr3t acme\n", 3, 0, "configured twice");
    setenv("MH_TEST_TOKEN_TWO_LINES", "s3cr3t\nmore", 1);
    expect_error("token_env = MH_TEST_TOKEN_TWO_LINES\n", 2, 0, "not visible ASCII");
}

/* The same token listed twice with the same tenants (say, in a file and in the
 * environment, during a rotation) is one token. */
static void test_same_token_twice_is_one(void **state)
{
    (void)state;
    char err[512];
    struct mh_config *cfg = load("token = s3cr3t\ntoken = s3cr3t *\ntoken = x a,b\ntoken = x a,b\n",
                                 err, sizeof(err));
    if (!cfg) fail_msg("%s", err);
    assert_int_equal(cfg->api.n_tokens, 2);
    mh_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_entries_and_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_configs_are_operator_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_file_line_and_problem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_token_twice_is_one, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
