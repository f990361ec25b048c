/*
 * event_counts.h — committed events counted by source and canonical type, for the
 * worker's mailhook_worker_events_total{source,type}: the figures behind the bounce- and
 * complaint-rate alerts (deploy/prometheus/mailhook.rules.yml) and the dashboard's
 * events-by-type panel.
 *
 * Only events a committed batch emitted are counted (a duplicate is not; an aborted
 * batch counts nothing), so the rates follow what consumers of the events topic see.
 * Written by the pipeline thread, read by the metrics thread: relaxed atomics.
 */
#ifndef MH_EVENT_COUNTS_H
#define MH_EVENT_COUNTS_H

#include <stdatomic.h>
#include <stdint.h>

#include "mailhook/config.h"

struct batch;

struct event_counts {
    const struct mh_config *cfg; /* its sources, by index */
    _Atomic uint64_t *n;         /* [source][type]; NULL: not counting (replay) */
};

/* 0, or -1 when out of memory. */
int event_counts_init(struct event_counts *c, const struct mh_config *cfg);
void event_counts_free(struct event_counts *c);

/* Adds the events B's records claimed; call once B's transaction has committed. */
void event_counts_add_batch(struct event_counts *c, const struct batch *b);

/* The count for the source at index SOURCE and the type at index TYPE (event_types.h). */
uint64_t event_counts_get(const struct event_counts *c, size_t source, size_t type);

#endif
