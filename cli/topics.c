/*
 * topics.c — `mailhook topics`: creates mailhook's Kafka topics if they are missing.
 *
 *   raw           [worker] raw_partitions partitions (the worker pool's parallelism)
 *   events        as many partitions as raw, keyed by recipient
 *   dlq           one partition per raw partition is not needed: 1 is plenty
 *   suppressions  cleanup.policy=compact, key <tenant>/<address>
 *   quarantine    [ingest] quarantine_topic: 1 partition, kept 7 days (retention.ms):
 *                 requests refused for a signature mismatch, for `mailhook quarantine`
 * Every topic has [worker] replication_factor replicas (-1: the broker's
 * default.replication.factor) and, when [worker] min_insync_replicas is set, that
 * min.insync.replicas: with acks=all a write is acknowledged only once that many replicas
 * hold it. Every topic allows records as large as the biggest raw record (the body limit
 * plus headers).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"

struct topic_spec {
    const char *name;
    int partitions;
    const char *cleanup;
    const char *retention_ms; /* NULL: the broker's default */
};

#define QUARANTINE_RETENTION_MS "604800000" /* 7 days */

int cmd_topics(struct mh_config *cfg, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(strcmp(argv[1], "--help") ? stderr : stdout,
                "usage: mailhook [--config FILE] topics\n\n"
                "Creates the raw, events, dead-letter, suppressions and quarantine topics\n"
                "named in the config when they do not exist yet, with [worker]\n"
                "replication_factor replicas and min_insync_replicas (-1 and 0: the\n"
                "broker's defaults).\n");
        return strcmp(argv[1], "--help") ? 2 : 0;
    }
    char err[1024];
    int rc = 1;
    rd_kafka_conf_t *conf = mh_kafka_conf(cfg, NULL, err, sizeof(err));
    if (!conf) {
        fprintf(stderr, "mailhook topics: %s\n", err);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "mailhook topics: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    int parts = (int)cfg->worker.raw_partitions;
    char max_bytes[32];
    snprintf(max_bytes, sizeof(max_bytes), "%ld", mh_config_max_record_bytes(cfg));
    char min_isr[32];
    snprintf(min_isr, sizeof(min_isr), "%ld", cfg->worker.min_insync_replicas);
    const int replicas = (int)cfg->worker.replication_factor;
    const struct topic_spec specs[] = {
        {cfg->worker.raw_topic, parts, "delete", NULL},
        {cfg->worker.events_topic, parts, "delete", NULL},
        {cfg->worker.dlq_topic, 1, "delete", NULL},
        {cfg->worker.suppressions_topic, parts, "compact", NULL},
        {cfg->ingest.quarantine_topic, 1, "delete", QUARANTINE_RETENTION_MS},
    };
    const size_t n = sizeof(specs) / sizeof(specs[0]);
    rd_kafka_NewTopic_t *nt[sizeof(specs) / sizeof(specs[0])] = {0};
    for (size_t i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions, replicas, err,
                                      sizeof(err));
        if (!nt[i]) {
            fprintf(stderr, "mailhook topics: %s: %s\n", specs[i].name, err);
            goto out;
        }
        rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", specs[i].cleanup);
        rd_kafka_NewTopic_set_config(nt[i], "max.message.bytes", max_bytes);
        if (specs[i].retention_ms)
            rd_kafka_NewTopic_set_config(nt[i], "retention.ms", specs[i].retention_ms);
        if (cfg->worker.min_insync_replicas > 0)
            rd_kafka_NewTopic_set_config(nt[i], "min.insync.replicas", min_isr);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opts, 30000, err, sizeof(err));
    rd_kafka_AdminOptions_set_operation_timeout(opts, 30000, err, sizeof(err));
    rd_kafka_CreateTopics(rk, nt, n, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    if (!ev) {
        fprintf(stderr, "mailhook topics: no answer from Kafka within 60 s\n");
    } else if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "mailhook topics: %s\n", rd_kafka_event_error_string(ev));
    } else {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t cnt;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        rc = 0;
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            const char *name = rd_kafka_topic_result_name(tr[i]);
            if (!e) printf("created %s\n", name);
            else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) printf("exists  %s\n", name);
            else {
                fprintf(stderr, "mailhook topics: %s: %s\n", name,
                        rd_kafka_topic_result_error_string(tr[i]));
                rc = 1;
            }
        }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
out:
    for (size_t i = 0; i < n; i++)
        if (nt[i]) rd_kafka_NewTopic_destroy(nt[i]);
    rd_kafka_destroy(rk);
    return rc;
}
