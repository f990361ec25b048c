/*
 * dlq.c — `mailhook dlq`: what reached the dead-letter topic and why.
 *
 * Reads [worker] dlq_topic (read_committed, no consumer group: nothing is committed)
 * over a range resolved like a replay's (replay_range.c), and prints one line per dead
 * letter, newest first: when it was dead-lettered (and, in JSON, when ingest received
 * it), which source and provider, the raw record it came from,
 * the reason and the request id. The headers come from the worker (emit.c): the raw
 * record's own mh-* headers plus mh-dlq-reason, mh-dlq-stage (parse, store) and
 * mh-raw-topic/-partition/-offset.
 * It ends with the `mailhook replay` range that re-runs exactly those raw records, for
 * after the provider or the source is fixed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/crypto.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"
#include "replay.h"
#include "table.h"

#define POLL_MS 500
#define READ_TIMEOUT_MS 30000

static const char usage[] =
    "usage: mailhook [--config FILE] dlq [--since TIME | --from-beginning |\n"
    "                --from-offsets P:O,...] [--until TIME|P:O,...] [--source NAME]\n"
    "                [--limit N] [--body] [--json]\n"
    "\n"
    "Lists the records on the dead-letter topic ([worker] dlq_topic), newest first: when,\n"
    "source, provider, the raw record (partition:offset of [worker] raw_topic), the reason\n"
    "it could not be parsed and the ingest's request id. Default range: --since 7d.\n"
    "Then prints the `mailhook replay` range that re-runs those raw records.\n"
    "\n"
    "  --source NAME   only these sources (repeatable, comma-separated)\n"
    "  --limit N       at most N, the newest (default 100)\n"
    "  --body          also print each body (JSON: \"body\", or \"body_base64\" when it is\n"
    "                  not UTF-8 text)\n"
    "  --json          one JSON object: {\"items\": [...], \"total\", \"replay\"}\n";

static const char *const columns[] = {"time", "source", "provider", "raw", "reason",
                                      "request_id", NULL};

static const char *header(const rd_kafka_message_t *m, const char *name, char *buf, size_t len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) || !h || rd_kafka_header_get_last(h, name, &v, &n) || !v)
        return NULL;
    if (n >= len) n = len - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v) json_object_set_new(o, key, json_string(v));
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

/* One dead letter as a row; NULL when --source leaves it out. */
static json_t *row_of(const rd_kafka_message_t *m, const struct replay_names *sources, int body)
{
    char src[256], prov[64], reason[1024], stage[32], rid[128], rtopic[256], rpart[32],
        roff[32], t[40], recv[64];
    const char *source = header(m, MH_HDR_SOURCE, src, sizeof(src));
    if (sources->n && !(source && replay_names_has(sources, source))) return NULL;
    json_t *o = json_object();
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    if (ts > 0) {
        mh_time_format(ts, t);
        json_object_set_new(o, "time", json_string(t));
        json_object_set_new(o, "ts_ms", json_integer(ts));
    }
    set_str(o, "source", source);
    set_str(o, "provider", header(m, MH_HDR_PROVIDER, prov, sizeof(prov)));
    set_str(o, "reason", header(m, MH_HDR_DLQ_REASON, reason, sizeof(reason)));
    set_str(o, "stage", header(m, MH_HDR_DLQ_STAGE, stage, sizeof(stage)));
    set_str(o, "request_id", header(m, MH_HDR_REQUEST_ID, rid, sizeof(rid)));
    set_str(o, "received_at", header(m, MH_HDR_RECEIVED_AT, recv, sizeof(recv)));
    const char *rt = header(m, MH_HDR_RAW_TOPIC, rtopic, sizeof(rtopic));
    const char *rp = header(m, MH_HDR_RAW_PARTITION, rpart, sizeof(rpart));
    const char *ro = header(m, MH_HDR_RAW_OFFSET, roff, sizeof(roff));
    set_str(o, "raw_topic", rt);
    if (rp && ro) {
        char raw[80];
        snprintf(raw, sizeof(raw), "%s:%s", rp, ro);
        json_object_set_new(o, "raw", json_string(raw));
        json_object_set_new(o, "raw_partition", json_integer(strtol(rp, NULL, 10)));
        json_object_set_new(o, "raw_offset", json_integer(strtoll(ro, NULL, 10)));
    }
    json_object_set_new(o, "dlq_partition", json_integer(m->partition));
    json_object_set_new(o, "dlq_offset", json_integer(m->offset));
    json_object_set_new(o, "body_bytes", json_integer((json_int_t)m->len));
    if (body) set_body(o, m);
    return o;
}

