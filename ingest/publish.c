/*
 * publish.c — the raw-topic producer of mailhook-ingest.
 *
 * Durability settings are forced, whatever [kafka] says: acks=all and idempotence, so
 * an acknowledged record is on every in-sync replica exactly once; message.timeout.ms =
 * [ingest] ack_deadline_ms, so every record gets its delivery report within the
 * deadline and the waiting request its answer.
 *
 * Defaults of its own, which [kafka] may replace (docs/kafka.md, "Ingest's producer
 * defaults"): linger.ms = INGEST_LINGER_MS. librdkafka's 5 ms makes every request wait
 * 5 ms before its record even leaves; 0 sends a produce request for every few records,
 * which under many concurrent senders costs the broker and the producer more CPU per
 * record than the wait saves. A short linger batches what concurrent senders bring and
 * adds little to a single sender's answer.
 *
 * Records on the quarantine topic (quarantine.c) share the producer; they carry no
 * opaque, and their delivery reports are only counted.
 *
 * The process has one producer, shared by its loops: the records that concurrent requests
 * bring, whichever loop took them, go out in one produce request per batch, and the broker
 * and the producer's own threads do the work once rather than once per loop. A thread of
 * publish.c serves the producer's delivery reports (rd_kafka_poll) and hands each to the
 * loop that holds its request: the report joins that loop's inbox and, when the inbox was
 * empty, activates the loop's event, so a request is still answered on its own loop.
 * The readiness probe thread asks the broker for the raw topic's metadata every two
 * seconds: that is what /readyz reports, and while it fails requests get 503 at once
 * instead of waiting out the deadline.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/shutdown.h"
#include "mailhook/timeutil.h"

static const char *const producer_defaults[] = {
    "linger.ms", INGEST_LINGER_MS,
    NULL,
};

static publish_done_cb done_cb;
static pthread_t reports_thread;
static int reports_started;
static atomic_int reports_stop;
static pthread_t probe_thread;
static int probe_started;
/* The probe's own copy: a SIGHUP reload frees the config the loop thread swaps out. */
static char *probe_topic;

void publish_set_done_cb(publish_done_cb cb)
{
    done_cb = cb;
}

/* A report for a loop's request, waiting in the loop's inbox. */
struct report {
    void *opaque;
    rd_kafka_resp_err_t err;
};

/* On the reports thread (or wherever the producer is polled). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct ingest_proc *p = opaque;
    (void)rk;
    /* A quarantine record (no request waits for it): only its outcome is counted. */
    if (!rkm->_private) {
        if (rkm->err) {
            p->stats.quarantine_failed++;
            mh_warn("quarantine record not stored: %s", rd_kafka_err2str(rkm->err));
        } else {
            p->stats.quarantined++;
        }
        return;
    }
    struct ingest *in = *(struct ingest **)rkm->_private; /* publish_record's contract */
    pthread_mutex_lock(&in->inbox_mu);
    if (in->inbox_n == in->inbox_cap) {
        in->inbox_cap = in->inbox_cap ? in->inbox_cap * 2 : 64;
        in->inbox = mh_realloc(in->inbox, in->inbox_cap * sizeof(*in->inbox));
    }
    in->inbox[in->inbox_n++] = (struct report){rkm->_private, rkm->err};
    int first = in->inbox_n == 1;
    pthread_mutex_unlock(&in->inbox_mu);
    if (first) event_active(in->inbox_ev, EV_READ, 0);
}

/* Answers the requests whose reports are in the loop's inbox; returns how many. */
static size_t serve_inbox(struct ingest *in)
{
    pthread_mutex_lock(&in->inbox_mu);
    struct report *v = in->inbox;
    size_t n = in->inbox_n, cap = in->inbox_cap;
    in->inbox = in->inbox_spare;
    in->inbox_cap = in->inbox_spare_cap;
    in->inbox_n = 0;
    pthread_mutex_unlock(&in->inbox_mu);
    for (size_t i = 0; i < n; i++)
        if (done_cb) done_cb(v[i].err, v[i].opaque);
    in->inbox_spare = v;
    in->inbox_spare_cap = cap;
    return n;
}

static void on_inbox(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    serve_inbox(arg);
}

