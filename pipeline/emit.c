/*
 * emit.c — the Kafka half of exactly-once: one transaction per batch.
 *
 * The transaction carries the batch's claimed events (mailhook.events, keyed by
 * lower-cased recipient, CloudEvents attributes in headers), its dead letters
 * (mailhook.dlq, the raw body with the reason and the stage — parse, or store for a
 * record PostgreSQL refused — in headers) and the consumed offsets
 * (sent with the consumer's group metadata, so a zombie from before a rebalance is
 * fenced). Errors are triaged as librdkafka's transactions example does: retriable ->
 * retry, abortable -> abort and rewind the consumer so the batch comes again (its
 * claims make the redo emit the same events), fatal -> exit non-zero for a supervisor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/record_headers.h"
#include "pipeline.h"

#define TXN_TIMEOUT_MS 30000
/* How long start-up waits for one topic's metadata. */
#define TOPIC_METADATA_TIMEOUT_MS 2000

/*
 * Asks the broker about the topics the worker writes before its first transaction.
 * librdkafka 2.0.2 requests the metadata of a topic it meets for the first time only on
 * its one-second scan of unknown topics, so the first records to each topic would wait
 * for it inside a transaction: a new worker's first transaction took 530–880 ms, the
 * next ones 15. The answer stays in the producer's metadata cache, where a produce call
 * finds it. A topic the broker does not know is worth a warning: every transaction that
 * writes to it fails until it exists. Without an answer in time the first transaction
 * asks again itself.
 */
static void learn_topics(struct worker *w)
{
    const char *names[] = {w->cfg->worker.events_topic, w->cfg->worker.dlq_topic,
                           w->cfg->worker.suppressions_topic};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !w->stop; i++) {
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t e =
            mh_kafka_topic_metadata(w->producer, names[i], TOPIC_METADATA_TIMEOUT_MS, &md);
        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
            mh_warn("topic %s: %s (run `mailhook topics` if it does not exist)", names[i],
                    rd_kafka_err2str(e));
        else if (e)
            mh_info("topic %s: no metadata yet (%s)", names[i], rd_kafka_err2str(e));
        if (md) rd_kafka_metadata_destroy(md);
    }
}

int emit_init(struct worker *w, char *err, size_t errlen)
{
    char txid[256], max_bytes[32];
    snprintf(txid, sizeof(txid), "%s-%s", w->cfg->worker.group_id, w->instance);
    snprintf(max_bytes, sizeof(max_bytes), "%ld", mh_config_max_record_bytes(w->cfg));
    /* A transaction's first requests wait for the previous one's markers; retried after
     * librdkafka's default 100 ms that wait would dwarf the transaction (emit_produce).
     * [kafka] retry.backoff.ms replaces this. */
    const char *defaults[] = {"retry.backoff.ms", "10", NULL};
    const char *overrides[] = {
        "transactional.id", txid,
        "message.max.bytes", max_bytes,
        "enable.idempotence", "true",
        "acks", "all",
        "transaction.timeout.ms", "60000",
        NULL,
    };
    rd_kafka_conf_t *conf = mh_kafka_conf_defaults(w->cfg, defaults, overrides, err, errlen);
    if (!conf) return -1;
    char rkerr[512];
    w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!w->producer) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka producer: %s", rkerr);
        return -1;
    }
    /* Fences any earlier incarnation with the same transactional.id and aborts its open
     * transaction, so a restarted worker never waits for the old one to time out. */
    for (int attempt = 0;; attempt++) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(w->producer, TXN_TIMEOUT_MS);
        if (!e) break;
        int retriable = rd_kafka_error_is_retriable(e);
        snprintf(err, errlen, "kafka init_transactions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        if (!retriable || attempt >= 10 || w->stop) return -1;
        mh_warn("%s (retrying)", err);
        sleep(1);
    }
    learn_topics(w);
    char backoff[32];
    mh_info("transactional producer ready: transactional.id=%s, retry.backoff.ms=%s", txid,
            mh_kafka_setting(rd_kafka_conf(w->producer), "retry.backoff.ms", backoff,
                             sizeof(backoff)));
    return 0;
}

