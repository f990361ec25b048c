/*
 * test_arenas.c — the worker's malloc arena limit: set when the environment says
 * nothing (with glibc's allocator), left alone when MALLOC_ARENA_MAX or GLIBC_TUNABLES
 * sets one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "arenas.h"

/* A sanitizer's allocator replaces glibc's: it has no arenas and refuses the limit. */
#if defined(__SANITIZE_ADDRESS__)
#define GLIBC_ALLOCATOR 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GLIBC_ALLOCATOR 0
#endif
#endif
#if !defined(GLIBC_ALLOCATOR) && defined(__GLIBC__)
#define GLIBC_ALLOCATOR 1
#elif !defined(GLIBC_ALLOCATOR)
#define GLIBC_ALLOCATOR 0
#endif

static void test_environment_limit_is_kept(void **state)
{
    (void)state;
    setenv("MALLOC_ARENA_MAX", "4", 1);
    unsetenv("GLIBC_TUNABLES");
    assert_int_equal(arenas_limit(), 0);
    unsetenv("MALLOC_ARENA_MAX");
    setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=3", 1);
    assert_int_equal(arenas_limit(), 0);
}

static void test_limit_set_when_the_environment_is_silent(void **state)
{
    (void)state;
    unsetenv("MALLOC_ARENA_MAX");
    setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
    int want = GLIBC_ALLOCATOR ? MH_WORKER_MALLOC_ARENAS : 0;
    assert_int_equal(arenas_limit(), want);
    unsetenv("GLIBC_TUNABLES");
    assert_int_equal(arenas_limit(), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_environment_limit_is_kept),
        cmocka_unit_test(test_limit_set_when_the_environment_is_silent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
