/*
 * pipeline.h — the pipeline library (mailhook_pipeline): what mailhook-worker and
 * `mailhook replay` both run on a batch of raw records.
 *
 * A worker is one member of the consumer group on the raw topic. For each batch it
 * (1) parses every raw record with its provider into canonical events, or marks it for
 * the dead-letter topic; (2) claims the events in PostgreSQL in one transaction
 * (dedup.c); (3) emits the events its records claim, the dead letters and the consumed
 * offsets in one Kafka transaction (emit.c). design.md "Dedup and exactly-once" says
 * why that order gives each distinct event exactly once to read_committed consumers.
 */
#ifndef MH_PIPELINE_H
#define MH_PIPELINE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mailhook/config.h"
#include "mailhook/histogram.h"
#include "event_counts.h"

/* One raw record of a batch and what parsing made of it. */
struct batch_rec {
    rd_kafka_message_t *rkm; /* owned */
    /* Canonical events parsed from it (owned), NULL if dead. Once parsed, each holds only
     * the fields the pipeline reads afterwards (normalize.c, kept_fields); the whole event
     * is its text. */
    json_t *events;
    /* Each event as the events topic and the event log take it — compact JSON, keys in
     * the event's order — made once by normalize.c: ev_text[j] (ev_len[j] bytes) is
     * events[j] — NULL once emit.c handed it to the producer. Kept in step with events by
     * batch_rec_drop_event/batch_rec_drop_events. */
    char **ev_text;
    size_t *ev_len;
    unsigned char *emit;     /* per event: 1 when this record claims it (set by dedup) */
    unsigned char *fresh;    /* per event: 1 when claimed for the first time in this batch */
    char *dlq_reason;        /* why it goes to the dead-letter topic, or NULL */
    /* Where it failed (mh-dlq-stage): NULL for parse, MH_DLQ_STAGE_STORE when PostgreSQL
     * refused its events for good (dedup.c isolated it). */
    const char *dlq_stage;
};

#define MH_DLQ_STAGE_PARSE "parse"
#define MH_DLQ_STAGE_STORE "store"

struct batch {
    struct batch_rec *recs;
    size_t n, cap;
    size_t n_events;
    /* Records for the suppressions topic, from suppression_apply: objects
     * {"key": "<tenant>/<address>", "value": {...} or null for a tombstone}. */
    json_t *suppression_out;
};

/*
 * Counters of one worker process. Written by the worker's one pipeline thread, read by
 * the metrics thread (metrics.c): hence atomic, relaxed order is enough for counters.
 */
struct worker_stats {
    _Atomic uint64_t records, events_emitted, duplicates, dead_letters, batches, aborts,
        pg_retries;
    /* Of dead_letters, the records PostgreSQL refused for good (stage "store"). */
    _Atomic uint64_t store_dead_letters;
    /* Milliseconds spent in each stage of a batch (monotonic clock), so an operator can
     * see whether parsing, PostgreSQL or the Kafka transaction bounds throughput. */
    _Atomic uint64_t normalize_ms, claim_ms, emit_ms;
    /* Claims run in more than one lane (worker/lanes.c), and the lane transactions of
     * those claims. */
    _Atomic uint64_t lane_claims, lane_transactions;
    /* Gauges the pipeline thread refreshes about once a second (main.c). */
    _Atomic int64_t assigned_partitions;
    _Atomic int64_t claim_lanes; /* lanes a claim is split into now (worker->lanes_active) */
    _Atomic int64_t lag_records; /* high watermark - position, summed over the assignment */
    _Atomic int64_t loop_ms;     /* mh_mono_ms() when the main loop last went round */
    _Atomic int64_t batch_events_max; /* most events one parsed batch held */
    struct mh_histogram batch_latency; /* normalize + claim + emit of one batch */
    struct event_counts events; /* emitted events by source and type */
};

/* Most claim lanes one worker runs (of the group's [worker] claim_lanes, worker/lanes.c). */
#define MH_CLAIM_LANES_MAX 8

struct worker {
    struct mh_config *cfg;
    const char *instance;
    rd_kafka_t *consumer;
    rd_kafka_t *producer; /* transactional */
    PGconn *pg;
    /* Whether w->pg holds per-address locks (suppress.c) that must outlive its
     * transaction until the batch's Kafka transaction ended. */
    int pg_locks;
    /* The worker's second connection: the one the batch being committed claimed on,
     * while w->pg claims the next (worker/main.c). */
    PGconn *pg_spare;
    /* The claim's other lanes (worker/lanes.c), NULL and 0 for one lane: each a worker
     * of its own for PostgreSQL alone (cfg, pg, pg_locks, pg_spare), claiming part of a
     * batch at once with w->pg. */
    struct worker **lanes;
    size_t n_lanes;
    /* Lanes a claim is split into now, 1..1 + n_lanes: the worker's share of
     * [worker] claim_lanes by the raw partitions it holds (lanes_follow_assignment). */
    size_t lanes_active;
    /* Set by the rebalance callback on an assignment, cleared by lanes_follow_assignment
     * once it has taken the worker's share. */
    int lanes_assigned;
    /* When > 0, a claim transaction on w->pg waits at most this long for a lock (set by
     * worker/lanes.c for the lanes of a split claim); 0: as long as it takes. */
    long lock_timeout_ms;
    volatile sig_atomic_t stop;
    int rebalanced; /* set by the rebalance callback: drop the batch being collected */
    unsigned rebalances; /* revocations so far (the rebalance callback) */
    struct worker_stats stats;
    /* 1: dedup_claim claims without calling suppression_apply (`mailhook replay` without
     * --apply-suppression). 0, the zero value, is the live worker's behaviour. */
    int skip_suppression;
};

