/*
 * dlq.c — reading the dead-letter topic: the reader, a dead letter as a row, windows
 * of partitions and the replay range behind rows. See dlq.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "mailhook/crypto.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"

#define POLL_MS 200

rd_kafka_t *dlq_reader_new(const struct mh_config *cfg, char *err, size_t errlen)
{
    return mh_kafka_reader_new(cfg, "mailhook-dlq-reader", err, errlen);
}

/* Header values are producer bytes: a value that is not UTF-8 is left out. */
static void set_str(json_t *o, const char *key, const char *v)
{
    if (v) {
        json_t *s = json_string(v);
        if (s) json_object_set_new(o, key, s);
    }
}

/* A body as text when it is UTF-8, else as base64. */
static void set_body(json_t *o, const rd_kafka_message_t *m)
{
    json_t *s = json_stringn((const char *)m->payload, m->len);
    if (s) {
        json_object_set_new(o, "body", s);
        return;
    }
    char *b64 = mh_malloc(m->len / 3 * 4 + 8);
    b64[mh_b64_encode((const unsigned char *)m->payload, m->len, b64)] = '\0';
    json_object_set_new(o, "body_base64", json_string(b64));
    free(b64);
}

json_t *dlq_row(const rd_kafka_message_t *m, int body)
{
    char src[256], prov[64], tenant[256], reason[1024], stage[32], rid[128], rtopic[256],
        rpart[32], roff[32], t[40], recv[64];
    json_t *o = json_object();
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    if (ts > 0) {
        mh_time_format(ts, t);
        json_object_set_new(o, "time", json_string(t));
        json_object_set_new(o, "ts_ms", json_integer(ts));
    }
    set_str(o, "source", mh_kafka_header_cut(m, MH_HDR_SOURCE, src, sizeof(src)));
    set_str(o, "provider", mh_kafka_header_cut(m, MH_HDR_PROVIDER, prov, sizeof(prov)));
    set_str(o, "tenant", mh_kafka_header_cut(m, MH_HDR_TENANT, tenant, sizeof(tenant)));
    set_str(o, "reason", mh_kafka_header_cut(m, MH_HDR_DLQ_REASON, reason, sizeof(reason)));
    set_str(o, "stage", mh_kafka_header_cut(m, MH_HDR_DLQ_STAGE, stage, sizeof(stage)));
    set_str(o, "request_id", mh_kafka_header_cut(m, MH_HDR_REQUEST_ID, rid, sizeof(rid)));
    set_str(o, "received_at", mh_kafka_header_cut(m, MH_HDR_RECEIVED_AT, recv, sizeof(recv)));
    set_str(o, "raw_topic", mh_kafka_header_cut(m, MH_HDR_RAW_TOPIC, rtopic, sizeof(rtopic)));
    const char *rp = mh_kafka_header_cut(m, MH_HDR_RAW_PARTITION, rpart, sizeof(rpart));
    const char *ro = mh_kafka_header_cut(m, MH_HDR_RAW_OFFSET, roff, sizeof(roff));
    if (rp && ro) {
        char raw[80];
        long long p = strtoll(rp, NULL, 10), off = strtoll(ro, NULL, 10);
        snprintf(raw, sizeof(raw), "%lld:%lld", p, off);
        json_object_set_new(o, "raw", json_string(raw));
        json_object_set_new(o, "raw_partition", json_integer(p));
        json_object_set_new(o, "raw_offset", json_integer(off));
    }
    json_object_set_new(o, "dlq_partition", json_integer(m->partition));
    json_object_set_new(o, "dlq_offset", json_integer(m->offset));
    json_object_set_new(o, "body_bytes", json_integer((json_int_t)m->len));
    if (body) set_body(o, m);
    return o;
}

static struct dlq_window *window_of(struct dlq_window *w, size_t n, int32_t partition)
{
    for (size_t i = 0; i < n; i++)
        if (w[i].partition == partition) return &w[i];
    return NULL;
}

