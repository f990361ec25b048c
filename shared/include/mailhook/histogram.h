/*
 * histogram.h — a latency histogram for Prometheus, safe to observe from any thread.
 *
 * Fixed buckets (MH_HIST_BOUNDS, seconds, the same for every histogram mailhook serves so
 * dashboards can compare them), counts in relaxed atomics: observing costs a few
 * compares and two atomic adds. Written out in the Prometheus text format as
 * <name>_bucket{le="..."} (cumulative), <name>_sum and <name>_count.
 */
#ifndef MH_HISTOGRAM_H
#define MH_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Upper bounds in seconds: 0.5 ms .. 10 s, then +Inf. */
#define MH_HIST_NBOUNDS 14

struct mh_histogram {
    _Atomic uint64_t counts[MH_HIST_NBOUNDS + 1]; /* per bucket, not cumulative; last: +Inf */
    _Atomic uint64_t sum_us;
};

void mh_histogram_observe_us(struct mh_histogram *h, int64_t us);
/* Appends the histogram as metric `name` with its HELP text. */
void mh_histogram_write(const struct mh_histogram *h, const char *name, const char *help,
                        struct evbuffer *out);

/* Appends only the series of metric `name` with labels ("k=\"v\"", no braces), for one of
 * several labelled histograms under one HELP and TYPE line written by the caller. */
void mh_histogram_write_series(const struct mh_histogram *h, const char *name, const char *labels,
                               struct evbuffer *out);
/* The upper bound of bucket i (i < MH_HIST_NBOUNDS), in seconds. */
double mh_histogram_bound(size_t i);

#endif
