/*
 * test_api_console_files.c — which request paths name a console file: only the fixed names,
 * never another file, directory or encoded path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "console.h"

static void served_names(void **state)
{
    (void)state;
    const struct console_file *f = api_console_file("/console/");
    assert_non_null(f);
    assert_string_equal(f->name, "index.html");
    assert_string_equal(f->content_type, "text/html; charset=utf-8");
    f = api_console_file("/console/app.js");
    assert_non_null(f);
    assert_string_equal(f->content_type, "text/javascript; charset=utf-8");
    f = api_console_file("/console/app.css");
    assert_non_null(f);
    assert_string_equal(f->content_type, "text/css; charset=utf-8");
    f = api_console_file("/console/favicon.svg");
    assert_non_null(f);
    assert_string_equal(f->content_type, "image/svg+xml");
    assert_non_null(api_console_file("/console/index.html"));
}

static void everything_else_is_refused(void **state)
{
    (void)state;
    static const char *const refused[] = {
        NULL,
        "",
        "/console",
        "/consoleapp.js",
        "/console/../../etc/passwd",
        "/console/..%2f..%2fetc%2fpasswd",
        "/console/%2e%2e/x",
        "/console/sub/app.js",
        "/console/app.js/",
        "/console/app.js.bak",
        "/console/APP.JS",
        "/console/.htaccess",
        "/console//etc/passwd",
        "/v1/console/app.js",
        "/console/app.js%00.png",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_null(api_console_file(refused[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(served_names),
        cmocka_unit_test(everything_else_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
