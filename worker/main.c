/*
 * main.c — mailhook-worker: arguments, the consumer, and the batch loop.
 *
 * Loop: collect up to [worker] batch_size records, or whatever arrived within
 * commit_interval_ms of the first one (so a lone event is committed within the
 * interval); parse them (up to batch_max_events events: the records after that start
 * the next batch); claim their events in PostgreSQL; emit and commit in one Kafka
 * transaction. Those three stages run at once on three batches (turn()): the committer
 * thread sends the claimed batch to Kafka (committer.c), the parser thread parses the
 * batch just collected (parser.c), and this thread claims the parsed one in between;
 * a batch that is not full (the worker is caught up) is claimed in the turn that parses
 * it. With a batch in hand a turn collects only what has already arrived, so a lone
 * event is not held up. PostgreSQL down (or any transient error): retry the claim with backoff,
 * and after 30 s rewind and poll again (keeping the group membership alive) — nothing
 * is committed meanwhile. A permanent error never comes back here: the claim isolates
 * the records that cause it and dead-letters them (dedup.c).
 * A rebalance while collecting drops the partial batch: the new assignment starts from
 * committed offsets. SIGTERM finishes the batch in hand and exits (within 10 s, or the
 * watchdog exits at once); a second one exits at once. Fatal Kafka errors exit with
 * status 1 so a supervisor restarts the worker.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/timeutil.h"
#include "arenas.h"
#include "committer.h"
#include "lanes.h"
#include "parser.h"
#include "prefetch.h"
#include "metrics.h"
#include "pipeline.h"

#define PG_GIVE_UP_MS 30000
/* A second under the 10 s a shutdown may take: leaves time to exit. */
#define SHUTDOWN_GRACE_S 9

static struct worker *the_worker;

static const char usage[] =
    "usage: mailhook-worker --config FILE [--instance ID] [--metrics-listen HOST:PORT]\n"
    "\n"
    "Consumes raw webhooks from Kafka, normalizes them into canonical events, dedups them\n"
    "in PostgreSQL and emits each distinct event exactly once.\n"
    "\n"
    "  -c, --config FILE   mailhook INI file (required)\n"
    "  -i, --instance ID   stable name of this worker within the pool (default: host-pid);\n"
    "                      a restarted worker with the same ID fences its predecessor and\n"
    "                      takes over its partitions at once (static group membership)\n"
    "  -m, --metrics-listen HOST:PORT\n"
    "                      serve /metrics and /healthz there (overrides [worker]\n"
    "                      metrics_listen; several workers on one host need one each)\n"
    "  -h, --help          this text\n"
    "  -V, --version       print the version\n";

/* First SIGTERM/SIGINT: finish (or abort) the batch in hand, commit, leave. The watchdog
 * bounds that to SHUTDOWN_GRACE_S whatever Kafka or PostgreSQL do; exiting at any
 * point is safe (it is a crash: the open transaction is aborted, the batch comes again).
 * A second signal exits at once. */
static void on_signal(int sig)
{
    (void)sig;
    if (the_worker->stop) _exit(1);
    the_worker->stop = 1;
    alarm(SHUTDOWN_GRACE_S);
}

/* Keeps the deadline a signal set, or sets one (leaving after a fatal error). */
static void arm_watchdog(void)
{
    unsigned left = alarm(0);
    alarm(left ? left : SHUTDOWN_GRACE_S);
}

static void on_alarm(int sig)
{
    static const char msg[] = "{\"level\":\"error\",\"component\":\"worker\",\"msg\":"
                              "\"shutdown: not done within the grace period, exiting now\"}\n";
    (void)sig;
    ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)n;
    _exit(1);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct worker *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        mh_info("assigned %d partitions", parts->cnt);
        rd_kafka_assign(rk, parts);
        w->lanes_assigned = 1; /* lanes_follow_assignment, after the poll */
    } else {
        mh_info("revoked %d partitions", parts->cnt);
        w->rebalanced = 1;
        w->rebalances++;
        rd_kafka_assign(rk, NULL);
    }
}

