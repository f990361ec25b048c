/*
 * test_fixtures.c — golden fixtures for every provider's parse.
 *
 * tests/fixtures/<provider>/<case>/ holds body.json (the raw request body, byte for
 * byte), optionally headers.json (an object of the Kafka headers parse sees), and either
 * expected.json (the exact array of canonical events parse must produce) or error.txt
 * (a substring of the error parse must report). The folder name is the provider's
 * registered name; every registered provider must have a folder, with a source.ini
 * (docs/providers/README.md), and a page docs/providers/<provider>.md. Each case is one
 * cmocka test, run with the same raw-record coordinates, and parsed twice to prove the
 * result (event ids included) is deterministic.
 *
 * MH_FIXTURES_UPDATE=1 rewrites expected.json from what parse produces now. Read every
 * rewritten file against the provider's documentation before keeping it: the fixtures
 * state what the provider says, not what the code happens to do.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "mailhook/headers.h"
#include "mailhook/provider.h"

#define RECEIVED_MS 1767225600000LL /* 2026-01-01T00:00:00.000Z */
#define DUMP_FLAGS (JSON_SORT_KEYS | JSON_INDENT(2))

struct fixture_case {
    char name[512]; /* provider/case */
    char dir[2048];
    char provider[128];
};

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(fp);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int file_exists(const char *dir, const char *name)
{
    char path[2200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the sub-directories of dir (not starting with '.'); caller frees. */
static char **list_dirs(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    struct stat st;
    char path[2200];
    *count = 0;
    if (!d) return NULL;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        names = realloc(names, (n + 1) * sizeof(char *));
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp_names);
    *count = n;
    return names;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* ---- a unified-ish line diff of two dumps ---- */

static char **split_lines(char *text, size_t *n)
{
    char **lines = NULL;
    *n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lines = realloc(lines, (*n + 1) * sizeof(char *));
        lines[(*n)++] = line;
    }
    return lines;
}

static void print_diff(const char *want, const char *got)
{
    char *a = strdup(want), *b = strdup(got);
    size_t na, nb;
    char **la = split_lines(a, &na), **lb = split_lines(b, &nb);
    /* Longest common subsequence table, then walk it to print -, + and context lines. */
    size_t *lcs = calloc((na + 1) * (nb + 1), sizeof(size_t));
#define LCS(i, j) lcs[(i) * (nb + 1) + (j)]
    for (size_t i = na; i-- > 0;)
        for (size_t j = nb; j-- > 0;)
            LCS(i, j) = strcmp(la[i], lb[j]) == 0 ? LCS(i + 1, j + 1) + 1
                        : LCS(i + 1, j) >= LCS(i, j + 1) ? LCS(i + 1, j)
                                                        : LCS(i, j + 1);
    print_error("--- expected.json\n+++ parse output\n");
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        if (i < na && j < nb && !strcmp(la[i], lb[j])) {
            print_error("  %s\n", la[i]);
            i++, j++;
        } else if (i < na && (j == nb || LCS(i + 1, j) >= LCS(i, j + 1))) {
            print_error("- %s\n", la[i++]);
        } else {
            print_error("+ %s\n", lb[j++]);
        }
    }
#undef LCS
    free(lcs);
    free(la);
    free(lb);
    free(a);
    free(b);
}

/* ---- running one case ---- */

static int load_headers(const char *dir, struct mh_headers *h)
{
    char path[2200];
    snprintf(path, sizeof(path), "%s/headers.json", dir);
    if (!file_exists(dir, "headers.json")) return 0;
    json_error_t jerr;
    json_t *obj = json_load_file(path, 0, &jerr);
    if (!json_is_object(obj)) {
        print_error("%s: not a JSON object (%s)\n", path, jerr.text);
        json_decref(obj);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (!json_is_string(v)) {
            print_error("%s: header \"%s\" is not a string\n", path, key);
            json_decref(obj);
            return -1;
        }
        mh_headers_add(h, key, json_string_value(v));
    }
    json_decref(obj);
    return 0;
}

static int run_parse(const struct fixture_case *fc, const char *body, size_t len,
                     const struct mh_headers *h, json_t **events, char *err, size_t errlen)
{
    const struct mh_provider *p = mh_provider_find(fc->provider);
    struct mh_raw raw = {
        .source = fc->provider,
        .provider = fc->provider,
        .tenant = "test",
        .headers = h,
        .body = (const unsigned char *)body,
        .body_len = len,
        .received_ms = RECEIVED_MS,
        .topic = "mailhook.raw",
        .partition = 0,
        .offset = 42,
    };
    *events = json_array();
    err[0] = '\0';
    return p->parse(&raw, *events, err, errlen);
}

static void write_expected(const char *dir, json_t *events)
{
    char path[2200];
    snprintf(path, sizeof(path), "%s/expected.json", dir);
    char *text = json_dumps(events, DUMP_FLAGS);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "%s\n", text);
    fclose(fp);
    free(text);
}

static void check_want_error(const struct fixture_case *fc, int rc, const char *err)
{
    char path[2200];
    snprintf(path, sizeof(path), "%s/error.txt", fc->dir);
    char *want = read_file(path, NULL);
    assert_non_null(want);
    want[strcspn(want, "\r\n")] = '\0';
    if (rc == 0 || !strstr(err, want))
        print_error("%s: want a parse error containing \"%s\", got rc=%d \"%s\"\n", fc->name, want,
                    rc, err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, want));
    free(want);
}

