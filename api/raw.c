/*
 * raw.c — GET /v1/raw/{partition}/{offset}[?topic=]: one record of the raw topic
 * ([worker] raw_topic), the webhook an event came from (its "raw" coordinates), with
 * the ingest's headers that are safe to show.
 *
 * Read like the dead letters (dlq.c): a consumer that joins no group and commits
 * nothing (read_committed) assigns the one partition at the offset, on a pool thread,
 * within RAW_BUDGET_MS. Only the headers ingest writes about the request
 * (record_headers.h) and its Content-Type are answered: the request headers copied for
 * the worker (each provider's forward_headers) carry its signature, which is not shown.
 * Whether the token may read the record depends on the record's own tenant header, so
 * the check waits for the record.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "raw_ref.h"
#include "mailhook/api_tokens.h"
#include "mailhook/crypto.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"

#define RAW_BUDGET_MS 5000
#define RAW_POLL_MS 100
/* The most body bytes answered; a longer body is cut and the reply says "truncated". */
#define RAW_BODY_MAX (4L << 20)

struct raw_call {
    struct api_job job; /* first: the pool hands it back */
    struct api_server *s;
    struct evhttp_request *req;
    const struct mh_config *cfg;
    const struct mh_api_token *tok; /* the config's, alive as long as the process */
    struct api_raw_ref ref;
    int code;      /* 200 or 404 with out; 0: Kafka failed (err) */
    json_t *out;
    char *tenant;  /* the record's mh-tenant header; NULL when it has none */
    char err[1024];
};

static void set_header(json_t *o, const char *key, const rd_kafka_message_t *m, const char *name)
{
    char buf[1024];
    const char *v = mh_kafka_header_cut(m, name, buf, sizeof(buf));
    json_t *s = v ? json_string(v) : NULL; /* a value that is not UTF-8 is left out */
    json_object_set_new(o, key, s ? s : json_null());
}

/* The body as text when it is UTF-8, else as base64; at most RAW_BODY_MAX bytes. */
static void set_body(json_t *o, const rd_kafka_message_t *m)
{
    size_t len = m->len > (size_t)RAW_BODY_MAX ? (size_t)RAW_BODY_MAX : m->len;
    json_object_set_new(o, "body_bytes", json_integer((json_int_t)m->len));
    json_object_set_new(o, "truncated", json_boolean(len < m->len));
    json_t *s = json_stringn(m->payload ? (const char *)m->payload : "", len);
    if (s) {
        json_object_set_new(o, "body", s);
        return;
    }
    char *b64 = mh_malloc(len / 3 * 4 + 8);
    b64[mh_b64_encode((const unsigned char *)m->payload, len, b64)] = '\0';
    json_object_set_new(o, "body_base64", json_string(b64));
    free(b64);
}

static json_t *record_of(const char *topic, const rd_kafka_message_t *m)
{
    json_t *o = json_pack("{sssisI}", "topic", topic, "partition", (int)m->partition, "offset",
                          (json_int_t)m->offset);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    if (ts > 0) {
        char t[MH_TIME_BUFSZ];
        mh_time_format(ts, t);
        json_object_set_new(o, "timestamp", json_string(t));
    } else {
        json_object_set_new(o, "timestamp", json_null());
    }
    set_header(o, "source", m, MH_HDR_SOURCE);
    set_header(o, "provider", m, MH_HDR_PROVIDER);
    set_header(o, "tenant", m, MH_HDR_TENANT);
    set_header(o, "request_id", m, MH_HDR_REQUEST_ID);
    set_header(o, "received_at", m, MH_HDR_RECEIVED_AT);
    set_header(o, "content_type", m, "content-type");
    set_body(o, m);
    return o;
}

