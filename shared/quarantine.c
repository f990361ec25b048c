/*
 * quarantine.c — the quarantine record's request headers and its rate limit (see
 * quarantine.h).
 */
#include "mailhook/quarantine.h"

#include <jansson.h>
#include <stdlib.h>

#include "mailhook/log.h"

char *mh_quarantine_headers_encode(const struct mh_headers *h)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < h->n; i++)
        json_array_append_new(arr, json_pack("[ss]", h->v[i].name, h->v[i].value));
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text) mh_oom();
    return text;
}

int mh_quarantine_headers_decode(const char *text, size_t len, struct mh_headers *h)
{
    json_error_t jerr;
    json_t *arr = json_loadb(text, len, 0, &jerr);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return -1;
    }
    size_t i;
    json_t *pair;
    json_array_foreach(arr, i, pair) {
        const char *name = json_string_value(json_array_get(pair, 0));
        const char *value = json_string_value(json_array_get(pair, 1));
        if (!json_is_array(pair) || json_array_size(pair) != 2 || !name || !value) {
            json_decref(arr);
            return -1;
        }
    }
    json_array_foreach(arr, i, pair)
        mh_headers_add(h, json_string_value(json_array_get(pair, 0)),
                       json_string_value(json_array_get(pair, 1)));
    json_decref(arr);
    return 0;
}

int mh_rate_limit_take(struct mh_rate_limit *rl, long rate, long burst, int64_t now_us)
{
    if (rate <= 0 || burst <= 0) return 0;
    const int64_t interval = 1000000 / rate > 0 ? 1000000 / rate : 1;
    const int64_t depth = interval * burst; /* how far ahead of now tat may run */
    int64_t tat = atomic_load(&rl->tat_us);
    for (;;) {
        int64_t start = tat > now_us ? tat : now_us; /* a full bucket holds no more */
        int64_t next = start + interval;
        if (next - now_us > depth) return 0;
        if (atomic_compare_exchange_weak(&rl->tat_us, &tat, next)) return 1;
    }
}