static int newest_first(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "ts_ms"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "ts_ms"));
    return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * The replay range of the raw records behind rows: per raw partition, from the smallest
 * offset to one past the largest, as "--from-offsets P:O,... --until P:O,...". NULL when
 * no row names its raw record.
 */
static char *replay_range_of(json_t *rows)
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
        size_t cap = 64 + json_object_size(lo) * 64, n;
        out = mh_malloc(cap);
        n = (size_t)snprintf(out, cap, "--from-offsets ");
        const char *key;
        json_t *v;
        int first = 1;
        json_object_foreach(lo, key, v) {
            n += (size_t)snprintf(out + n, cap - n, "%s%s:%lld", first ? "" : ",", key,
                                  (long long)json_integer_value(v));
            first = 0;
        }
        n += (size_t)snprintf(out + n, cap - n, " --until ");
        first = 1;
        json_object_foreach(hi, key, v) {
            n += (size_t)snprintf(out + n, cap - n, "%s%s:%lld", first ? "" : ",", key,
                                  (long long)json_integer_value(v));
            first = 0;
        }
    }
    json_decref(lo);
    json_decref(hi);
    return out;
}

static rd_kafka_t *consumer_new(const struct mh_config *cfg, char *err, size_t errlen)
{
    char max_bytes[32];
    snprintf(max_bytes, sizeof(max_bytes), "%ld", mh_config_max_record_bytes(cfg));
    const char *overrides[] = {
        "group.id", "mailhook-dlq-reader", /* required by librdkafka; never joined */
        "enable.auto.commit", "false",
        "isolation.level", "read_committed",
        "enable.partition.eof", "true",
        "fetch.message.max.bytes", max_bytes,
        NULL,
    };
    rd_kafka_conf_t *conf = mh_kafka_conf(cfg, overrides, err, errlen);
    if (!conf) return NULL;
    char rkerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka consumer: %s", rkerr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Reads every partition's [start, end) and appends the rows; 0, or -1 with err. */
static int read_range(rd_kafka_t *rk, struct replay_spec *s, const struct replay_names *sources,
                      int body, json_t *rows, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n_parts);
    size_t open = 0;
    for (size_t i = 0; i < s->n_parts; i++) {
        if (s->parts[i].start >= s->parts[i].end) continue;
        rd_kafka_topic_partition_list_add(l, s->raw_topic, s->parts[i].partition)->offset =
            s->parts[i].start;
        open++;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "assign %s: %s", s->raw_topic, rd_kafka_err2str(e));
        return -1;
    }
    int64_t deadline = mh_mono_ms() + READ_TIMEOUT_MS;
    while (open > 0) {
        if (mh_mono_ms() > deadline) {
            snprintf(err, errlen, "%s: no progress for %d s", s->raw_topic, READ_TIMEOUT_MS / 1000);
            return -1;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, POLL_MS);
        if (!m) continue;
        struct replay_part *pt = NULL;
        for (size_t i = 0; i < s->n_parts; i++)
            if (s->parts[i].partition == m->partition) pt = &s->parts[i];
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            snprintf(err, errlen, "%s: %s", s->raw_topic, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            return -1;
        }
        deadline = mh_mono_ms() + READ_TIMEOUT_MS;
        int eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
        if (pt && !pt->paused && !eof && m->offset < pt->end) {
            json_t *row = row_of(m, sources, body);
            if (row) json_array_append_new(rows, row);
        }
        /* The end, or the last stable offset below it (a control record can sit at
         * end - 1, so EOF is what ends such a partition). */
        if (pt && !pt->paused && (eof || m->offset + 1 >= pt->end)) {
            pt->paused = 1;
            open--;
        }
        rd_kafka_message_destroy(m);
    }
    return 0;
}