/* The read-ahead in use (prefetch.h; [kafka] may have replaced it), for the operator. */
static void log_read_ahead(rd_kafka_t *rk)
{
    char records[32], kbytes[32];
    const rd_kafka_conf_t *conf = rd_kafka_conf(rk);
    mh_info("consumer read-ahead: queued.min.messages=%s, queued.max.messages.kbytes=%s",
            mh_kafka_setting(conf, "queued.min.messages", records, sizeof(records)),
            mh_kafka_setting(conf, "queued.max.messages.kbytes", kbytes, sizeof(kbytes)));
}

/*
 * A worker started with --instance is a *static* member of the group (KIP-345,
 * group.instance.id = the instance name): when it is restarted — after a crash, by a
 * supervisor, in a rolling deploy — it takes its predecessor's place and partitions at
 * once, instead of the whole group stopping to rebalance twice and the dead member's
 * partitions waiting out session.timeout.ms. The cost: a static member that stops and
 * is not restarted keeps its partitions until session.timeout.ms has passed.
 */
static int consumer_init(struct worker *w, int static_member, char *err, size_t errlen)
{
    char max_bytes[32];
    snprintf(max_bytes, sizeof(max_bytes), "%ld", mh_config_max_record_bytes(w->cfg));
    const char *overrides[] = {
        "group.id", w->cfg->worker.group_id,
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest",
        "isolation.level", "read_committed",
        "fetch.message.max.bytes", max_bytes,
        static_member ? "group.instance.id" : NULL, w->instance,
        NULL,
    };
    struct prefetch_defaults pf;
    prefetch_defaults(&pf, w->cfg->worker.batch_size);
    rd_kafka_conf_t *conf = mh_kafka_conf_defaults(w->cfg, pf.pairs, overrides, err, errlen);
    if (!conf) return -1;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, w);
    char rkerr[512];
    w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
    if (!w->consumer) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka consumer: %s", rkerr);
        return -1;
    }
    rd_kafka_poll_set_consumer(w->consumer);
    log_read_ahead(w->consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, w->cfg->worker.raw_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "subscribe %s: %s", w->cfg->worker.raw_topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

/* Collects one batch: up to batch_size records or batch_max_bytes of their bodies,
 * after the records b already holds (those the last parse left over); returns 1 when it
 * stopped at one of those limits (a backlog), else 0. With wait 0, takes only what has
 * already arrived. */
static int collect(struct worker *w, struct batch *b, int wait)
{
    int64_t first_ms = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < b->n; i++) bytes += b->recs[i].rkm->len;
    while (!w->stop && b->n < (size_t)w->cfg->worker.batch_size &&
           bytes < (size_t)w->cfg->worker.batch_max_bytes) {
        int timeout = 500;
        if (!wait) {
            timeout = 0;
        } else if (first_ms) {
            int64_t left = first_ms + w->cfg->worker.commit_interval_ms - mh_mono_ms();
            if (left <= 0) break;
            timeout = (int)left;
        }
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w->consumer, timeout);
        if (w->rebalanced) {
            /* Everything collected before this poll belongs to the old assignment; its
             * partitions start again from their committed offsets. A message this very
             * poll returned came after the rebalance (the queue is served in order) and
             * is the first of the new assignment: dropping it would skip it for good,
             * since the fetch position has already moved past it. */
            batch_free(b);
            w->rebalanced = 0;
            first_ms = 0;
            bytes = 0;
        }
        if (!rkm) {
            if (!first_ms || !wait) return 0;
            continue;
        }
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                mh_warn("consume: %s", rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            if (rd_kafka_fatal_error(w->consumer, NULL, 0)) w->stop = 2;
            continue;
        }
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 64;
            b->recs = mh_realloc(b->recs, b->cap * sizeof(*b->recs));
        }
        memset(&b->recs[b->n], 0, sizeof(b->recs[b->n]));
        b->recs[b->n++].rkm = rkm;
        bytes += rkm->len;
        if (!first_ms) first_ms = mh_mono_ms();
    }
    return b->n >= (size_t)w->cfg->worker.batch_size ||
           bytes >= (size_t)w->cfg->worker.batch_max_bytes;
}

