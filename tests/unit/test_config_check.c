/*
 * test_config_check.c — mh_config_check: every problem of a file, each with its file and
 * line, while mh_config_load still stops at the first with the same message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mailhook/config.h"

static char path[64];

struct seen {
    int n;
    int lines[16];
    char msgs[16][600];
};

static void on_error(void *arg, int line, const char *message)
{
    struct seen *s = arg;
    if (s->n < 16) {
        s->lines[s->n] = line;
        snprintf(s->msgs[s->n], sizeof(s->msgs[s->n]), "%s", message);
    }
    s->n++;
}

static void write_file(const char *p, const char *text)
{
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Checks text; returns the count; *cfg (when wanted) is what could be read. */
static int check_text(const char *text, struct seen *s, struct mh_config **cfg)
{
    snprintf(path, sizeof(path), "/tmp/mh-test-check-%d.ini", (int)getpid());
    write_file(path, text);
    memset(s, 0, sizeof(*s));
    int n = mh_config_check(path, on_error, s, cfg);
    unlink(path);
    return n;
}

/* Asserts that problem i is "<path>:<line>: ...needle...". */
static void expect_problem(const struct seen *s, int i, int line, const char *needle)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    assert_true(i < s->n);
    assert_int_equal(s->lines[i], line);
    if (strncmp(s->msgs[i], prefix, strlen(prefix)))
        fail_msg("problem \"%s\" does not start with \"%s\"", s->msgs[i], prefix);
    if (!strstr(s->msgs[i], needle)) fail_msg("problem \"%s\" lacks \"%s\"", s->msgs[i], needle);
}

static const char three_sections[] = "[ingest]\n"                    /* 1 */
                                     "threads = many\n"              /* 2 */
                                     "\n"                            /* 3 */
                                     "[worker]\n"                    /* 4 */
                                     "colour = blue\n"               /* 5 */
                                     "batch_size = 0\n"              /* 6 */
                                     "\n"                            /* 7 */
                                     "[source.grid]\n"               /* 8 */
                                     "provider = sendgrid\n"         /* 9 */
                                     "public_key_file = /nonexistent/sendgrid.pem\n"; /* 10 */

static void test_every_error_reported(void **state)
{
    (void)state;
    struct seen s;
    assert_int_equal(check_text(three_sections, &s, NULL), 4);
    assert_int_equal(s.n, 4);
    expect_problem(&s, 0, 2, "[ingest] threads: \"many\" is not a whole number");
    expect_problem(&s, 1, 5, "[worker]: unknown key \"colour\"");
    expect_problem(&s, 2, 6, "[worker] batch_size: 0 is outside 1..100000");
    /* The provider's init read the key file: its path and the line naming it. */
    expect_problem(&s, 3, 10, "/nonexistent/sendgrid.pem");
}

static void test_load_still_stops_at_the_first(void **state)
{
    (void)state;
    struct seen s;
    char err[1024] = "";
    assert_int_equal(check_text(three_sections, &s, NULL), 4);
    snprintf(path, sizeof(path), "/tmp/mh-test-check-%d.ini", (int)getpid());
    write_file(path, three_sections);
    struct mh_config *cfg = mh_config_load(path, err, sizeof(err));
    unlink(path);
    assert_null(cfg);
    assert_string_equal(err, s.msgs[0]);
}

static void test_valid_file_has_no_problem(void **state)
{
    (void)state;
    struct seen s;
    struct mh_config *cfg = NULL;
    assert_int_equal(check_text("[ingest]\nthreads = 2\n\n[source.a]\nprovider = ivymail\n"
                                "secret = s3cret\n",
                                &s, &cfg),
                     0);
    assert_int_equal(s.n, 0);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_sources, 1);
    assert_int_equal(cfg->ingest.threads, 2);
    assert_int_equal(mh_config_key_line(cfg, "ingest", "threads"), 2);
    assert_int_equal(mh_config_key_line(cfg, "ingest", "listen"), 0);
    mh_config_free(cfg);
}

