/*
 * histogram.c — see histogram.h.
 */
#include "mailhook/histogram.h"

#include <event2/buffer.h>

static const double bounds_s[MH_HIST_NBOUNDS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};

void mh_histogram_observe_us(struct mh_histogram *h, int64_t us)
{
    if (us < 0) us = 0;
    double s = (double)us / 1e6;
    size_t i = 0;
    while (i < MH_HIST_NBOUNDS && s > bounds_s[i]) i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}

void mh_histogram_write(const struct mh_histogram *h, const char *name, const char *help,
                        struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i <= MH_HIST_NBOUNDS; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < MH_HIST_NBOUNDS)
            evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds_s[i],
                                (unsigned long long)cum);
        else
            evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                                (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
                        (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6,
                        name, (unsigned long long)cum);
}

void mh_histogram_write_series(const struct mh_histogram *h, const char *name, const char *labels,
                               struct evbuffer *out)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= MH_HIST_NBOUNDS; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < MH_HIST_NBOUNDS)
            evbuffer_add_printf(out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, bounds_s[i],
                                (unsigned long long)cum);
        else
            evbuffer_add_printf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
                                (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels,
                        (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6,
                        name, labels, (unsigned long long)cum);
}

double mh_histogram_bound(size_t i)
{
    return i < MH_HIST_NBOUNDS ? bounds_s[i] : 1e300;
}
