/*
 * test_parse_robustness.c — no input may crash a provider's parse.
 *
 * Starting from every fixture body (tests/fixtures/<provider>/<case>/body.json), each
 * member and array element in turn is replaced by a value of every other JSON type
 * (null, booleans, integers at the int64 edges, reals, empty and odd strings, arrays,
 * objects) or removed, and every prefix of the body is tried as a truncated request.
 * Each result must either be a parse error with a message, or events that keep the
 * canonical shape: schema, event_id and type strings, known bounce class and category,
 * no empty sub-objects. Run under ASan/UBSan (MH_SANITIZE=ON) this doubles as a small
 * structured fuzzer.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mailhook/bounce.h"
#include "mailhook/headers.h"
#include "mailhook/provider.h"

static const struct mh_provider *provider;
static size_t runs;

static const char *const replacements[] = {
    "null", "true", "false", "0", "-1", "9223372036854775807", "-9223372036854775808",
    "1e300", "-1e300", "0.5", "\"\"", "\"x\"", "\"550\"", "\"-1\"", "\"1e400\"",
    "\"99999999999999999999999\"", "\"   \"", "[]", "[null]", "[1,\"a\",{}]", "{}",
    "{\"a\":null}", NULL,
};

static int sub_object_ok(json_t *ev, const char *key)
{
    json_t *v = json_object_get(ev, key);
    return !v || (json_is_object(v) && json_object_size(v) > 0);
}

/* The shape every emitted event must have, whatever the input. */
static int event_ok(json_t *ev)
{
    static const char *const subs[] = {"bounce", "complaint", "click", "open", "delay", "raw", NULL};
    const char *id = json_string_value(json_object_get(ev, "event_id"));
    if (!json_is_object(ev) || !json_is_string(json_object_get(ev, "schema")) || !id || !*id ||
        !json_is_string(json_object_get(ev, "type")))
        return 0;
    for (const char *const *s = subs; *s; s++)
        if (!sub_object_ok(ev, *s)) return 0;
    json_t *b = json_object_get(ev, "bounce");
    if (b) {
        const char *cls = json_string_value(json_object_get(b, "class"));
        const char *cat = json_string_value(json_object_get(b, "category"));
        if (!cls || (strcmp(cls, "hard") && strcmp(cls, "soft") && strcmp(cls, "undetermined")))
            return 0;
        if (!mh_bounce_category_known(cat)) return 0;
        json_t *smtp = json_object_get(b, "smtp_code");
        if (smtp && (!json_is_integer(smtp) || json_integer_value(smtp) < 200 ||
                     json_integer_value(smtp) > 599))
            return 0;
    }
    json_t *tags = json_object_get(ev, "tags"), *meta = json_object_get(ev, "metadata"), *tag;
    size_t i;
    if ((tags && !json_is_array(tags)) || (meta && !json_is_object(meta))) return 0;
    json_array_foreach(tags, i, tag) if (!json_is_string(tag)) return 0;
    return 1;
}

static void parse_text(const char *text, size_t len)
{
    struct mh_headers h = {0};
    struct mh_raw raw = {
        .source = provider->name, .provider = provider->name, .tenant = "test", .headers = &h,
        .body = (const unsigned char *)text, .body_len = len, .received_ms = 1767225600000LL,
        .topic = "mailhook.raw", .partition = 0, .offset = 42,
    };
    char err[512] = "";
    json_t *events = json_array(), *ev;
    size_t i;
    int rc = provider->parse(&raw, events, err, sizeof(err));
    runs++;
    if (rc < 0) {
        if (!err[0]) print_error("%s: parse failed without a message on: %.*s\n", provider->name,
                                 (int)len, text);
        assert_true(err[0] != '\0');
    } else {
        json_array_foreach(events, i, ev) {
            if (!event_ok(ev)) {
                char *dump = json_dumps(ev, JSON_SORT_KEYS);
                print_error("%s: malformed event %s\n  from: %.*s\n", provider->name, dump,
                            (int)len, text);
                free(dump);
            }
            assert_true(event_ok(ev));
        }
    }
    json_decref(events);
}

static void parse_json(json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    parse_text(text, strlen(text));
    free(text);
}

/* Replaces *slot by every replacement in turn (and by nothing), parsing root each time. */
static void mutate_slot(json_t *root, json_t *parent, const char *key, size_t index)
{
    json_t *orig = key ? json_object_get(parent, key) : json_array_get(parent, index);
    json_incref(orig);
    for (const char *const *r = replacements; *r; r++) {
        json_t *v = json_loads(*r, JSON_DECODE_ANY, NULL);
        if (!v) continue; /* jansson refuses some edge numbers; the text path covers them */
        if (key) json_object_set_new(parent, key, v);
        else json_array_set_new(parent, index, v);
        parse_json(root);
    }
    if (key) {
        json_object_del(parent, key);
        parse_json(root);
        json_object_set(parent, key, orig);
    } else {
        json_array_set(parent, index, orig);
    }
    json_decref(orig);
}

static void mutate_all(json_t *root, json_t *node)
{
    if (json_is_object(node)) {
        /* Keys first, then recursion: the key list must not change while iterating. */
        size_t n = json_object_size(node), i = 0;
        const char **keys = calloc(n + 1, sizeof(char *));
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v) keys[i++] = k;
        for (i = 0; i < n; i++) {
            char *key = strdup(keys[i]);
            mutate_slot(root, node, key, 0);
            mutate_all(root, json_object_get(node, key));
            free(key);
        }
        free(keys);
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            mutate_slot(root, node, NULL, i);
            mutate_all(root, json_array_get(node, i));
        }
    }
}

static char *read_body(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, fp);
    fclose(fp);
    buf[*len] = '\0';
    return buf;
}

static void fuzz_body(const char *text, size_t len)
{
    for (size_t cut = 0; cut < len; cut++) parse_text(text, cut);
    json_t *root = json_loadb(text, len, 0, NULL);
    if (!root) return;
    parse_json(root);
    mutate_all(root, root);
    /* The whole body as a lone value of another type, and wrapped in an array. */
    for (const char *const *r = replacements; *r; r++) parse_text(*r, strlen(*r));
    json_t *wrapped = json_pack("[O, O]", root, root);
    parse_json(wrapped);
    json_decref(wrapped);
    json_decref(root);
}

static void fuzz_provider(void **state)
{
    char dir[1024], path[2048];
    provider = *state;
    snprintf(dir, sizeof(dir), "%s/%s", MH_FIXTURES_DIR, provider->name);
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t bodies = 0;
    runs = 0;
    assert_non_null(d);
    while ((de = readdir(d))) {
        size_t len;
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "%s/%s/body.json", dir, de->d_name);
        char *body = read_body(path, &len);
        if (!body) continue;
        fuzz_body(body, len);
        free(body);
        bodies++;
    }
    closedir(d);
    print_message("%s: %zu bodies, %zu parses\n", provider->name, bodies, runs);
    assert_true(bodies > 0);
}

int main(void)
{
    size_t n = 0;
    while (mh_providers[n]) n++;
    struct CMUnitTest *tests = calloc(n, sizeof(*tests));
    for (size_t i = 0; i < n; i++) {
        tests[i].name = mh_providers[i]->name;
        tests[i].test_func = fuzz_provider;
        tests[i].initial_state = (void *)mh_providers[i];
    }
    int failed = _cmocka_run_group_tests("parse_robustness", tests, n, NULL, NULL);
    free(tests);
    return failed;
}
