/*
 * pg_array.h — one-dimensional PostgreSQL arrays in the binary wire format, to send a
 * batch's columns as parameters (`unnest($1::integer[], $2::text[], ...)`) with no
 * text to escape on this side and none to parse on the server's.
 *
 * The format is array_send's: dimensions (1), a has-nulls flag (1 once an element is
 * NULL), the element type's OID, the length and lower bound (1) of the dimension, then
 * each element as a 4-byte length and its bytes (big-endian integers, text and bytea as
 * they are), a NULL as the length -1 alone. Every number is big-endian.
 */
#ifndef MH_PG_ARRAY_H
#define MH_PG_ARRAY_H

#include <stddef.h>
#include <stdint.h>

/* The element types these arrays hold, by their OID in pg_type. */
#define MH_PG_INT4_OID 23
#define MH_PG_INT8_OID 20
#define MH_PG_TEXT_OID 25
#define MH_PG_BYTEA_OID 17

/* Their array types' OIDs, for PQprepare's paramTypes. */
#define MH_PG_INT4_ARRAY_OID 1007
#define MH_PG_INT8_ARRAY_OID 1016
#define MH_PG_TEXT_ARRAY_OID 1009
#define MH_PG_BYTEA_ARRAY_OID 1001

struct mh_pg_array {
    unsigned char *buf; /* the parameter's bytes once mh_pg_array_finish has run */
    size_t len, cap;
    uint32_t elem_oid;
    uint32_t n;         /* elements so far */
};

/* Starts an empty array of elements of type elem_oid (MH_PG_*_OID). */
void mh_pg_array_init(struct mh_pg_array *a, uint32_t elem_oid);

void mh_pg_array_add_int4(struct mh_pg_array *a, int32_t v);
void mh_pg_array_add_int8(struct mh_pg_array *a, int64_t v);

/* A text element of len bytes (no terminator is sent; s need not have one). Text
 * PostgreSQL holds has no zero byte; the server refuses one. */
void mh_pg_array_add_text(struct mh_pg_array *a, const char *s, size_t len);

/* A bytea element: len bytes as they are (bytea's binary form is its bytes). */
void mh_pg_array_add_bytes(struct mh_pg_array *a, const void *p, size_t len);

/* A NULL element, of any type. */
void mh_pg_array_add_null(struct mh_pg_array *a);

/* Writes the element count into the header; a->buf and a->len are then the parameter
 * (paramFormats 1). More elements may be added and finish called again. */
void mh_pg_array_finish(struct mh_pg_array *a);

void mh_pg_array_free(struct mh_pg_array *a);

#endif