/* normalize.c: parses the batch's records in order (pure; no I/O) and returns how many it
 * parsed: all of them, or with max_events > 0, those up to the one that brought the
 * batch's events to max_events (at least one record). The rest are left as collected,
 * for batch_split. */
size_t normalize_batch(struct worker *w, struct batch *b, size_t max_events);
/* Moves b's records from k on, in order, to the end of tail (records not parsed yet). */
void batch_split(struct batch *b, size_t k, struct batch *tail);

/* Removes event j of r (its text too). */
void batch_rec_drop_event(struct batch_rec *r, size_t j);
/* Frees r's events, their texts and flags (a record that turned into a dead letter). */
void batch_rec_drop_events(struct batch_rec *r);

/* dedup.c */
int dedup_connect(struct worker *w, char *err, size_t errlen);
/*
 * Claims the batch's events in one PostgreSQL transaction and sets rec->emit[i] for
 * each event that its own record claims.
 *
 * When PostgreSQL refuses the claim for good (a permanent error, by SQLSTATE class:
 * dedup.c), the records that cause it are isolated: the batch is split in halves, each
 * claimed in a transaction of its own, recursively down to single records; a record
 * that still fails alone gets the database's message as its dlq_reason and stage
 * "store", loses its events, and the others are claimed (and committed) as usual.
 * Returns 0 (every record claimed or dead-lettered), or -1 with err when PostgreSQL
 * failed in a way worth retrying (a lost connection, a deadlock, ...): the batch must
 * then be claimed again; what committed before is found again as claims.
 */
int dedup_claim(struct worker *w, struct batch *b, char *err, size_t errlen);
/*
 * Read-only counterpart of dedup_claim, for replay: looks the batch's events up without
 * inserting, locking or applying anything. Sets rec->emit[i] when the event's claim names
 * its own record, and rec->fresh[i] when the event has no claim at all (so this record
 * would claim it, unless an earlier record carrying the same event does). An event that
 * appears twice in one record gets neither flag on its second copy. Isolates the records
 * of a permanent error as dedup_claim does.
 * Returns 0, or -1 with err when PostgreSQL failed in a way worth retrying.
 */
int dedup_lookup(struct worker *w, struct batch *b, char *err, size_t errlen);

/*
 * suppress.c — called inside the claim transaction once emit/fresh are known.
 * Applies the suppression effects of fresh events (only those: a redo never applies an
 * effect twice), takes the per-address locks that keep the suppressions topic in the
 * same order as PostgreSQL, and fills b->suppression_out with the current state of every
 * address the batch's claimed events touch. 0, or -1 with err (the transaction is then
 * rolled back), -2 when the error is permanent (mh_pg_sqlstate_transient says no).
 */
int suppression_apply(struct worker *w, struct batch *b, char *err, size_t errlen);
/* Releases the per-address locks w->pg and its lanes' connections hold; called after the
 * Kafka transaction ended. */
void suppression_release(struct worker *w);
/* The same for a connection of the worker's that is not w->pg (the committer's). */
void suppression_release_conn(PGconn *pg, int *locks_held);

/* emit.c */
int emit_init(struct worker *w, char *err, size_t errlen);
/*
 * Produces the batch's outputs and commits them with the consumed offsets in one Kafka
 * transaction. Returns 0 when committed, 1 when the transaction was aborted and the
 * consumer rewound (the batch will come again), -1 on a fatal error (exit non-zero).
 */
int emit_batch(struct worker *w, struct batch *b);
/*
 * emit_batch in its parts, for a caller that commits one batch while it claims the
 * next (worker/committer.c). emit_produce begins the transaction, sends the offsets
 * (emit_offsets: the next offset of each of the batch's partitions) with the consumer's
 * group metadata, and produces the batch's outputs: 0 when the transaction is open, 1
 * when it was aborted and the consumer rewound, -1 fatal. emit_commit commits,
 * retrying what librdkafka calls retriable; it touches nothing but the producer, so it
 * may run on another thread: 0 committed, 1 the transaction must be aborted
 * (emit_abort; the caller rewinds), -1 fatal. emit_count adds a committed batch to the
 * counters.
 */
int emit_produce(struct worker *w, struct batch *b, rd_kafka_topic_partition_list_t *offsets,
                 rd_kafka_consumer_group_metadata_t *gmd);
rd_kafka_topic_partition_list_t *emit_offsets(const struct batch *b);
int emit_commit(struct worker *w);
int emit_abort(struct worker *w);
void emit_count(struct worker *w, struct batch *b);
/* Rewinds the consumer to the group's committed offsets — the batch's first record on
 * each of its partitions — after an abort or a failed claim, so the batch comes again.
 * Needs no broker; if a seek fails, sets w->stop = 2 (exit non-zero). */
void rewind_batch(struct worker *w, const struct batch *b);

void batch_free(struct batch *b);
/* Moves from's records (parsed and claimed, after into's) to the end of into, with
 * their suppression changes; from is left empty. */
void batch_append(struct batch *into, struct batch *from);

#endif
