/*
 * metrics.h — mailhook-worker's HTTP endpoint for Prometheus and probes.
 *
 * Off unless [worker] metrics_listen (or --metrics-listen) names an address. It runs on
 * a thread of its own with its own libevent loop, so a scrape never waits for a batch
 * and a batch never waits for a scrape; it only reads the worker's atomic counters.
 *
 *   GET /metrics   Prometheus text: counters, per-stage busy time, assignment and lag
 *   GET /healthz   200 while the pipeline loop goes round, 503 once it has been stuck
 *                  for WORKER_STALL_S (a liveness probe restarts such a worker)
 */
#ifndef MH_WORKER_METRICS_H
#define MH_WORKER_METRICS_H

#include <stddef.h>

#include "pipeline.h"

/* Longer than any legitimate pass of the loop: a PostgreSQL outage is retried for 30 s
 * before the batch is rewound, and a Kafka transaction is given 30 s to commit. */
#define WORKER_STALL_S 120

struct worker_metrics;

/* Binds listen ("host:port") and starts serving w's counters. NULL with err when the
 * address is invalid or taken. */
struct worker_metrics *worker_metrics_start(const char *listen, struct worker *w, char *err,
                                            size_t errlen);
/* Stops the thread and frees everything; NULL is fine. */
void worker_metrics_stop(struct worker_metrics *m);

#endif