/*
 * Every partition of the batch goes back to the batch's first record on it, which is the
 * group's committed offset: a partition is read in order from its committed offset (at
 * assignment, or after the previous rewind), and a batch is collected only once the one
 * before it has committed. Asking the group coordinator instead would need a broker,
 * and transactions abort precisely when the broker is away; carrying on from the
 * current position would skip the batch for good (its offsets, and later ones, would be
 * committed by the next transaction). A seek that fails leaves no safe way on: the worker
 * then stops with a failure, and its successor starts from the committed offsets.
 */
void rewind_batch(struct worker *w, const struct batch *b)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *rkm = b->recs[i].rkm;
        const char *topic = rd_kafka_topic_name(rkm->rkt);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(parts, topic, rkm->partition);
        if (!tp) {
            tp = rd_kafka_topic_partition_list_add(parts, topic, rkm->partition);
            tp->offset = rkm->offset;
        } else if (rkm->offset < tp->offset) {
            tp->offset = rkm->offset;
        }
    }
    if (parts->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(w->consumer, parts, 10000);
        int failed = 0;
        if (e) {
            mh_error("rewind: seek failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            failed = 1;
        }
        for (int i = 0; i < parts->cnt; i++) {
            if (parts->elems[i].err) {
                mh_error("rewind: seek %s[%d] to %lld: %s", parts->elems[i].topic,
                         (int)parts->elems[i].partition, (long long)parts->elems[i].offset,
                         rd_kafka_err2str(parts->elems[i].err));
                failed = 1;
            }
        }
        if (failed) w->stop = 2;
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

/* Produce with back-pressure: a full local queue is served, then retried. flags:
 * RD_KAFKA_MSG_F_COPY, or RD_KAFKA_MSG_F_FREE to hand val (malloc'd) over to librdkafka
 * once the record is queued; on an error it stays the caller's. */
static rd_kafka_resp_err_t produce(struct worker *w, const char *topic, const void *key,
                                   size_t keylen, void *val, size_t len,
                                   rd_kafka_headers_t *hdrs, int flags)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            w->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, keylen),
            RD_KAFKA_V_VALUE(val, len), RD_KAFKA_V_MSGFLAGS(flags),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (err) rd_kafka_headers_destroy(hdrs);
            return err;
        }
        rd_kafka_poll(w->producer, 100);
    }
}

static void hdr(rd_kafka_headers_t *h, const char *name, const char *value)
{
    if (value) rd_kafka_header_add(h, name, -1, value, -1);
}

/* ev's record value is *text (normalize.c serialized it once), handed over to the
 * producer: *text is NULL once the record is queued, so the batch holds no second copy. */
static rd_kafka_resp_err_t emit_event(struct worker *w, json_t *ev, char **text, size_t len)
{
    const char *recipient = json_string_value(json_object_get(ev, "recipient"));
    const char *id = json_string_value(json_object_get(ev, "event_id"));
    const char *time = json_string_value(json_object_get(ev, "occurred_at"));
    if (!time) time = json_string_value(json_object_get(ev, "received_at"));
    char ce_source[300];
    snprintf(ce_source, sizeof(ce_source), "mailhook/%s/%s",
             json_string_value(json_object_get(ev, "tenant")) ?: "",
             json_string_value(json_object_get(ev, "source")) ?: "");

    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    hdr(h, "ce_specversion", "1.0");
    hdr(h, "ce_id", id);
    hdr(h, "ce_source", ce_source);
    hdr(h, "ce_type", json_string_value(json_object_get(ev, "type")));
    hdr(h, "ce_time", time);
    hdr(h, "content-type", "application/json");

    /* Keyed by recipient so one address's events stay in order on one partition;
     * events without one (domain.*, account.*) are keyed by event id. */
    const char *key = recipient ? recipient : (id ? id : "");
    rd_kafka_resp_err_t err = produce(w, w->cfg->worker.events_topic, key, strlen(key), *text,
                                      len, h, RD_KAFKA_MSG_F_FREE);
    if (!err) *text = NULL;
    return err;
}

