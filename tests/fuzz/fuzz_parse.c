/*
 * fuzz_parse.c — fuzz target for every provider's parse (and the bounce classifier it
 * calls), and of mh_event_make_storable on what they make. The first input byte picks
 * the provider; the rest is the raw body.
 *
 * Built two ways: with clang and -DMH_FUZZ=ON as a libFuzzer binary
 * (`build-fuzz/fuzz_parse tests/fixtures`), and always as fuzz_parse_replay, which runs
 * the target over the files named on its command line (ctest feeds it every fixture
 * body), so the target itself stays compiled and exercised in every build.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "mailhook/event_limits.h"
#include "mailhook/provider.h"

/* One input per provider: its index, then the file as the raw body. */
unsigned mh_fuzz_variants(void)
{
    unsigned n = 0;
    while (mh_providers[n]) n++;
    return n;
}

size_t mh_fuzz_seed(const uint8_t *file, size_t len, unsigned variant, uint8_t *out, size_t cap)
{
    if (cap == 0) return 0;
    out[0] = (uint8_t)variant;
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(out + 1, file, n);
    return n + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    while (mh_providers[n]) n++;
    if (size < 1 || n == 0) return 0;
    const struct mh_provider *p = mh_providers[data[0] % n];
    struct mh_raw raw = {
        .source = "fuzz",
        .provider = p->name,
        .tenant = "fuzz",
        .body = data + 1,
        .body_len = size - 1,
        .received_ms = 1767225600000,
        .topic = "mailhook.raw",
        .partition = 0,
        .offset = 0,
    };
    struct mh_headers h = {0};
    raw.headers = &h;
    json_t *events = json_array();
    char err[512];
    if (p->parse(&raw, events, err, sizeof(err)) == 0) {
        /* Every event must at least carry what the schema requires. */
        size_t i;
        json_t *ev;
        json_array_foreach(events, i, ev) {
            if (!json_is_string(json_object_get(ev, "event_id")) ||
                !json_is_string(json_object_get(ev, "type")))
                __builtin_trap();
            /* What the worker claims is storable: once made so, a second pass finds
             * nothing left to change (or the record is dead-lettered). */
            struct mh_event_limits lim = {.max_event_bytes = 1000000,
                                          .received_fallback_ms = raw.received_ms};
            char why[256];
            if (mh_event_make_storable(ev, &lim, why, sizeof(why)) >= 0 &&
                mh_event_make_storable(ev, &lim, why, sizeof(why)) != 0)
                __builtin_trap();
        }
    }
    json_decref(events);
    return 0;
}
