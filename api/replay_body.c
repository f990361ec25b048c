/*
 * replay_body.c — POST /v1/dlq/replays's body, see replay_body.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"
#include "replay_body.h"

struct span {
    json_int_t partition, lo, hi; /* [lo, hi] */
};

static int topic_ok(const char *t, size_t len)
{
    if (len == 0 || len > REPLAY_TOPIC_MAX || !strcmp(t, ".") || !strcmp(t, "..")) return 0;
    for (size_t i = 0; i < len; i++)
        if (!(t[i] >= 'a' && t[i] <= 'z') && !(t[i] >= 'A' && t[i] <= 'Z') &&
            !(t[i] >= '0' && t[i] <= '9') && t[i] != '.' && t[i] != '_' && t[i] != '-')
            return 0;
    return 1;
}

static int by_partition(const void *a, const void *b)
{
    json_int_t x = ((const struct span *)a)->partition, y = ((const struct span *)b)->partition;
    return x < y ? -1 : x > y;
}

int replay_body_parse(json_t *body, char **from, char **until, int64_t *total,
                      const char **topic, char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    *from = *until = NULL;
    json_object_foreach(body, key, val) {
        if (strcmp(key, "records") && strcmp(key, "target_topic")) {
            snprintf(err, errlen, "body: unknown field \"%.64s\"", key);
            return -1;
        }
    }
    json_t *t = json_object_get(body, "target_topic");
    if (!json_is_string(t) || !topic_ok(json_string_value(t), json_string_length(t))) {
        snprintf(err, errlen, "body: target_topic must be a Kafka topic name (at most %d of "
                 "a-z A-Z 0-9 . _ -)", REPLAY_TOPIC_MAX);
        return -1;
    }
    json_t *recs = json_object_get(body, "records");
    size_t n = json_array_size(recs);
    if (!json_is_array(recs) || n == 0 || n > REPLAY_MAX_RECORDS) {
        snprintf(err, errlen, "body: records must be a list of 1 to %d {\"partition\", "
                 "\"offset\"}", REPLAY_MAX_RECORDS);
        return -1;
    }
    struct span *sp = mh_calloc(n, sizeof(*sp));
    size_t ns = 0;
    size_t i;
    json_array_foreach(recs, i, val) {
        json_t *p = json_object_get(val, "partition"), *o = json_object_get(val, "offset");
        if (!json_is_object(val) || json_object_size(val) != 2 || !json_is_integer(p) ||
            !json_is_integer(o) || json_integer_value(p) < 0 || json_integer_value(p) > INT32_MAX ||
            json_integer_value(o) < 0 || json_integer_value(o) >= INT64_MAX) {
            snprintf(err, errlen, "body: records[%zu] must be {\"partition\": P, \"offset\": O} "
                     "with whole numbers >= 0", i);
            free(sp);
            return -1;
        }
        json_int_t pv = json_integer_value(p), ov = json_integer_value(o);
        size_t j = 0;
        while (j < ns && sp[j].partition != pv) j++;
        if (j == ns) sp[ns++] = (struct span){pv, ov, ov};
        if (ov < sp[j].lo) sp[j].lo = ov;
        if (ov > sp[j].hi) sp[j].hi = ov;
    }
    qsort(sp, ns, sizeof(*sp), by_partition);
    size_t cap = ns * 48 + 1, nf = 0, nu = 0;
    *from = mh_malloc(cap);
    *until = mh_malloc(cap);
    *total = 0;
    for (i = 0; i < ns; i++) {
        nf += (size_t)snprintf(*from + nf, cap - nf, "%s%lld:%lld", i ? "," : "",
                               (long long)sp[i].partition, (long long)sp[i].lo);
        nu += (size_t)snprintf(*until + nu, cap - nu, "%s%lld:%lld", i ? "," : "",
                               (long long)sp[i].partition, (long long)sp[i].hi + 1);
        int64_t span = sp[i].hi + 1 - sp[i].lo;
        *total = *total > INT64_MAX - span ? INT64_MAX : *total + span;
    }
    free(sp);
    *topic = json_string_value(t);
    return 0;
}
