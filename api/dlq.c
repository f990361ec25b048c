/*
 * dlq.c — GET /v1/dlq?limit=&source=&tenant=&before=: the dead letters of [worker]
 * dlq_topic, newest first, read with store/dlq.c (the code of `mailhook dlq`).
 *
 * No consumer group: each request assigns the partitions and reads them backwards in
 * windows that double in size, from the cursor's offsets (or each partition's end) down,
 * until every partition has `limit` matching dead letters or none left. The rows are
 * merged newest first; the cursor says where each partition goes on. The work is
 * bounded: limit <= 500 and a time budget (a page cut short says "partial": true and its
 * cursor goes on from where the reading stopped). It runs on a pool thread, so the loop
 * never waits for Kafka.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "dlq_cursor.h"
#include "endpoint.h"
#include "mailhook/api_tokens.h"
#include "mailhook/log.h"
#include "mailhook/timeutil.h"

#define DLQ_MAX_LIMIT 500
#define DLQ_DEFAULT_LIMIT 50
#define DLQ_BUDGET_MS 5000
#define DLQ_IDLE_MS 5000
#define DLQ_FIRST_WINDOW 64
#define DLQ_MAX_WINDOW 8192

struct dlq_call {
    struct api_job job; /* first: the pool hands it back */
    struct api_server *s;
    struct evhttp_request *req;
    const struct mh_config *cfg;
    long limit;
    char *source, *tenant;
    struct dlq_cursor cursor;
    int has_cursor;
    json_t *out; /* reply body; NULL: err */
    char err[1024];
};

/* Per partition: how far down it has been read, what was found and shown. */
struct part_state {
    int32_t partition;
    int64_t low, top; /* [top, end) has been read; low: nothing below */
    int64_t end;      /* where this request started reading it */
    int64_t window;   /* the next window's size */
    long found;       /* rows kept */
    int shown, unshown;
    int64_t oldest_shown;
};

struct keep_ctx {
    const struct dlq_call *c;
    struct part_state *ps;
    size_t n;
};

static int keep(const json_t *row, void *arg)
{
    struct keep_ctx *k = arg;
    const char *src = json_string_value(json_object_get(row, "source"));
    const char *ten = json_string_value(json_object_get(row, "tenant"));
    if (k->c->source && (!src || strcmp(src, k->c->source))) return 0;
    if (k->c->tenant && (!ten || strcmp(ten, k->c->tenant))) return 0;
    int32_t p = (int32_t)json_integer_value(json_object_get(row, "dlq_partition"));
    for (size_t i = 0; i < k->n; i++)
        if (k->ps[i].partition == p) k->ps[i].found++;
    return 1;
}

static void put_str(json_t *o, const char *key, const json_t *row, const char *from)
{
    json_t *v = json_object_get(row, from);
    json_object_set_new(o, key, v ? json_incref(v) : json_null());
}

/* A row of store/dlq.c in the API's shape. */
static json_t *item_of(const json_t *row)
{
    json_t *o = json_object();
    static const char *const keys[] = {"source", "provider", "tenant", "reason",
                                       "stage", "request_id", "received_at", NULL};
    for (const char *const *k = keys; *k; k++) put_str(o, *k, row, *k);
    json_t *raw = json_object();
    put_str(raw, "topic", row, "raw_topic");
    put_str(raw, "partition", row, "raw_partition");
    put_str(raw, "offset", row, "raw_offset");
    json_object_set_new(o, "raw", raw);
    json_t *d = json_object();
    put_str(d, "partition", row, "dlq_partition");
    put_str(d, "offset", row, "dlq_offset");
    put_str(d, "timestamp", row, "time");
    put_str(d, "timestamp_ms", row, "ts_ms");
    json_object_set_new(o, "dlq", d);
    put_str(o, "body_bytes", row, "body_bytes");
    return o;
}

/* Out of time: the rows of windows read only in part go (the cursor then says to read
 * those windows again), so a page never skips what lies above them. */
static void drop_unfinished(json_t *rows, const struct dlq_window *w, size_t n)
{
    for (size_t i = json_array_size(rows); i-- > 0;) {
        json_t *row = json_array_get(rows, i);
        int32_t p = (int32_t)json_integer_value(json_object_get(row, "dlq_partition"));
        int64_t off = json_integer_value(json_object_get(row, "dlq_offset"));
        for (size_t j = 0; j < n; j++)
            if (w[j].partition == p && !w[j].done && off >= w[j].start && off < w[j].end) {
                json_array_remove(rows, i);
                break;
            }
    }
}

/* Reads backwards until each partition has c->limit rows or none left; 1 when the
 * budget ran out first, 0 when done, -1 with c->err. */
static int read_back(struct dlq_call *c, rd_kafka_t *rk, struct part_state *ps, size_t n,
                     json_t *rows)
{
    int64_t deadline = mh_mono_ms() + DLQ_BUDGET_MS;
    struct dlq_window *w = mh_calloc(n ? n : 1, sizeof(*w));
    struct keep_ctx k = {c, ps, n};
    int rc = 0;
    for (;;) {
        size_t open = 0;
        for (size_t i = 0; i < n; i++) {
            w[i] = (struct dlq_window){ps[i].partition, ps[i].top, ps[i].top, 1};
            if (ps[i].top <= ps[i].low || ps[i].found >= c->limit) continue;
            w[i].start = ps[i].top - ps[i].window > ps[i].low ? ps[i].top - ps[i].window
                                                              : ps[i].low;
            w[i].done = 0;
            open++;
        }
        if (!open) break;
        rc = dlq_read_windows(rk, c->cfg->worker.dlq_topic, w, n, 0, keep, &k, rows, DLQ_IDLE_MS,
                              deadline, c->err, sizeof(c->err));
        if (rc < 0) break;
        for (size_t i = 0; i < n; i++) {
            if (!w[i].done || w[i].start == w[i].end) continue;
            ps[i].top = w[i].start;
            if (ps[i].window < DLQ_MAX_WINDOW) ps[i].window *= 2;
        }
        if (rc == 1) {
            drop_unfinished(rows, w, n);
            break;
        }
    }
    free(w);
    return rc;
}

