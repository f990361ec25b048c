/*
 * headers.h — a small ordered list of HTTP / Kafka header name-value pairs with
 * case-insensitive lookup. Ingest fills one from the request; the worker fills one
 * from the raw record's Kafka headers, so providers see the same shape in both.
 */
#ifndef MH_HEADERS_H
#define MH_HEADERS_H

#include <stddef.h>

struct mh_header {
    char *name;
    char *value;
};

struct mh_headers {
    struct mh_header *v;
    size_t n, cap;
    int borrowed; /* the pairs point into someone else's strings (mh_headers_borrow) */
};

/* Copies name and value. */
void mh_headers_add(struct mh_headers *h, const char *name, const char *value);
/* Adds name and value without copying them: they must outlive h's use. A list holds
 * either borrowed pairs or copies, never both. */
void mh_headers_borrow(struct mh_headers *h, const char *name, const char *value);
/* First value for name (case-insensitive), or NULL. Owned by h. */
const char *mh_headers_get(const struct mh_headers *h, const char *name);
/* Frees every pair; h itself may be reused afterwards. */
void mh_headers_clear(struct mh_headers *h);

#endif
