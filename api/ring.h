/*
 * ring.h — per-source samples of the ingest metrics (scrape.c) in a bounded ring, and
 * quantiles from histogram bucket counts. Pure (mailhook_api_params), unit-tested.
 */
#ifndef MH_API_RING_H
#define MH_API_RING_H

#include <stddef.h>
#include <stdint.h>

#include "mailhook/histogram.h"

#define SRC_CODES 4                      /* the status codes the ingest counts per source */
#define SRC_BUCKETS (MH_HIST_NBOUNDS + 1) /* the last is +Inf */

extern const char *const src_codes[SRC_CODES]; /* "200", "401", "503", "400" */

/* What one scrape added since the previous one (deltas, not totals). */
struct src_sample {
    int64_t t; /* unix seconds */
    double codes[SRC_CODES];
    double buckets[SRC_BUCKETS]; /* per bucket, not cumulative */
};

struct src_ring {
    size_t cap, start, n;
    struct src_sample *v;
};

void src_ring_init(struct src_ring *r, size_t cap);
void src_ring_free(struct src_ring *r);
/* Appends s; the oldest sample makes room when the ring is full. */
void src_ring_push(struct src_ring *r, const struct src_sample *s);
/* The i-th sample, 0 the oldest; i < r->n. */
const struct src_sample *src_ring_get(const struct src_ring *r, size_t i);

/* A Prometheus counter's increase from prev to cur: cur when it went down (a restart or
 * a reload reset it). */
double counter_delta(double prev, double cur);

/*
 * The q-quantile (0..1) of observations counted per bucket (counts[nb], the last one
 * +Inf; bounds[nb - 1] the finite upper bounds, ascending), interpolated linearly
 * inside its bucket as Prometheus's histogram_quantile does; in the +Inf bucket, the
 * largest finite bound. -1 when there is no observation.
 */
double hist_quantile(const double *counts, const double *bounds, size_t nb, double q);

#endif
