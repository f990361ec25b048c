/*
 * pool.h — mailhook-api's PostgreSQL pool: a few threads, each with its own
 * connection, that run the database part of requests while the libevent loop goes on
 * accepting, parsing and answering.
 *
 * A job is submitted on the loop thread, run on a pool thread with that thread's store,
 * and handed back to the loop thread (through an eventfd) for its done step, which
 * replies. So a slow query (a big event-log page, a write waiting on an address lock)
 * holds up only its own connection, never the "may I send?" lookups behind it.
 */
#ifndef MH_API_POOL_H
#define MH_API_POOL_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "mailhook/histogram.h"

#include "suppressions.h"

struct api_job {
    /* On a pool thread, with that thread's store (connected on demand). */
    void (*run)(struct api_job *job, struct supp_store *st);
    /* On the loop thread, after run; replies and frees the job. */
    void (*done)(struct api_job *job);
    struct api_job *next;   /* the pool's */
    int64_t submitted_us;   /* the pool's: when it was queued */
};

struct api_pool;

/*
 * Starts n threads, each with a PostgreSQL connection of its own (application_name
 * app); they share one idempotent producer for the suppressions topic. PostgreSQL may
 * be down: connections are retried per job. NULL with err when the producer or a
 * thread cannot be created.
 */
struct api_pool *api_pool_new(struct event_base *base, const struct mh_config *cfg,
                              const char *app, int n, char *err, size_t errlen);

/* Queues job (loop thread only). -1 when max_queued jobs are already waiting. */
int api_pool_submit(struct api_pool *p, struct api_job *job);

/* Time from submit to the done step (queue wait and the database work), per job. */
const struct mh_histogram *api_pool_latency(const struct api_pool *p);

/* Jobs submitted whose done step has not run yet. */
size_t api_pool_in_flight(const struct api_pool *p);

/* Finishes the queued jobs (their done steps run only if the loop still runs), stops
 * the threads, closes the connections and the producer. */
void api_pool_free(struct api_pool *p);

#endif
