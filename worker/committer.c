/*
 * committer.c — the Kafka transaction of batch N on its own thread, overlapped with the
 * PostgreSQL claim of batch N+1 on the main thread.
 *
 * A batch's Kafka transaction is broker round trips (the offsets, the partitions its
 * records go to, the commit with its markers) around its events' produce calls, during
 * which the worker used to wait. Now the main thread starts all of it here and goes on
 * to claim the next batch. What keeps that safe (docs/design.md, "Overlapped commits"):
 *   - the next batch's claim commits in PostgreSQL before this batch's Kafka transaction
 *     is known to have committed, which is the crash case the claims already cover:
 *     when this transaction aborts, the main thread rewinds both batches and their
 *     records come again, deciding the same from their claims;
 *   - the next batch's Kafka transaction begins only after this one ended (join);
 *   - the per-address locks this batch's suppression changes took stay held on its own
 *     connection until its commit ended, and this thread releases them: the next claim,
 *     on the worker's other connection, waits for them if it touches the same address,
 *     and so produces that address's state after this batch's;
 *   - the main thread does not poll the consumer meanwhile, so no rebalance happens
 *     while a transaction is open.
 * This thread touches the producer (librdkafka's transactional calls are thread-safe),
 * the consumer only to rewind the batch after a failed produce (a seek, thread-safe too;
 * the main thread rewinds again in order after the join), and the connection it was
 * given, which the main thread leaves alone until the join.
 */
#include <pthread.h>

#include "committer.h"
#include "mailhook/timeutil.h"

static void *commit_thread(void *arg)
{
    struct committer *c = arg;
    int64_t t = mh_mono_ms();
    /* emit_produce aborts (and rewinds) by itself; a failed commit is aborted here. */
    c->rc = emit_produce(c->w, c->b, c->offsets, c->gmd);
    if (c->rc == 0) {
        c->rc = emit_commit(c->w);
        if (c->rc == 1 && emit_abort(c->w) < 0) c->rc = -1;
    }
    suppression_release_conn(c->pg, &c->pg_locks);
    for (size_t i = 0; i < c->w->n_lanes; i++)
        suppression_release_conn(c->lane_pg[i], &c->lane_locks[i]);
    atomic_fetch_add_explicit(&c->w->stats.emit_ms, (uint64_t)(mh_mono_ms() - t),
                              memory_order_relaxed);
    return NULL;
}

/* Takes the connection a lane (or the worker itself) claimed on, and its locks; the
 * lane claims on its spare next. */
static void take_claim_conn(struct worker *l, PGconn **pg, int *locks)
{
    *pg = l->pg;
    *locks = l->pg_locks;
    l->pg = l->pg_spare;
    l->pg_locks = 0;
    l->pg_spare = NULL;
}

int committer_start(struct committer *c, struct worker *w, struct batch *b)
{
    *c = (struct committer){.w = w, .b = b};
    c->offsets = emit_offsets(b);
    c->gmd = rd_kafka_consumer_group_metadata(w->consumer);
    take_claim_conn(w, &c->pg, &c->pg_locks);
    for (size_t i = 0; i < w->n_lanes; i++)
        take_claim_conn(w->lanes[i], &c->lane_pg[i], &c->lane_locks[i]);
    if (pthread_create(&c->thread, NULL, commit_thread, c) != 0) {
        commit_thread(c);
        return -1;
    }
    c->running = 1;
    return 0;
}

int committer_join(struct committer *c)
{
    if (c->running) pthread_join(c->thread, NULL);
    c->running = 0;
    /* The connection is idle again: the next batch's spare. */
    c->w->pg_spare = c->pg;
    for (size_t i = 0; i < c->w->n_lanes; i++) c->w->lanes[i]->pg_spare = c->lane_pg[i];
    rd_kafka_consumer_group_metadata_destroy(c->gmd);
    rd_kafka_topic_partition_list_destroy(c->offsets);
    return c->rc;
}
