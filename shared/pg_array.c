/*
 * pg_array.c — PostgreSQL binary arrays (pg_array.h).
 */
#include "mailhook/pg_array.h"

#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"

/* ndim, has-nulls, element OID, dimension length, lower bound. */
#define HEADER_BYTES 20
#define HAS_NULLS_AT 4
#define DIM_LEN_AT 12

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char *grow(struct mh_pg_array *a, size_t more)
{
    if (more > SIZE_MAX - a->len) mh_oom();
    if (a->len + more > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->len + more) {
            if (cap > SIZE_MAX / 2) mh_oom();
            cap *= 2;
        }
        a->buf = mh_realloc(a->buf, cap);
        a->cap = cap;
    }
    unsigned char *p = a->buf + a->len;
    a->len += more;
    return p;
}

void mh_pg_array_init(struct mh_pg_array *a, uint32_t elem_oid)
{
    *a = (struct mh_pg_array){.elem_oid = elem_oid};
    unsigned char *h = grow(a, HEADER_BYTES);
    put32(h, 1);
    put32(h + HAS_NULLS_AT, 0);
    put32(h + 8, elem_oid);
    put32(h + DIM_LEN_AT, 0);
    put32(h + 16, 1);
}

void mh_pg_array_add_int4(struct mh_pg_array *a, int32_t v)
{
    unsigned char *p = grow(a, 8);
    put32(p, 4);
    put32(p + 4, (uint32_t)v);
    a->n++;
}

void mh_pg_array_add_int8(struct mh_pg_array *a, int64_t v)
{
    unsigned char *p = grow(a, 12);
    put32(p, 8);
    put32(p + 4, (uint32_t)((uint64_t)v >> 32));
    put32(p + 8, (uint32_t)v);
    a->n++;
}

void mh_pg_array_add_bytes(struct mh_pg_array *a, const void *s, size_t len)
{
    /* An element's length is a signed 32-bit number. Callers bound a parameter far
     * below that (the claim's at 128 MiB), so a longer element cannot come from input;
     * like an allocation that fails, it stops the process. */
    if (len > INT32_MAX) mh_oom();
    unsigned char *p = grow(a, 4 + len);
    put32(p, (uint32_t)len);
    if (len) memcpy(p + 4, s, len);
    a->n++;
}

void mh_pg_array_add_text(struct mh_pg_array *a, const char *s, size_t len)
{
    mh_pg_array_add_bytes(a, s, len);
}

void mh_pg_array_add_null(struct mh_pg_array *a)
{
    put32(grow(a, 4), UINT32_MAX);
    put32(a->buf + HAS_NULLS_AT, 1);
    a->n++;
}

void mh_pg_array_finish(struct mh_pg_array *a)
{
    put32(a->buf + DIM_LEN_AT, a->n);
}

void mh_pg_array_free(struct mh_pg_array *a)
{
    free(a->buf);
    *a = (struct mh_pg_array){0};
}
