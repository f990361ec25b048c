/*
 * headers.c — see headers.h.
 */
#include "mailhook/headers.h"

#include <stdlib.h>
#include <strings.h>

#include "mailhook/log.h"

static struct mh_header *append(struct mh_headers *h)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = mh_realloc(h->v, h->cap * sizeof(*h->v));
    }
    return &h->v[h->n++];
}

void mh_headers_add(struct mh_headers *h, const char *name, const char *value)
{
    if (h->borrowed) abort(); /* a borrowed list cannot free a copy */
    struct mh_header *e = append(h);
    e->name = mh_strdup(name);
    e->value = mh_strdup(value ? value : "");
}

void mh_headers_borrow(struct mh_headers *h, const char *name, const char *value)
{
    if (h->n > 0 && !h->borrowed) abort(); /* nor a copied list forget one */
    h->borrowed = 1;
    struct mh_header *e = append(h);
    e->name = (char *)name;
    e->value = (char *)(value ? value : "");
}

const char *mh_headers_get(const struct mh_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0) return h->v[i].value;
    return NULL;
}

void mh_headers_clear(struct mh_headers *h)
{
    for (size_t i = 0; i < h->n && !h->borrowed; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
    h->borrowed = 0;
}