int cmd_dlq(struct mh_config *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"since", required_argument, NULL, 's'},
        {"from-beginning", no_argument, NULL, 'B'},
        {"from-offsets", required_argument, NULL, 'O'},
        {"until", required_argument, NULL, 'u'},
        {"source", required_argument, NULL, 'S'},
        {"limit", required_argument, NULL, 'n'},
        {"body", no_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *since = NULL, *from_offsets = NULL, *until = NULL;
    int from_beginning = 0, body = 0, json = 0, c;
    long limit = 100;
    struct replay_spec spec = {0};
    struct replay_names sources = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:BO:u:S:n:bjh", longopts, NULL)) != -1) {
        switch (c) {
        case 's': since = optarg; break;
        case 'B': from_beginning = 1; break;
        case 'O': from_offsets = optarg; break;
        case 'u': until = optarg; break;
        case 'S': replay_names_add(&sources, optarg); break;
        case 'b': body = 1; break;
        case 'j': json = 1; break;
        case 'n': {
            char *end;
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 1 || limit > 1000000) {
                fprintf(stderr, "mailhook dlq: --limit: 1..1000000\n");
                replay_names_free(&sources);
                return 2;
            }
            break;
        }
        case 'h': fputs(usage, stdout); replay_names_free(&sources); return 0;
        default: fputs(usage, stderr); replay_names_free(&sources); return 2;
        }
    }
    if (!cfg || optind != argc || (!!since + from_beginning + !!from_offsets) > 1) {
        fputs(usage, stderr);
        replay_names_free(&sources);
        return 2;
    }
    if (!since && !from_beginning && !from_offsets) since = "7d";

    char err[1024];
    int rc = 1;
    json_t *rows = json_array();
    char *range = NULL;
    rd_kafka_t *rk = consumer_new(cfg, err, sizeof(err));
    if (!rk) goto fail;
    spec.raw_topic = mh_strdup(cfg->worker.dlq_topic); /* the range functions' topic */
    if (replay_range_resolve(rk, &spec, from_offsets, since, from_beginning, until, err,
                             sizeof(err)) < 0 ||
        read_range(rk, &spec, &sources, body, rows, err, sizeof(err)) < 0)
        goto fail;

    size_t total = json_array_size(rows);
    json_t **v = mh_calloc(total ? total : 1, sizeof(*v));
    for (size_t i = 0; i < total; i++) v[i] = json_incref(json_array_get(rows, i));
    qsort(v, total, sizeof(*v), newest_first);
    json_t *shown = json_array();
    for (size_t i = 0; i < total; i++) {
        if ((long)i < limit) json_array_append(shown, v[i]);
        json_decref(v[i]);
    }
    free(v);
    range = replay_range_of(shown);
    if (json) {
        json_t *out = json_pack("{sOsIss?}", "items", shown, "total", (json_int_t)total,
                                "replay", range);
        char *txt = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) puts(txt);
        free(txt);
        json_decref(out);
    } else {
        cli_print_table(stdout, shown, columns);
        if (body) {
            size_t i;
            json_t *row;
            json_array_foreach(shown, i, row) {
                const char *b = json_string_value(json_object_get(row, "body"));
                const char *b64 = json_string_value(json_object_get(row, "body_base64"));
                printf("\n--- %s (%s)\n%s\n", json_string_value(json_object_get(row, "raw")),
                       b ? "body" : "body, base64", b ? b : b64 ? b64 : "");
            }
        }
        if (total > (size_t)limit)
            fprintf(stderr, "%zu dead letters in the range; the newest %ld shown (--limit)\n",
                    total, limit);
        if (range)
            fprintf(stderr, "re-run these raw records once fixed: mailhook replay %s "
                            "--to-topic TOPIC (see docs/replay.md)\n", range);
    }
    json_decref(shown);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "mailhook dlq: %s\n", err);
out:
    free(range);
    json_decref(rows);
    replay_spec_free(&spec);
    replay_names_free(&sources);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}