/* Claims with retry; 0 when claimed, 1 when PostgreSQL stayed down (batch rewound). */
static int claim_with_retry(struct worker *w, struct batch *b)
{
    char err[1024];
    int64_t start = mh_mono_ms();
    int delay_ms = 100;
    for (int attempt = 0;; attempt++) {
        /* A retry claims in one lane: a split claim that failed may have met another
         * worker's lanes in a wait cycle (worker/lanes.c). */
        if (lanes_claim(w, b, attempt == 0, err, sizeof(err)) == 0) return 0;
        /* Session-level address locks outlive the rolled-back transaction that took
         * them; held across the retry they could close a wait cycle with another
         * worker's claim insert. */
        suppression_release(w);
        w->stats.pg_retries++;
        mh_warn("%s (retrying in %d ms)", err, delay_ms);
        if (w->stop || mh_mono_ms() - start > PG_GIVE_UP_MS) {
            rewind_batch(w, b);
            return 1;
        }
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
    }
}

/*
 * Refreshes the gauges /metrics shows: the assignment's size and how far this worker's
 * position is behind each partition's high watermark (librdkafka's cached values, so no
 * broker round trip). A partition not consumed from yet counts no lag.
 */
static void refresh_gauges(struct worker *w)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(w->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    int64_t lag = 0;
    if (parts->cnt > 0 && rd_kafka_position(w->consumer, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *p = &parts->elems[i];
            int64_t lo, hi;
            if (p->offset < 0 ||
                rd_kafka_get_watermark_offsets(w->consumer, p->topic, p->partition, &lo, &hi) ||
                hi < 0)
                continue;
            if (hi > p->offset) lag += hi - p->offset;
        }
    }
    atomic_store_explicit(&w->stats.assigned_partitions, parts->cnt, memory_order_relaxed);
    atomic_store_explicit(&w->stats.lag_records, lag, memory_order_relaxed);
    rd_kafka_topic_partition_list_destroy(parts);
}

static void log_stats(struct worker *w)
{
    const struct worker_stats *s = &w->stats;
    mh_info("stats: records=%llu events=%llu duplicates=%llu dead_letters=%llu "
            "store_dead_letters=%llu batches=%llu "
            "aborts=%llu pg_retries=%llu busy_ms normalize=%llu claim=%llu emit=%llu",
            (unsigned long long)s->records, (unsigned long long)s->events_emitted,
            (unsigned long long)s->duplicates, (unsigned long long)s->dead_letters,
            (unsigned long long)s->store_dead_letters,
            (unsigned long long)s->batches, (unsigned long long)s->aborts,
            (unsigned long long)s->pg_retries, (unsigned long long)s->normalize_ms,
            (unsigned long long)s->claim_ms, (unsigned long long)s->emit_ms);
}

/* Adds a stage's milliseconds to its counter. */
static void busy(_Atomic uint64_t *counter, int64_t since_ms)
{
    atomic_fetch_add_explicit(counter, (uint64_t)(mh_mono_ms() - since_ms), memory_order_relaxed);
}

/* A batch of the loop's pipeline: parsed (waiting for its claim) or claimed in
 * PostgreSQL (waiting for its Kafka transaction). */
struct staged {
    struct batch b;
    int64_t t0; /* when it was collected */
    int have;
};

/* Drops a batch; a claimed one's per-address locks are on w->pg and are released. */
static void staged_drop(struct worker *w, struct staged *s, int claimed)
{
    if (!s->have) return;
    if (claimed) suppression_release(w);
    batch_free(&s->b);
    s->have = 0;
}

/* Rewinds the loop's batches, the latest first (the records a parse carried over, the
 * batch just collected, the parsed one, the claimed one), so every partition ends at the
 * first record the earliest of them holds on it. */
static void rewind_all(struct worker *w, struct batch *carried, struct batch *collected,
                       struct staged *parsed, struct staged *claimed)
{
    if (carried->n) rewind_batch(w, carried);
    if (collected->n) rewind_batch(w, collected);
    if (parsed->have) rewind_batch(w, &parsed->b);
    if (claimed->have) rewind_batch(w, &claimed->b);
}

/* Claims b, timed; 1 when claimed, 0 when PostgreSQL stayed down (b rewound). */
static int claim_timed(struct worker *w, struct batch *b)
{
    int64_t t = mh_mono_ms();
    int ok = claim_with_retry(w, b) == 0;
    busy(&w->stats.claim_ms, t);
    return ok;
}