static void check_golden(const struct fixture_case *fc, int rc, const char *err, json_t *events)
{
    char path[2200];
    if (rc != 0) print_error("%s: parse failed: %s\n", fc->name, err);
    assert_int_equal(rc, 0);
    if (getenv("MH_FIXTURES_UPDATE") && !strcmp(getenv("MH_FIXTURES_UPDATE"), "1")) {
        write_expected(fc->dir, events);
        return;
    }
    snprintf(path, sizeof(path), "%s/expected.json", fc->dir);
    json_error_t jerr;
    json_t *want = json_load_file(path, 0, &jerr);
    if (!want) print_error("%s: %s (line %d)\n", path, jerr.text, jerr.line);
    assert_non_null(want);
    if (!json_equal(want, events)) {
        char *a = json_dumps(want, DUMP_FLAGS), *b = json_dumps(events, DUMP_FLAGS);
        print_error("%s: parse output differs from expected.json\n", fc->name);
        print_diff(a, b);
        free(a);
        free(b);
    }
    assert_true(json_equal(want, events));
    json_decref(want);
}

static void run_case(void **state)
{
    const struct fixture_case *fc = *state;
    char path[2200], err[512], err2[512];
    size_t len;
    struct mh_headers h = {0};
    snprintf(path, sizeof(path), "%s/body.json", fc->dir);
    char *body = read_file(path, &len);
    if (!body) print_error("%s: cannot read\n", path);
    assert_non_null(body);
    assert_int_equal(load_headers(fc->dir, &h), 0);

    json_t *events, *again;
    int rc = run_parse(fc, body, len, &h, &events, err, sizeof(err));
    int rc2 = run_parse(fc, body, len, &h, &again, err2, sizeof(err2));
    assert_int_equal(rc, rc2);
    if (rc == 0) assert_true(json_equal(events, again));

    if (file_exists(fc->dir, "error.txt")) check_want_error(fc, rc, err);
    else check_golden(fc, rc, err, events);

    json_decref(events);
    json_decref(again);
    mh_headers_clear(&h);
    free(body);
}

/* Every folder names a registered provider, and every provider has a folder. */
static void check_registry(void **state)
{
    size_t n;
    int bad = 0;
    char **dirs = list_dirs(MH_FIXTURES_DIR, &n);
    (void)state;
    for (size_t i = 0; i < n; i++)
        if (!mh_provider_find(dirs[i])) {
            print_error("tests/fixtures/%s: no provider registered under that name\n", dirs[i]);
            bad++;
        }
    for (const struct mh_provider *const *p = mh_providers; *p; p++) {
        int found = 0;
        for (size_t i = 0; i < n; i++) found |= !strcmp(dirs[i], (*p)->name);
        if (!found) {
            print_error("provider %s has no tests/fixtures/%s folder\n", (*p)->name, (*p)->name);
            bad++;
        }
    }
    free_names(dirs, n);
    assert_int_equal(bad, 0);
}

/*
 * What else adding a provider takes (docs/providers/README.md): every fixtures folder
 * has the source.ini the golden test and the local stack configure it from, and every
 * provider has its page under docs/providers/.
 */
static void check_provider_files(void **state)
{
    size_t n;
    int bad = 0;
    char **dirs = list_dirs(MH_FIXTURES_DIR, &n);
    char path[1024];
    (void)state;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", MH_FIXTURES_DIR, dirs[i]);
        if (!file_exists(path, "source.ini")) {
            print_error("tests/fixtures/%s has no source.ini\n", dirs[i]);
            bad++;
        }
    }
    for (const struct mh_provider *const *p = mh_providers; *p; p++) {
        char page[256];
        snprintf(page, sizeof(page), "%s.md", (*p)->name);
        if (!file_exists(MH_SOURCE_DIR "/docs/providers", page)) {
            print_error("provider %s has no docs/providers/%s\n", (*p)->name, page);
            bad++;
        }
    }
    free_names(dirs, n);
    assert_true(n > 0);
    assert_int_equal(bad, 0);
}

static size_t collect_cases(struct fixture_case **out)
{
    size_t np, total = 0;
    char **providers = list_dirs(MH_FIXTURES_DIR, &np);
    struct fixture_case *cases = NULL;
    for (size_t i = 0; i < np; i++) {
        char pdir[1024];
        size_t nc;
        snprintf(pdir, sizeof(pdir), "%s/%s", MH_FIXTURES_DIR, providers[i]);
        if (!mh_provider_find(providers[i])) continue;
        char **names = list_dirs(pdir, &nc);
        cases = realloc(cases, (total + nc) * sizeof(*cases));
        for (size_t j = 0; j < nc; j++) {
            struct fixture_case *fc = &cases[total++];
            snprintf(fc->name, sizeof(fc->name), "%s/%s", providers[i], names[j]);
            snprintf(fc->dir, sizeof(fc->dir), "%s/%s", pdir, names[j]);
            snprintf(fc->provider, sizeof(fc->provider), "%s", providers[i]);
        }
        free_names(names, nc);
    }
    free_names(providers, np);
    *out = cases;
    return total;
}

int main(void)
{
    struct fixture_case *cases;
    size_t n = collect_cases(&cases);
    struct CMUnitTest *tests = calloc(n + 2, sizeof(*tests));
    tests[0] = (struct CMUnitTest)cmocka_unit_test(check_registry);
    tests[1] = (struct CMUnitTest)cmocka_unit_test(check_provider_files);
    for (size_t i = 0; i < n; i++) {
        tests[i + 2].name = cases[i].name;
        tests[i + 2].test_func = run_case;
        tests[i + 2].initial_state = &cases[i];
    }
    int failed = _cmocka_run_group_tests("fixtures", tests, n + 2, NULL, NULL);
    free(tests);
    free(cases);
    return failed;
}