static void *reports_main(void *arg)
{
    struct ingest_proc *p = arg;
    while (!atomic_load(&reports_stop)) rd_kafka_poll(p->rk, 100);
    return NULL;
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct ingest_proc *p = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) atomic_store(&p->kafka_ok, 0);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        mh_error("kafka fatal error: %s", fatal);
        atomic_store(&p->kafka_ok, 0);
        /* Every produce fails from now on, and the probe would still call Kafka ready:
         * only a new producer (a new process) recovers. */
        ingest_fatal(p);
        return;
    }
    mh_warn("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void *probe_main(void *arg)
{
    struct ingest_proc *p = arg;
    rd_kafka_t *rk = p->rk;
    const char *topic = probe_topic;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int was_ok = -1;

    while (!atomic_load(&p->stopping)) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 1500);
        int ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
                 md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                 md->topics[0].partition_cnt > 0;
        if (md) rd_kafka_metadata_destroy(md);
        atomic_store(&p->kafka_ok, ok);
        if (ok != was_ok) {
            if (ok) mh_info("kafka ready: topic %s reachable", topic);
            else mh_warn("kafka not ready: topic %s: %s", topic,
                         err ? rd_kafka_err2str(err) : "topic missing or has no partitions");
            was_ok = ok;
        }
        for (int i = 0; i < 20 && !atomic_load(&p->stopping); i++) usleep(100 * 1000);
    }
    rd_kafka_topic_destroy(rkt);
    return NULL;
}

/*
 * Which partition a record goes to: the same one for every record of a STICKY_MS
 * window, the next one in the following window. A record's key stays its request id,
 * but the raw topic's partitions only spread the work over workers (nothing depends on
 * which partition a webhook lands on, guarantees.md): with the key's hash, the records
 * lingering together are split over every partition, one record batch each, and the
 * producer and the broker pay per batch; here they make one batch. Over time every
 * partition gets its share. A partition without a leader is skipped.
 */
#define STICKY_MS 10

static int32_t sticky_partition(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                                int32_t partition_cnt, void *rkt_opaque, void *msg_opaque)
{
    (void)key;
    (void)keylen;
    (void)rkt_opaque;
    (void)msg_opaque;
    int32_t first = (int32_t)((mh_mono_ms() / STICKY_MS) % partition_cnt);
    for (int32_t i = 0; i < partition_cnt; i++) {
        int32_t p = (first + i) % partition_cnt;
        if (rd_kafka_topic_partition_available(rkt, p)) return p;
    }
    return first;
}

/* The sticky partitioner, unless [kafka] names a partitioner of its own. */
static int use_sticky_partitions(rd_kafka_conf_t *conf, const struct mh_config *cfg)
{
    for (const struct mh_kv *kv = cfg->kafka; kv; kv = kv->next)
        if (!strcmp(kv->key, "partitioner")) return 0;
    rd_kafka_topic_conf_t *tconf = rd_kafka_conf_get_default_topic_conf(conf);
    if (!tconf) {
        tconf = rd_kafka_topic_conf_new();
        rd_kafka_conf_set_default_topic_conf(conf, tconf);
    }
    rd_kafka_topic_conf_set_partitioner_cb(tconf, sticky_partition);
    return 1;
}