static rd_kafka_resp_err_t emit_dead_letter(struct worker *w, struct batch_rec *r)
{
    const rd_kafka_message_t *rkm = r->rkm;
    rd_kafka_headers_t *src = NULL;
    rd_kafka_headers_t *h;
    char num[32];

    if (rd_kafka_message_headers(rkm, &src) == RD_KAFKA_RESP_ERR_NO_ERROR && src)
        h = rd_kafka_headers_copy(src);
    else
        h = rd_kafka_headers_new(4);
    hdr(h, MH_HDR_DLQ_REASON, r->dlq_reason);
    hdr(h, MH_HDR_DLQ_STAGE, r->dlq_stage ? r->dlq_stage : MH_DLQ_STAGE_PARSE);
    hdr(h, MH_HDR_RAW_TOPIC, rd_kafka_topic_name(rkm->rkt));
    snprintf(num, sizeof(num), "%d", (int)rkm->partition);
    hdr(h, MH_HDR_RAW_PARTITION, num);
    snprintf(num, sizeof(num), "%lld", (long long)rkm->offset);
    hdr(h, MH_HDR_RAW_OFFSET, num);
    return produce(w, w->cfg->worker.dlq_topic, rkm->key, rkm->key_len, rkm->payload, rkm->len, h,
                   RD_KAFKA_MSG_F_COPY);
}

rd_kafka_topic_partition_list_t *emit_offsets(const struct batch *b)
{
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *rkm = b->recs[i].rkm;
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(offs, rd_kafka_topic_name(rkm->rkt), rkm->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(offs, rd_kafka_topic_name(rkm->rkt), rkm->partition);
        if (rkm->offset + 1 > tp->offset) tp->offset = rkm->offset + 1;
    }
    return offs;
}

enum triage { T_OK, T_RETRY, T_ABORT, T_FATAL };

static enum triage triage(rd_kafka_error_t *e, const char *what)
{
    if (!e) return T_OK;
    enum triage t = rd_kafka_error_is_fatal(e)              ? T_FATAL
                    : rd_kafka_error_txn_requires_abort(e) ? T_ABORT
                    : rd_kafka_error_is_retriable(e)       ? T_RETRY
                                                           : T_ABORT;
    mh_log_write(t == T_FATAL ? MH_LOG_ERROR : MH_LOG_WARN, NULL, NULL, "kafka %s: %s", what,
                 rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return t;
}

static int abort_and_rewind(struct worker *w, const struct batch *b)
{
    if (emit_abort(w) < 0) return -1;
    rewind_batch(w, b);
    return 1;
}

/*
 * The offsets go first, the records after them. Right after a commit the coordinator is
 * still writing the previous transaction's markers, and both first requests of the next
 * one (AddOffsetsToTxn, AddPartitionsToTxn) are refused with CONCURRENT_TRANSACTIONS
 * until it is done. librdkafka retries AddPartitionsToTxn after a fixed 20 ms, but
 * AddOffsetsToTxn after retry.backoff.ms (the worker's producer sets 10 ms, emit_init):
 * with the offsets sent first, the wait ends at the first retry that finds the
 * coordinator done, and the partitions the records need are then added at once.
 */
int emit_produce(struct worker *w, struct batch *b, rd_kafka_topic_partition_list_t *offsets,
                 rd_kafka_consumer_group_metadata_t *gmd)
{
    enum triage t = triage(rd_kafka_begin_transaction(w->producer), "begin");
    if (t == T_FATAL) return -1;
    if (t != T_OK) return abort_and_rewind(w, b);
    t = triage(rd_kafka_send_offsets_to_transaction(w->producer, offsets, gmd, TXN_TIMEOUT_MS),
               "send offsets");
    if (t == T_FATAL) return -1;
    if (t != T_OK) return abort_and_rewind(w, b);

    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *r = &b->recs[i];
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (r->dlq_reason) {
            err = emit_dead_letter(w, r);
        } else if (r->events) {
            size_t j;
            json_t *ev;
            json_array_foreach(r->events, j, ev) {
                if (!r->emit || !r->emit[j]) continue;
                if ((err = emit_event(w, ev, &r->ev_text[j], r->ev_len[j]))) break;
            }
        }
        if (err) {
            mh_warn("kafka produce: %s", rd_kafka_err2str(err));
            if (rd_kafka_fatal_error(w->producer, NULL, 0)) return -1;
            return abort_and_rewind(w, b);
        }
    }

