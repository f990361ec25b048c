/*
 * dlq_cursor.c — GET /v1/dlq's cursor, see dlq_cursor.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dlq_cursor.h"

/* A whole number >= 0 at *s (digits only), advancing *s; -1 when none or too large. */
static long long whole(const char **s, long long max)
{
    if (!isdigit((unsigned char)**s)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(*s, &end, 10);
    if (errno || v > max) return -1;
    *s = end;
    return v;
}

int dlq_cursor_parse(const char *s, struct dlq_cursor *c)
{
    c->n = 0;
    if (!s || !*s) return -1;
    for (;;) {
        long long p = whole(&s, INT32_MAX);
        if (p < 0 || *s++ != ':') return -1;
        long long o = whole(&s, INT64_MAX);
        if (o < 0 || c->n == DLQ_CURSOR_MAX_PARTS || dlq_cursor_before(c, (int32_t)p) >= 0)
            return -1;
        c->partition[c->n] = (int32_t)p;
        c->before[c->n++] = o;
        if (!*s) return 0;
        if (*s++ != ',') return -1;
    }
}

int64_t dlq_cursor_before(const struct dlq_cursor *c, int32_t p)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->partition[i] == p) return c->before[i];
    return -1;
}
