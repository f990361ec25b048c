/*
 * fuzz_api_console.c — fuzz target for the request parsing of mailhook-api's console
 * endpoints. The first input byte picks what the rest is:
 *   even  a POST /v1/dlq/replays body (api/replay_body.c): when accepted, its range
 *         strings must be "P:O,..." with each until above its from, and the total
 *         positive; when refused, the error must be UTF-8 text
 *   odd   a GET /v1/dlq cursor (api/dlq_cursor.c): when accepted, printed again it must
 *         parse to the same partitions and offsets
 * Its seeds are the files of tests/fuzz/corpus/api_console, each carrying its selector.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq_cursor.h"
#include "fuzz.h"
#include "replay_body.h"

#define CHECK(cond) \
    do {            \
        if (!(cond)) abort(); \
    } while (0)

static void fuzz_body(const char *in, size_t len)
{
    json_t *body = json_loadb(in, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return;
    }
    char *from, *until, err[256];
    int64_t total;
    const char *topic;
    if (replay_body_parse(body, &from, &until, &total, &topic, err, sizeof(err)) == 0) {
        CHECK(total > 0 && topic && *topic);
        struct dlq_cursor f, u;
        CHECK(dlq_cursor_parse(from, &f) == 0 && dlq_cursor_parse(until, &u) == 0);
        CHECK(f.n == u.n && f.n > 0);
        for (size_t i = 0; i < f.n; i++) {
            CHECK(f.partition[i] == u.partition[i]);
            CHECK(u.before[i] > f.before[i]);
        }
        free(from);
        free(until);
    } else {
        json_t *s = json_string(err);
        CHECK(s != NULL);
        json_decref(s);
    }
    json_decref(body);
}

static void fuzz_cursor(const char *in)
{
    struct dlq_cursor c, again;
    if (dlq_cursor_parse(in, &c) < 0) return;
    size_t cap = c.n * 48 + 1, n = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < c.n; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%" PRId32 ":%" PRId64, i ? "," : "",
                              c.partition[i], c.before[i]);
    CHECK(dlq_cursor_parse(out, &again) == 0 && again.n == c.n);
    for (size_t i = 0; i < c.n; i++)
        CHECK(dlq_cursor_before(&again, c.partition[i]) == c.before[i]);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 2;
    data++, size--;
    char *in = malloc(size + 1);
    memcpy(in, data, size);
    in[size] = '\0';
    if (mode == 0) fuzz_body(in, size);
    else fuzz_cursor(in);
    free(in);
    return 0;
}

/* The corpus files carry their selector byte already: each is one input as it is. */
unsigned mh_fuzz_variants(void)
{
    return 1;
}

size_t mh_fuzz_seed(const uint8_t *file, size_t len, unsigned variant, uint8_t *out, size_t cap)
{
    (void)variant;
    size_t n = len < cap ? len : cap;
    memcpy(out, file, n);
    return n;
}