static void test_every_source_and_option(void **state)
{
    (void)state;
    struct seen s;
    /* Two bad options of one source, a secret file that cannot be read (and no "needs a
     * secret" after it), an unknown provider (and no "missing provider" after it). */
    int n = check_text("[source.a]\n"                       /* 1 */
                       "provider = hmac\n"                  /* 2 */
                       "algorithm = md4\n"                  /* 3 */
                       "encoding = hex\n"                   /* 4 */
                       "colour = red\n"                     /* 5 */
                       "secret = x\n"                       /* 6 */
                       "[source.b]\n"                       /* 7 */
                       "provider = hmac\n"                  /* 8 */
                       "secret_file = /nonexistent/secret\n" /* 9 */
                       "[source.c]\n"                       /* 10 */
                       "provider = nosuch\n",               /* 11 */
                       &s, NULL);
    assert_int_equal(n, 4);
    expect_problem(&s, 0, 9, "[source.b] secret_file: cannot read /nonexistent/secret");
    expect_problem(&s, 1, 11, "unknown provider \"nosuch\"");
    expect_problem(&s, 2, 3, "[source.a]: algorithm: expected sha1, sha256 or sha512");
    expect_problem(&s, 3, 5, "[source.a]: unknown key \"colour\" for provider hmac");
}

static void test_one_error_per_bad_section(void **state)
{
    (void)state;
    struct seen s;
    assert_int_equal(check_text("[nosuch]\na = 1\nb = 2\n[source.bad name]\nprovider = hmac\n"
                                "secret = x\n",
                                &s, NULL),
                     2);
    expect_problem(&s, 0, 1, "unknown section [nosuch]");
    expect_problem(&s, 1, 4, "source names use letters");
}

static void test_syntax_error_and_token(void **state)
{
    (void)state;
    struct seen s;
    unsetenv("MH_TEST_NO_TOKEN");
    assert_int_equal(check_text("[api]\ntoken_env = MH_TEST_NO_TOKEN\nthis line has no equals\n"
                                "[worker]\nbatch_size = x\n",
                                &s, NULL),
                     3);
    expect_problem(&s, 0, 2, "[api] token_env: environment variable MH_TEST_NO_TOKEN is not set");
    expect_problem(&s, 1, 5, "[worker] batch_size");
    expect_problem(&s, 2, 3, "syntax error");
}

static void test_tls_both_or_neither(void **state)
{
    (void)state;
    struct seen s;
    struct mh_config *cfg = NULL;
    assert_int_equal(check_text("[ingest]\nlisten = 127.0.0.1:8443\ntls_cert_file = /x/cert.pem\n",
                                &s, NULL),
                     1);
    expect_problem(&s, 0, 3, "tls_cert_file is set but tls_key_file is not");
    assert_int_equal(check_text("[ingest]\ntls_key_file = /x/key.pem\n", &s, NULL), 1);
    expect_problem(&s, 0, 2, "tls_key_file is set but tls_cert_file is not");
    assert_int_equal(check_text("[ingest]\ntls_cert_file =\ntls_key_file = /x/key.pem\n", &s,
                                NULL),
                     1);
    expect_problem(&s, 0, 2, "[ingest] tls_cert_file: empty");
    /* Both: the loader takes the paths; the ingest (and config check) read the pair. */
    assert_int_equal(check_text("[ingest]\ntls_cert_file = /x/cert.pem\ntls_key_file = /x/key.pem\n",
                                &s, &cfg),
                     0);
    assert_string_equal(cfg->ingest.tls_cert_file, "/x/cert.pem");
    assert_string_equal(cfg->ingest.tls_key_file, "/x/key.pem");
    assert_int_equal(mh_config_key_line(cfg, "ingest", "tls_key_file"), 3);
    mh_config_free(cfg);
    char err[512];
    snprintf(path, sizeof(path), "/tmp/mh-test-check-%d.ini", (int)getpid());
    write_file(path, "[ingest]\ntls_cert_file = /x/cert.pem\n");
    assert_null(mh_config_load(path, err, sizeof(err)));
    unlink(path);
    assert_non_null(strstr(err, ":2: [ingest] tls_cert_file is set but tls_key_file is not"));
}

static void test_missing_file(void **state)
{
    (void)state;
    struct seen s = {0};
    struct mh_config *cfg = (struct mh_config *)&s; /* must be overwritten */
    assert_int_equal(mh_config_check("/nonexistent/mailhook.ini", on_error, &s, &cfg), 1);
    assert_null(cfg);
    assert_int_equal(s.lines[0], 0);
    assert_string_equal(s.msgs[0], "/nonexistent/mailhook.ini: cannot open: No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_error_reported),
        cmocka_unit_test(test_load_still_stops_at_the_first),
        cmocka_unit_test(test_valid_file_has_no_problem),
        cmocka_unit_test(test_every_source_and_option),
        cmocka_unit_test(test_one_error_per_bad_section),
        cmocka_unit_test(test_syntax_error_and_token),
        cmocka_unit_test(test_tls_both_or_neither),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
