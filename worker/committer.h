/*
 * committer.h — one batch's Kafka transaction (produce, offsets, commit) on a thread of
 * its own while the worker's main thread claims the next batch in PostgreSQL
 * (worker/main.c).
 */
#ifndef MH_WORKER_COMMITTER_H
#define MH_WORKER_COMMITTER_H

#include "pipeline.h"

struct committer {
    struct worker *w;
    struct batch *b;
    rd_kafka_topic_partition_list_t *offsets;
    rd_kafka_consumer_group_metadata_t *gmd;
    PGconn *pg;    /* the connection the batch claimed on */
    int pg_locks;  /* whether it holds per-address locks: released once the commit ended */
    /* The same for each of the claim's other lanes (worker/lanes.c). */
    PGconn *lane_pg[MH_CLAIM_LANES_MAX];
    int lane_locks[MH_CLAIM_LANES_MAX];
    int rc;        /* 0 committed, 1 aborted, -1 fatal */
    pthread_t thread;
    int running;
};

/*
 * Starts b's Kafka transaction — emit_produce (b's offsets, then its records), then
 * the commit — and takes over w->pg: w->pg becomes the worker's other connection
 * (w->pg_spare, opened when first used), so the next claim never waits on this one;
 * the same for each of the claim's lanes. b must stay as it is
 * until the join. 0, or -1 when no thread could be started (the transaction then ran
 * here, and its result is in c->rc).
 */
int committer_start(struct committer *c, struct worker *w, struct batch *b);
/* Waits for the transaction: 0 committed, 1 aborted (the caller rewinds b and whatever
 * it collected after b), -1 fatal. The connections' locks are released by then; they
 * are the spares again. */
int committer_join(struct committer *c);

#endif