int dlq_read_windows(rd_kafka_t *rk, const char *topic, struct dlq_window *w, size_t n, int body,
                     dlq_keep_fn keep, void *ctx, json_t *rows, int idle_ms, int64_t deadline_ms,
                     char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
    size_t open = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i].done || w[i].start >= w[i].end) {
            w[i].done = 1;
            continue;
        }
        rd_kafka_topic_partition_list_add(l, topic, w[i].partition)->offset = w[i].start;
        open++;
    }
    if (!open) {
        rd_kafka_topic_partition_list_destroy(l);
        return 0;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "assign %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    int rc = 0;
    int64_t idle_until = mh_mono_ms() + idle_ms;
    while (open > 0) {
        int64_t now = mh_mono_ms();
        if (deadline_ms > 0 && now > deadline_ms) {
            rc = 1;
            break;
        }
        if (now > idle_until) {
            snprintf(err, errlen, "%s: no progress for %d s", topic, idle_ms / 1000);
            rc = -1;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, POLL_MS);
        if (!m) continue;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            snprintf(err, errlen, "%s: %s", topic, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            rc = -1;
            break;
        }
        idle_until = mh_mono_ms() + idle_ms;
        struct dlq_window *pt = window_of(w, n, m->partition);
        int eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
        if (pt && !pt->done && !eof && m->offset >= pt->start && m->offset < pt->end) {
            json_t *row = dlq_row(m, body);
            if (!keep || keep(row, ctx)) json_array_append(rows, row);
            json_decref(row);
        }
        /* The end, or the last stable offset below it (a control record can sit at
         * end - 1, so EOF is what ends such a partition). */
        if (pt && !pt->done && (eof || m->offset + 1 >= pt->end)) {
            pt->done = 1;
            open--;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    return rc;
}

struct dlq_window *dlq_partitions(rd_kafka_t *rk, const char *topic, size_t *n, int timeout_ms,
                                  char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = mh_kafka_topic_metadata(rk, topic, timeout_ms, &md);
    if (e) {
        snprintf(err, errlen, "%s: %s", topic, rd_kafka_err2str(e));
        return NULL;
    }
    size_t cnt = (size_t)md->topics[0].partition_cnt;
    struct dlq_window *w = mh_calloc(cnt ? cnt : 1, sizeof(*w));
    for (size_t i = 0; i < cnt; i++) {
        w[i].partition = md->topics[0].partitions[i].id;
        e = rd_kafka_query_watermark_offsets(rk, topic, w[i].partition, &w[i].start, &w[i].end,
                                             timeout_ms);
        if (e) {
            snprintf(err, errlen, "%s [%d]: watermarks: %s", topic, (int)w[i].partition,
                     rd_kafka_err2str(e));
            rd_kafka_metadata_destroy(md);
            free(w);
            return NULL;
        }
    }
    rd_kafka_metadata_destroy(md);
    *n = cnt;
    return w;
}

static json_int_t int_of(const json_t *row, const char *key)
{
    return json_integer_value(json_object_get(row, key));
}

static int newest_first(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    static const char *const keys[] = {"ts_ms", "dlq_partition", "dlq_offset"};
    for (size_t i = 0; i < 3; i++) {
        json_int_t u = int_of(x, keys[i]), v = int_of(y, keys[i]);
        if (u != v) return u < v ? 1 : -1;
    }
    return 0;
}

void dlq_sort_newest_first(json_t *rows)
{
    size_t total = json_array_size(rows);
    if (total < 2) return;
    json_t **v = mh_calloc(total, sizeof(*v));
    for (size_t i = 0; i < total; i++) v[i] = json_incref(json_array_get(rows, i));
    qsort(v, total, sizeof(*v), newest_first);
    json_array_clear(rows);
    for (size_t i = 0; i < total; i++) json_array_append_new(rows, v[i]);
    free(v);
}

static void append_map(char **out, size_t *cap, size_t *n, json_t *map)
{
    const char *key;
    json_t *v;
    int first = 1;
    json_object_foreach(map, key, v) {
        *n += (size_t)snprintf(*out + *n, *cap - *n, "%s%s:%lld", first ? "" : ",", key,
                               (long long)json_integer_value(v));
        first = 0;
    }
}

char *dlq_replay_range(json_t *rows)
{
    json_t *lo = json_object(), *hi = json_object(), *row;
    size_t i;
    json_array_foreach(rows, i, row) {
        json_t *p = json_object_get(row, "raw_partition"), *off = json_object_get(row, "raw_offset");
        if (!p || !off) continue;
        char key[24];
        snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(p));
        json_int_t o = json_integer_value(off);
        json_t *l = json_object_get(lo, key), *h = json_object_get(hi, key);
        if (!l || o < json_integer_value(l)) json_object_set_new(lo, key, json_integer(o));
        if (!h || o + 1 > json_integer_value(h)) json_object_set_new(hi, key, json_integer(o + 1));
    }
    char *out = NULL;
    if (json_object_size(lo)) {
        size_t cap = 64 + json_object_size(lo) * 96, n;
        out = mh_malloc(cap);
        n = (size_t)snprintf(out, cap, "--from-offsets ");
        append_map(&out, &cap, &n, lo);
        n += (size_t)snprintf(out + n, cap - n, " --until ");
        append_map(&out, &cap, &n, hi);
    }
    json_decref(lo);
    json_decref(hi);
    return out;
}
