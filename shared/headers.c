/*
 * headers.c — see headers.h.
 */
#include "mailhook/headers.h"

#include <stdlib.h>
#include <strings.h>

#include "mailhook/log.h"

void mh_headers_add(struct mh_headers *h, const char *name, const char *value)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = mh_realloc(h->v, h->cap * sizeof(*h->v));
    }
    h->v[h->n].name = mh_strdup(name);
    h->v[h->n].value = mh_strdup(value ? value : "");
    h->n++;
}

const char *mh_headers_get(const struct mh_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0) return h->v[i].value;
    return NULL;
}

void mh_headers_clear(struct mh_headers *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
