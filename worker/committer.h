/*
 * committer.h — commits one batch's Kafka transaction on a thread of its own while the
 * worker's main thread claims the next batch in PostgreSQL (worker/main.c).
 */
#ifndef MH_WORKER_COMMITTER_H
#define MH_WORKER_COMMITTER_H

#include "pipeline.h"

struct committer {
    struct worker *w;
    rd_kafka_topic_partition_list_t *offsets;
    rd_kafka_consumer_group_metadata_t *gmd;
    PGconn *pg;    /* the connection the batch claimed on */
    int pg_locks;  /* whether it holds per-address locks: released once the commit ended */
    int rc;        /* emit_commit's result */
    pthread_t thread;
    int running;
};

/*
 * Starts committing the open transaction of b (emit_produce done) with b's offsets, and
 * takes over w->pg: w->pg becomes the worker's other connection (w->pg_spare, opened
 * when first used), so the next claim never waits on this one. 0, or -1 when no thread
 * could be started (the commit then ran here, and its result is in c->rc).
 */
int committer_start(struct committer *c, struct worker *w, const struct batch *b);
/* Waits for the commit: emit_commit's result (0 committed, 1 abort, -1 fatal). The
 * connection's locks are released by then; it is w->pg_spare again. */
int committer_join(struct committer *c);

#endif