    size_t k;
    json_t *change;
    json_array_foreach(b->suppression_out, k, change) {
        const char *key = json_string_value(json_object_get(change, "key"));
        json_t *value = json_object_get(change, "value");
        char *val = json_is_object(value) ? json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER)
                                          : NULL; /* NULL: a tombstone */
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        if (val) hdr(h, "content-type", "application/json");
        rd_kafka_resp_err_t err = produce(w, w->cfg->worker.suppressions_topic, key ? key : "",
                                          key ? strlen(key) : 0, val, val ? strlen(val) : 0, h,
                                          RD_KAFKA_MSG_F_COPY);
        free(val);
        if (err) {
            mh_warn("kafka produce: %s", rd_kafka_err2str(err));
            if (rd_kafka_fatal_error(w->producer, NULL, 0)) return -1;
            return abort_and_rewind(w, b);
        }
    }
    return 0;
}

int emit_commit(struct worker *w)
{
    for (;;) {
        enum triage t = triage(rd_kafka_commit_transaction(w->producer, TXN_TIMEOUT_MS), "commit");
        if (t == T_OK) return 0;
        if (t == T_FATAL) return -1;
        if (t == T_ABORT || w->stop) return 1;
    }
}

int emit_abort(struct worker *w)
{
    w->stats.aborts++;
    for (int attempt = 0; attempt < 10; attempt++) {
        enum triage t = triage(rd_kafka_abort_transaction(w->producer, TXN_TIMEOUT_MS), "abort");
        if (t == T_OK) return 0;
        if (t == T_FATAL) return -1;
        sleep(1);
    }
    return 0;
}

void emit_count(struct worker *w, struct batch *b)
{
    uint64_t emitted = 0, dups = 0, dead = 0, dead_store = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *r = &b->recs[i];
        if (r->dlq_reason) {
            dead++;
            if (r->dlq_stage && !strcmp(r->dlq_stage, MH_DLQ_STAGE_STORE)) dead_store++;
        } else if (r->events) {
            for (size_t j = 0; j < json_array_size(r->events); j++) {
                if (r->emit && r->emit[j]) emitted++;
                else dups++;
            }
        }
    }
    w->stats.events_emitted += emitted;
    event_counts_add_batch(&w->stats.events, b);
    w->stats.duplicates += dups;
    w->stats.dead_letters += dead;
    w->stats.store_dead_letters += dead_store;
    w->stats.records += b->n;
    w->stats.batches++;
}

int emit_batch(struct worker *w, struct batch *b)
{
    rd_kafka_topic_partition_list_t *offs = emit_offsets(b);
    rd_kafka_consumer_group_metadata_t *gmd = rd_kafka_consumer_group_metadata(w->consumer);
    int rc = emit_produce(w, b, offs, gmd);
    rd_kafka_consumer_group_metadata_destroy(gmd);
    rd_kafka_topic_partition_list_destroy(offs);
    if (rc != 0) return rc;
    rc = emit_commit(w);
    if (rc < 0) return -1;
    if (rc == 1) return abort_and_rewind(w, b);
    emit_count(w, b);
    return 0;
}