/*
 * One turn of the pipeline: c (claimed) goes to Kafka on the committer thread, p
 * (parsed) is claimed here, and z (just collected) is parsed on the parser thread, all
 * at once. When z is a full batch (a backlog), it waits for the next turn's claim, so
 * parsing, claims and commits overlap; when it is only what had arrived (the worker is
 * caught up), it is claimed in this turn too, after p, and goes to Kafka with p: an
 * event then waits two turns, not three. The parse stops at batch_max_events: z's
 * records after that go to carry, unparsed, to start the next batch (z is then full).
 * Afterwards c is what was claimed, p what waits for its claim. Returns 0, or -1 on a
 * fatal error. When c's transaction aborts, or a claim gives up, the batches after the
 * last committed one are rewound and dropped: their records come again.
 */
static int turn(struct worker *w, struct staged *c, struct staged *p, struct batch *z,
                struct batch *carry, int z_full, int64_t t0)
{
    struct committer cm = {0};
    struct parser ps = {0};
    int committing = c->have, p_ok = 0, z_ok = 0, rc = 0;

    if (committing) committer_start(&cm, w, &c->b);
    if (z->n) parser_start(&ps, w, z);
    if (p->have) p_ok = claim_timed(w, &p->b);
    parser_join(&ps);
    if (z->n && ps.parsed < z->n) {
        batch_split(z, ps.parsed, carry);
        z_full = 1;
    }
    int64_t events = (int64_t)z->n_events;
    if (events > atomic_load_explicit(&w->stats.batch_events_max, memory_order_relaxed))
        atomic_store_explicit(&w->stats.batch_events_max, events, memory_order_relaxed);
    if (z->n && !z_full && (!p->have || p_ok)) {
        z_ok = claim_timed(w, z);
        if (!z_ok) batch_free(z); /* rewound: its records come again */
    }
    if (committing) rc = committer_join(&cm);
    if (rc < 0) return -1;
    if (rc > 0 || (p->have && !p_ok)) {
        /* c aborted (its records and all after them come again), or p's claim gave up
         * (p's, z's and the carried ones). The locks of p's and z's claims are on w->pg. */
        struct staged committed = {0};
        rewind_all(w, carry, z, p, rc > 0 ? c : &committed);
        batch_free(carry);
        batch_free(z);
        staged_drop(w, p, 0);
        suppression_release(w);
        if (rc > 0) {
            batch_free(&c->b);
            c->have = 0;
        }
    }
    if (c->have) {
        emit_count(w, &c->b);
        mh_histogram_observe_us(&w->stats.batch_latency, (mh_mono_ms() - c->t0) * 1000);
        batch_free(&c->b);
        c->have = 0;
    }
    if (p->have) {
        *c = *p;
        p->have = 0;
    }
    if (z->n && z_ok && c->have) {
        batch_append(&c->b, z);
    } else if (z->n) {
        struct staged *to = z_ok ? c : p;
        to->b = *z;
        to->t0 = t0;
        to->have = 1;
        *z = (struct batch){0};
    }
    return 0;
}

