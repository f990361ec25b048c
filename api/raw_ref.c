/*
 * raw_ref.c — reads the {partition}/{offset} of GET /v1/raw (see raw_ref.h).
 */
#include <stdio.h>
#include <string.h>

#include "raw_ref.h"

/* The digits of s up to stop (or its end) as a number no larger than max; -1 otherwise. */
static int whole(const char *s, const char *stop, int64_t max, int64_t *out)
{
    size_t n = stop ? (size_t)(stop - s) : strlen(s);
    if (n == 0 || n > 19) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        int d = s[i] - '0';
        if (v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int api_raw_ref_parse(const char *tail, struct api_raw_ref *ref, char *err, size_t errlen)
{
    const char *slash = tail ? strchr(tail, '/') : NULL;
    if (!slash) {
        snprintf(err, errlen, "expected /v1/raw/{partition}/{offset}");
        return -1;
    }
    int64_t p, o;
    if (whole(tail, slash, INT32_MAX, &p) < 0) {
        snprintf(err, errlen, "partition: a whole number from 0 to %d", INT32_MAX);
        return -1;
    }
    /* Below INT64_MAX: the record after it must still have an offset. */
    if (whole(slash + 1, NULL, INT64_MAX - 1, &o) < 0) {
        snprintf(err, errlen, "offset: a whole number from 0 to %lld", (long long)(INT64_MAX - 1));
        return -1;
    }
    ref->partition = (int32_t)p;
    ref->offset = o;
    return 0;
}
