/*
 * test_jemalloc_conf.c — a program linked as mailhook-worker and mailhook-ingest are
 * runs on jemalloc with their settings (shared/jemalloc_conf.c), and MALLOC_CONF still
 * replaces them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jemalloc/jemalloc.h>

static unsigned opt_unsigned(const char *name)
{
    unsigned v = 0;
    size_t len = sizeof(v);
    assert_int_equal(mallctl(name, &v, &len, NULL, 0), 0);
    return v;
}

static ssize_t opt_ssize(const char *name)
{
    ssize_t v = 0;
    size_t len = sizeof(v);
    assert_int_equal(mallctl(name, &v, &len, NULL, 0), 0);
    return v;
}

static void test_malloc_is_jemalloc_with_the_worker_settings(void **state)
{
    (void)state;
    if (getenv("MALLOC_CONF")) skip();
    void *p = malloc(100);
    assert_non_null(p);
    /* The process's malloc is jemalloc's: it knows the block it handed out. */
    assert_true(malloc_usable_size(p) >= 100);
    assert_true(sallocx(p, 0) >= 100);
    free(p);
    assert_int_equal(opt_unsigned("opt.narenas"), 2);
    assert_int_equal(opt_ssize("opt.dirty_decay_ms"), 1000);
    assert_int_equal(opt_ssize("opt.muzzy_decay_ms"), 0);
}

/* MALLOC_CONF is read after the built-in string: a child started with it has its value. */
static void test_environment_replaces_a_setting(void **state)
{
    (void)state;
    if (getenv("MH_TEST_JEMALLOC_CHILD")) skip();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) _exit(3);
        self[n] = '\0';
        setenv("MALLOC_CONF", "narenas:3", 1);
        setenv("MH_TEST_JEMALLOC_CHILD", "1", 1);
        execl(self, self, (char *)NULL);
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Run in the child of test_environment_replaces_a_setting. */
static void test_child_sees_the_environment(void **state)
{
    (void)state;
    if (!getenv("MH_TEST_JEMALLOC_CHILD")) skip();
    assert_int_equal(opt_unsigned("opt.narenas"), 3);
    /* The settings MALLOC_CONF does not name stay the worker's. */
    assert_int_equal(opt_ssize("opt.dirty_decay_ms"), 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_is_jemalloc_with_the_worker_settings),
        cmocka_unit_test(test_environment_replaces_a_setting),
        cmocka_unit_test(test_child_sees_the_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