static int run(struct worker *w)
{
    int64_t next_stats = mh_mono_ms() + 60000, next_gauges = 0;
    struct staged c = {0}, p = {0};
    struct batch carry = {0}; /* records the last parse left for the next batch */
    int rc = 0;
    while (!w->stop) {
        int64_t now = mh_mono_ms();
        atomic_store_explicit(&w->stats.loop_ms, now, memory_order_relaxed);
        if (now >= next_gauges) {
            refresh_gauges(w);
            next_gauges = now + 1000;
        }
        unsigned rebalances = w->rebalances;
        struct batch z = carry;
        carry = (struct batch){0};
        /* Waits for records only when the pipeline is empty: a batch in hand goes on
         * with whatever has arrived, so a lone event is not held up. */
        int z_full = collect(w, &z, !c.have && !p.have && !z.n);
        int64_t t0 = mh_mono_ms();
        /* Batches of an assignment that changed are not emitted: their partitions start
         * again from their committed offsets (their claims decide the same then). */
        if (w->rebalances != rebalances) {
            staged_drop(w, &c, 1);
            staged_drop(w, &p, 0);
        }
        /* After the drops: a lane given up may close its connections, no lock held. */
        lanes_follow_assignment(w);
        if (c.have || p.have || z.n) rc = turn(w, &c, &p, &z, &carry, z_full, t0);
        batch_free(&z);
        if (rc < 0) break;
        if (mh_mono_ms() >= next_stats) {
            log_stats(w);
            next_stats = mh_mono_ms() + 60000;
        }
    }
    /* Leaving: the claimed batch is emitted (or, after a fatal error, dropped); a parsed
     * one is dropped, its records come again to whoever takes the partitions. */
    if (c.have && rc >= 0 && w->stop != 2) {
        int64_t t = mh_mono_ms();
        rc = emit_batch(w, &c.b);
        busy(&w->stats.emit_ms, t);
        suppression_release(w);
    }
    staged_drop(w, &c, 1);
    staged_drop(w, &p, 0);
    batch_free(&carry);
    if (rc < 0) return -1;
    return w->stop == 2 ? -1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"instance", required_argument, NULL, 'i'},
        {"metrics-listen", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *instance = NULL, *metrics_listen = NULL;
    char default_instance[300];
    int c;
    while ((c = getopt_long(argc, argv, "c:i:m:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'i': instance = optarg; break;
        case 'm': metrics_listen = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("mailhook-worker %s\n", MH_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
#ifndef MH_JEMALLOC
    arenas_limit(); /* glibc's allocator; jemalloc has its settings (jemalloc_conf.c) */
#endif
    if (!instance) {
        char host[256] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(default_instance, sizeof(default_instance), "%s-%d", host, (int)getpid());
        instance = default_instance;
    }

    mh_log_init("worker");
    char err[1024];
    struct worker w = {0};
    struct worker_metrics *metrics = NULL;
    int rc = 1;
    w.instance = instance;
    w.cfg = mh_config_load(path, err, sizeof(err));
    if (!w.cfg) {
        fprintf(stderr, "mailhook-worker: %s\n", err);
        return 1;
    }
    if (!getenv("MAILHOOK_LOG_LEVEL")) mh_log_level_parse(w.cfg->worker.log_level, &mh_log_threshold);
    if (event_counts_init(&w.stats.events, w.cfg) < 0) mh_oom();
    the_worker = &w;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* First the address, so a wrong or taken one fails before Kafka is touched. */
    if (!metrics_listen) metrics_listen = w.cfg->worker.metrics_listen;
    if (metrics_listen && *metrics_listen) {
        metrics = worker_metrics_start(metrics_listen, &w, err, sizeof(err));
        if (!metrics) {
            mh_error("%s", err);
            goto out;
        }
    }
    lanes_init(&w);
    if (dedup_connect(&w, err, sizeof(err)) < 0) mh_warn("%s (will retry)", err);
    if (emit_init(&w, err, sizeof(err)) < 0 ||
        consumer_init(&w, instance != default_instance, err, sizeof(err)) < 0) {
        mh_error("%s", err);
        goto out;
    }
    mh_info("mailhook-worker %s started: instance %s, group %s, raw topic %s, claim lanes up to %zu%s%s",
            MH_VERSION, instance, w.cfg->worker.group_id, w.cfg->worker.raw_topic, 1 + w.n_lanes,
            metrics ? ", metrics on " : "", metrics ? metrics_listen : "");
    rc = run(&w) < 0 ? 1 : 0;
    log_stats(&w);
out:
    /* Leaving the group and closing the clients wait on Kafka: bounded too. */
    arm_watchdog();
    if (w.consumer) {
        rd_kafka_consumer_close(w.consumer);
        rd_kafka_destroy(w.consumer);
    }
    if (w.producer) {
        rd_kafka_flush(w.producer, 5000);
        rd_kafka_destroy(w.producer);
    }
    if (w.pg) PQfinish(w.pg);
    if (w.pg_spare) PQfinish(w.pg_spare);
    lanes_free(&w);
    worker_metrics_stop(metrics);
    event_counts_free(&w.stats.events);
    mh_config_free(w.cfg);
    mh_info("stopped");
    return rc;
}