static void dlq_run(struct api_job *job, struct supp_store *st)
{
    (void)st;
    struct dlq_call *c = (struct dlq_call *)job;
    const char *topic = c->cfg->worker.dlq_topic;
    size_t n = 0;
    struct dlq_window *parts = NULL;
    struct part_state *ps = NULL;
    json_t *rows = json_array();
    rd_kafka_t *rk = dlq_reader_new(c->cfg, c->err, sizeof(c->err));
    if (!rk || !(parts = dlq_partitions(rk, topic, &n, 5000, c->err, sizeof(c->err)))) goto out;
    ps = mh_calloc(n ? n : 1, sizeof(*ps));
    for (size_t i = 0; i < n; i++) {
        int64_t end = parts[i].end;
        if (c->has_cursor) {
            int64_t b = dlq_cursor_before(&c->cursor, parts[i].partition);
            end = b < 0 ? parts[i].start : b < end ? b : end;
        }
        ps[i] = (struct part_state){.partition = parts[i].partition, .low = parts[i].start,
                                    .top = end, .end = end, .window = DLQ_FIRST_WINDOW};
    }
    int rc = read_back(c, rk, ps, n, rows);
    if (rc < 0) goto out;
    dlq_sort_newest_first(rows);

    /* The page: the newest `limit`. A partition goes on below its oldest row shown when
     * some of its rows were not shown, from where it started when none was, else below
     * what was read of it. */
    json_t *items = json_array();
    size_t total = json_array_size(rows);
    for (size_t i = 0; i < total; i++) {
        json_t *row = json_array_get(rows, i);
        int32_t p = (int32_t)json_integer_value(json_object_get(row, "dlq_partition"));
        int64_t off = json_integer_value(json_object_get(row, "dlq_offset"));
        for (size_t j = 0; j < n; j++) {
            if (ps[j].partition != p) continue;
            if ((long)i >= c->limit) {
                ps[j].unshown = 1;
            } else if (!ps[j].shown || off < ps[j].oldest_shown) {
                ps[j].shown = 1;
                ps[j].oldest_shown = off;
            }
        }
        if ((long)i < c->limit) json_array_append_new(items, item_of(row));
    }
    size_t cap = n * 48 + 1, len = 0;
    char *cur = mh_malloc(cap);
    cur[0] = '\0';
    for (size_t j = 0; j < n; j++) {
        int64_t next = !ps[j].unshown ? ps[j].top : ps[j].shown ? ps[j].oldest_shown : ps[j].end;
        if (next <= ps[j].low) continue;
        len += (size_t)snprintf(cur + len, cap - len, "%s%d:%lld", len ? "," : "",
                                (int)ps[j].partition, (long long)next);
    }
    c->out = json_pack("{so}", "items", items);
    json_object_set_new(c->out, "next_cursor", len ? json_string(cur) : json_null());
    if (rc == 1) json_object_set_new(c->out, "partial", json_true());
    free(cur);
out:
    json_decref(rows);
    free(parts);
    free(ps);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
}

static void dlq_done(struct api_job *job)
{
    struct dlq_call *c = (struct dlq_call *)job;
    if (c->out) api_reply(c->s, c->req, 200, c->out);
    else api_reply_unavailable(c->s, c->req, c->err);
    free(c->source);
    free(c->tenant);
    free(c);
}

void api_dlq_list(struct api_server *s, struct evhttp_request *req, const struct mh_api_token *tok)
{
    static const char *const allowed[] = {"limit", "source", "tenant", "before", NULL};
    struct api_query p = {0};
    long limit;
    char msg[128];
    if (api_params(s, req, &p, allowed) < 0) goto out;
    if (api_parse_limit(api_query_get(&p, "limit"), DLQ_DEFAULT_LIMIT, DLQ_MAX_LIMIT, &limit) < 0) {
        snprintf(msg, sizeof(msg), "limit: a whole number from 1 to %d", DLQ_MAX_LIMIT);
        api_reply_error(s, req, 400, msg);
        goto out;
    }
    const char *tenant = api_query_get(&p, "tenant");
    if (api_may_act_for(s, req, tok, tenant) < 0) goto out;
    struct dlq_call *c = mh_calloc(1, sizeof(*c));
    const char *before = api_query_get(&p, "before");
    if (before && dlq_cursor_parse(before, &c->cursor) < 0) {
        free(c);
        api_reply_error(s, req, 400, "before: not a cursor this API returned (next_cursor)");
        goto out;
    }
    c->has_cursor = before != NULL;
    c->job.run = dlq_run;
    c->job.done = dlq_done;
    c->s = s;
    c->req = req;
    c->cfg = api_server_cfg(s);
    c->limit = limit;
    c->source = api_query_get(&p, "source") ? mh_strdup(api_query_get(&p, "source")) : NULL;
    c->tenant = tenant ? mh_strdup(tenant) : NULL;
    if (api_pool_submit(api_server_pool(s), &c->job) < 0) {
        free(c->source);
        free(c->tenant);
        free(c);
        api_reply_unavailable(s, req, "too many requests waiting");
    }
out:
    api_query_clear(&p);
}
