/*
 * ring.c — see ring.h.
 */
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"
#include "ring.h"

const char *const src_codes[SRC_CODES] = {"200", "401", "503", "400"};

void src_ring_init(struct src_ring *r, size_t cap)
{
    r->cap = cap ? cap : 1;
    r->start = r->n = 0;
    r->v = mh_calloc(r->cap, sizeof(*r->v));
}

void src_ring_free(struct src_ring *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

void src_ring_push(struct src_ring *r, const struct src_sample *s)
{
    if (r->n < r->cap) {
        r->v[(r->start + r->n++) % r->cap] = *s;
    } else {
        r->v[r->start] = *s;
        r->start = (r->start + 1) % r->cap;
    }
}

const struct src_sample *src_ring_get(const struct src_ring *r, size_t i)
{
    return &r->v[(r->start + i) % r->cap];
}

double counter_delta(double prev, double cur)
{
    return cur >= prev ? cur - prev : cur;
}

double hist_quantile(const double *counts, const double *bounds, size_t nb, double q)
{
    double total = 0;
    for (size_t i = 0; i < nb; i++) total += counts[i];
    if (total <= 0 || nb == 0) return -1;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    double rank = q * total, below = 0;
    for (size_t i = 0; i < nb; i++) {
        if (counts[i] > 0 && below + counts[i] >= rank) {
            if (i == nb - 1) return nb > 1 ? bounds[nb - 2] : -1;
            double lo = i ? bounds[i - 1] : 0, hi = bounds[i];
            return lo + (hi - lo) * (rank - below) / counts[i];
        }
        below += counts[i];
    }
    return nb > 1 ? bounds[nb - 2] : -1;
}