static void not_found(struct raw_call *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void not_found(struct raw_call *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->code = 404;
    c->out = json_pack("{ss}", "error", msg);
}

/* 1 when topic has the partition, 0 when not, -1 with c->err when Kafka did not say. */
static int has_partition(struct raw_call *c, rd_kafka_t *rk, const char *topic, int64_t deadline)
{
    const struct rd_kafka_metadata *md;
    int left = (int)(deadline - mh_mono_ms());
    rd_kafka_resp_err_t e = mh_kafka_topic_metadata(rk, topic, left > 0 ? left : 1, &md);
    if (e) {
        snprintf(c->err, sizeof(c->err), "%s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    int found = 0;
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        if (md->topics[0].partitions[i].id == c->ref.partition) found = 1;
    rd_kafka_metadata_destroy(md);
    return found;
}

/* Polls the assigned partition until the record at the offset (or what stands there). */
static void read_record(struct raw_call *c, rd_kafka_t *rk, const char *topic, int64_t deadline)
{
    while (mh_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, RAW_POLL_MS);
        if (!m) continue;
        int eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
        if (m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
            /* Deleted between the watermark query and the fetch. */
            not_found(c, "%s [%d] offset %lld: gone from the topic (retention)", topic,
                      (int)c->ref.partition, (long long)c->ref.offset);
        } else if (m->err && !eof) {
            snprintf(c->err, sizeof(c->err), "%s [%d]: %s", topic, (int)c->ref.partition,
                     rd_kafka_message_errstr(m));
        } else if (!eof && m->offset == c->ref.offset) {
            c->code = 200;
            c->out = record_of(topic, m);
            const char *ten = json_string_value(json_object_get(c->out, "tenant"));
            c->tenant = ten ? mh_strdup(ten) : NULL;
        } else {
            /* The offset holds no record a read_committed reader gets: a transaction's
             * commit marker or an aborted write (the next record, or the end, came first). */
            not_found(c, "%s [%d] offset %lld: no record there (a transaction marker or an "
                      "aborted write)", topic, (int)c->ref.partition, (long long)c->ref.offset);
        }
        rd_kafka_message_destroy(m);
        return;
    }
    snprintf(c->err, sizeof(c->err), "%s [%d] offset %lld: not read within %d s", topic,
             (int)c->ref.partition, (long long)c->ref.offset, RAW_BUDGET_MS / 1000);
}

static void raw_run(struct api_job *job, struct supp_store *st)
{
    (void)st;
    struct raw_call *c = (struct raw_call *)job;
    const char *topic = c->cfg->worker.raw_topic;
    int64_t deadline = mh_mono_ms() + RAW_BUDGET_MS;
    rd_kafka_t *rk = mh_kafka_reader_new(c->cfg, "mailhook-raw-reader", c->err, sizeof(c->err));
    if (!rk) return;
    int has = has_partition(c, rk, topic, deadline);
    if (has <= 0) {
        if (has == 0)
            not_found(c, "%s has no partition %d", topic, (int)c->ref.partition);
        goto out;
    }
    int64_t low, high;
    int left = (int)(deadline - mh_mono_ms());
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, c->ref.partition, &low,
                                                             &high, left > 0 ? left : 1);
    if (e) {
        snprintf(c->err, sizeof(c->err), "%s [%d]: watermarks: %s", topic, (int)c->ref.partition,
                 rd_kafka_err2str(e));
        goto out;
    }
    if (c->ref.offset < low) {
        not_found(c, "%s [%d] offset %lld: gone from the topic (retention; its oldest record "
                  "is at %lld)", topic, (int)c->ref.partition, (long long)c->ref.offset,
                  (long long)low);
        goto out;
    }
    if (c->ref.offset >= high) {
        not_found(c, "%s [%d] offset %lld: no such record yet (the partition ends at %lld)",
                  topic, (int)c->ref.partition, (long long)c->ref.offset, (long long)high);
        goto out;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, c->ref.partition)->offset = c->ref.offset;
    e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(c->err, sizeof(c->err), "assign %s: %s", topic, rd_kafka_err2str(e));
        goto out;
    }
    read_record(c, rk, topic, deadline);
    rd_kafka_assign(rk, NULL);
out:
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void raw_done(struct api_job *job)
{
    struct raw_call *c = (struct raw_call *)job;
    if (!c->code) {
        api_reply_unavailable(c->s, c->req, c->err);
    } else if (c->code == 200 && !mh_api_token_allows(c->tok, c->tenant)) {
        /* The record's tenant is not named: it is not the caller's to know. */
        api_count_forbidden(c->s);
        api_reply_error(c->s, c->req, 403, "this token may not read this record (it belongs "
                                           "to a tenant the token does not act for)");
    } else {
        api_reply(c->s, c->req, c->code, c->out);
        c->out = NULL;
    }
    json_decref(c->out);
    free(c->tenant);
    free(c);
}

void api_raw_get(struct api_server *s, struct evhttp_request *req, const struct mh_api_token *tok,
                 const char *tail)
{
    static const char *const allowed[] = {"topic", NULL};
    const struct mh_config *cfg = api_server_cfg(s);
    struct api_query p = {0};
    struct api_raw_ref ref;
    char msg[512];
    if (api_params(s, req, &p, allowed) < 0) goto out;
    if (api_raw_ref_parse(tail, &ref, msg, sizeof(msg)) < 0) {
        api_reply_error(s, req, 400, msg);
        goto out;
    }
    const char *topic = api_query_get(&p, "topic");
    if (topic && strcmp(topic, cfg->worker.raw_topic)) {
        snprintf(msg, sizeof(msg), "topic: only the raw topic (%s) is served",
                 cfg->worker.raw_topic);
        api_reply_error(s, req, 400, msg);
        goto out;
    }
    struct raw_call *c = mh_calloc(1, sizeof(*c));
    c->job.run = raw_run;
    c->job.done = raw_done;
    c->s = s;
    c->req = req;
    c->cfg = cfg;
    c->tok = tok;
    c->ref = ref;
    if (api_pool_submit(api_server_pool(s), &c->job) < 0) {
        free(c);
        api_reply_unavailable(s, req, "too many requests waiting");
    }
out:
    api_query_clear(&p);
}
