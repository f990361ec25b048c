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
 * Every loop has a producer of its own. librdkafka signals queued delivery reports by
 * writing to a pipe that the loop watches (rd_kafka_queue_io_event_enable), so reports
 * are served on the loop thread that holds the request, without polling. A small thread
 * asks the broker for the raw topic's metadata every two seconds (on the first loop's
 * producer): that is what /readyz reports, and while it fails requests get 503 at once
 * instead of waiting out the deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
static pthread_t probe_thread;
static int probe_started;
/* The probe's own copy: a SIGHUP reload frees the config the loop thread swaps out. */
static char *probe_topic;

void publish_set_done_cb(publish_done_cb cb)
{
    done_cb = cb;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct ingest *in = opaque;
    (void)rk;
    /* A quarantine record (no request waits for it): only its outcome is counted. */
    if (!rkm->_private) {
        if (rkm->err) {
            in->proc->stats.quarantine_failed++;
            mh_warn("quarantine record not stored: %s", rd_kafka_err2str(rkm->err));
        } else {
            in->proc->stats.quarantined++;
        }
        return;
    }
    if (done_cb) done_cb(rkm->err, rkm->_private);
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct ingest *in = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) atomic_store(&in->proc->kafka_ok, 0);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        mh_error("kafka fatal error: %s", fatal);
        atomic_store(&in->proc->kafka_ok, 0);
        /* Every produce fails from now on, and the probe would still call Kafka ready:
         * only a new producer (a new process) recovers. */
        ingest_fatal(in);
        return;
    }
    mh_warn("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    char buf[64];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    publish_poll(arg);
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    publish_poll(arg);
}

void publish_poll(struct ingest *in)
{
    rd_kafka_poll(in->rk, 0);
}

static void *probe_main(void *arg)
{
    struct ingest_proc *p = arg;
    rd_kafka_t *rk = p->loops[0].rk;
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

int publish_init(struct ingest *in, char *err, size_t errlen)
{
    char deadline[32], max_bytes[32];
    const struct mh_config *cfg = in->cur->cfg;
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
    if (in->id == 0) {
        char linger[32];
        size_t sz = sizeof(linger);
        if (rd_kafka_conf_get(conf, "linger.ms", linger, &sz) == RD_KAFKA_CONF_OK)
            mh_info("kafka producer: linger.ms = %s", linger);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_opaque(conf, in);

    char rkerr[512];
    in->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!in->rk) {
        snprintf(err, errlen, "kafka producer: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }

    if (pipe2(in->wake_fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    rd_kafka_queue_t *mainq = rd_kafka_queue_get_main(in->rk);
    rd_kafka_queue_io_event_enable(mainq, in->wake_fds[1], "1", 1);
    rd_kafka_queue_destroy(mainq);
    in->wake_ev = event_new(in->base, in->wake_fds[0], EV_READ | EV_PERSIST, on_wake, in);
    event_add(in->wake_ev, NULL);
    /* A safety net: serve the queue every 100 ms even if a wake-up was coalesced away. */
    struct timeval tv = {0, 100 * 1000};
    in->poll_ev = event_new(in->base, -1, EV_PERSIST, on_poll_timer, in);
    event_add(in->poll_ev, &tv);
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
    if (!in->rk) return;
    /* Deliver what is still queued within what is left of the shutdown grace period;
     * reports answer their requests. Then purge the rest: their reports (errors)
     * release the requests, which get no 2xx. */
    int64_t end = in->shutting_down ? mh_shutdown_grace_end_ms(in->shutdown) : mh_mono_ms() + 9000;
    int64_t left = end - mh_mono_ms();
    rd_kafka_flush(in->rk, left > 0 ? (int)left : 0);
    rd_kafka_purge(in->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 10; i++) {
        rd_kafka_poll(in->rk, atomic_load(&in->inflight) > 0 ? 50 : 0);
        if (atomic_load(&in->inflight) <= 0) break;
    }
}

void publish_fini(struct ingest *in)
{
    if (in->rk) {
        rd_kafka_destroy(in->rk);
        in->rk = NULL;
    }
    if (in->wake_ev) event_free(in->wake_ev);
    if (in->poll_ev) event_free(in->poll_ev);
    in->wake_ev = in->poll_ev = NULL;
    for (int i = 0; i < 2; i++)
        if (in->wake_fds[i] > 0) close(in->wake_fds[i]);
}