int publish_start(struct ingest_proc *p, const struct mh_config *cfg, char *err, size_t errlen)
{
    char deadline[32], max_bytes[32];
    snprintf(deadline, sizeof(deadline), "%ld", cfg->ingest.ack_deadline_ms);
    snprintf(max_bytes, sizeof(max_bytes), "%ld", mh_config_max_record_bytes(cfg));
    const char *overrides[] = {
        "acks", "all",
        "enable.idempotence", "true",
        "message.timeout.ms", deadline,
        "message.max.bytes", max_bytes,
        NULL,
    };
    rd_kafka_conf_t *conf = mh_kafka_conf_defaults(cfg, producer_defaults, overrides, err, errlen);
    if (!conf) return -1;
    char linger[32];
    mh_info("kafka producer: linger.ms = %s",
            mh_kafka_setting(conf, "linger.ms", linger, sizeof(linger)));
    if (use_sticky_partitions(conf, cfg))
        mh_info("kafka producer: partitions taken in turn, %d ms each", STICKY_MS);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_opaque(conf, p);

    char rkerr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!p->rk) {
        snprintf(err, errlen, "kafka producer: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    for (int i = 0; i < p->n_loops; i++) p->loops[i].rk = p->rk;
    atomic_store(&reports_stop, 0);
    if (pthread_create(&reports_thread, NULL, reports_main, p) != 0) {
        snprintf(err, errlen, "cannot start the delivery report thread");
        return -1;
    }
    reports_started = 1;
    return 0;
}

int publish_init(struct ingest *in, char *err, size_t errlen)
{
    pthread_mutex_init(&in->inbox_mu, NULL);
    in->inbox_ev = event_new(in->base, -1, 0, on_inbox, in);
    if (!in->inbox_ev) {
        snprintf(err, errlen, "cannot set up the delivery reports of loop %d", in->id);
        return -1;
    }
    return 0;
}

int probe_start(struct ingest_proc *p, char *err, size_t errlen)
{
    probe_topic = mh_strdup(p->loops[0].cur->cfg->ingest.raw_topic);
    if (pthread_create(&probe_thread, NULL, probe_main, p) != 0) {
        snprintf(err, errlen, "cannot start the readiness probe thread");
        return -1;
    }
    probe_started = 1;
    return 0;
}

void probe_stop(struct ingest_proc *p)
{
    atomic_store(&p->stopping, 1);
    if (probe_started) pthread_join(probe_thread, NULL);
    probe_started = 0;
    free(probe_topic);
    probe_topic = NULL;
}

rd_kafka_resp_err_t publish_record(struct ingest *in, const char *topic, const char *key,
                                   const void *value, size_t len, rd_kafka_headers_t *hdrs,
                                   void *opaque)
{
    /* On success librdkafka owns hdrs; on failure the caller still does. */
    return rd_kafka_producev(in->rk, RD_KAFKA_V_TOPIC(topic),
                             RD_KAFKA_V_KEY(key, strlen(key)),
                             RD_KAFKA_V_VALUE((void *)value, len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                             RD_KAFKA_V_END);
}

void publish_drain(struct ingest *in)
{
    if (!in->rk || !in->inbox_ev) return;
    /* Answer what Kafka acknowledges within what is left of the shutdown grace period.
     * Then purge what is still queued or in flight: the producer is shared, but every
     * loop's grace period ends at the same time, and nothing unacknowledged by then may
     * get a 2xx. The purged records' reports (errors) release their requests. */
    int64_t end = in->shutting_down ? mh_shutdown_grace_end_ms(in->shutdown) : mh_mono_ms() + 9000;
    while (atomic_load(&in->inflight) > 0 && mh_mono_ms() < end)
        if (!serve_inbox(in)) usleep(5 * 1000);
    if (atomic_load(&in->inflight) <= 0) return;
    rd_kafka_purge(in->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 100 && atomic_load(&in->inflight) > 0; i++)
        if (!serve_inbox(in)) usleep(5 * 1000);
}

void publish_stop(struct ingest_proc *p)
{
    if (p->rk) {
        /* What is left is the quarantine's fire-and-forget records: a last chance, short
         * enough for the shutdown to end within its 10 s. */
        rd_kafka_flush(p->rk, 300);
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    if (reports_started) {
        for (int i = 0; i < 10 && rd_kafka_outq_len(p->rk) > 0; i++) usleep(10 * 1000);
        atomic_store(&reports_stop, 1);
        pthread_join(reports_thread, NULL);
        reports_started = 0;
    }
    if (p->rk) rd_kafka_poll(p->rk, 0); /* reports that came after the thread's last poll */
}

void publish_fini(struct ingest *in)
{
    if (in->inbox_ev) {
        serve_inbox(in); /* reports that came after the loop's drain */
        event_free(in->inbox_ev);
        in->inbox_ev = NULL;
        pthread_mutex_destroy(&in->inbox_mu);
    }
    free(in->inbox);
    free(in->inbox_spare);
    in->inbox = in->inbox_spare = NULL;
    in->inbox_n = in->inbox_cap = in->inbox_spare_cap = 0;
    in->rk = NULL;
}

void publish_destroy(struct ingest_proc *p)
{
    if (p->rk) rd_kafka_destroy(p->rk);
    p->rk = NULL;
}
