/*
 * quarantine.c — `mailhook quarantine`: the requests ingest refused for a signature
 * mismatch and kept (sources with quarantine = true; docs/quarantine.md).
 *
 *   list      what is on [ingest] quarantine_topic: when, source, why, the request id
 *   reverify  checks them again with the sources' current secrets (quarantine_reverify.c)
 *
 * list reads read_committed without joining a consumer group and commits nothing. It
 * never prints a request header's value: those may hold credentials.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/quarantine.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"
#include "quarantine.h"
#include "table.h"

#define POLL_MS 500
#define READ_TIMEOUT_MS 30000

const char quarantine_usage[] =
    "usage: mailhook [--config FILE] quarantine list [--source NAME] [--since TIME |\n"
    "                --from-beginning] [--limit N] [--json]\n"
    "       mailhook [--config FILE] quarantine reverify [--source NAME] [--dry-run]\n"
    "                [--from-beginning] [--group ID] [--json]\n"
    "\n"
    "Requests that ingest refused for a signature mismatch are kept on [ingest]\n"
    "quarantine_topic for sources with quarantine = true (docs/quarantine.md).\n"
    "\n"
    "list      the kept requests, newest first: received, source, provider, request id,\n"
    "          why verify refused them, size and position. Default range: --since 7d.\n"
    "reverify  checks each kept request again with the source's current secrets (the\n"
    "          timestamp judged against when ingest received it) and publishes those\n"
    "          that verify to [ingest] raw_topic as ingest would have. It continues\n"
    "          after what the previous run finished (consumer group --group, default\n"
    "          mailhook-quarantine-reverify), from the first request still failing.\n"
    "\n"
    "  --source NAME     only these sources (repeatable, comma-separated)\n"
    "  --since TIME      list: from this time (RFC 3339, or 30m, 2h, 7d)\n"
    "  --from-beginning  the whole topic (reverify: ignore the previous runs)\n"
    "  --limit N         list: at most N, the newest (default 100)\n"
    "  --dry-run         reverify: check and count, publish and remember nothing\n"
    "  --json            one JSON object\n";

static const char *const columns[] = {"received_at", "source", "provider", "request_id",
                                      "reason", "record", NULL};

int quarantine_read(rd_kafka_t *rk, struct replay_spec *s, quarantine_record_fn fn, void *arg,
                    char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n_parts);
    size_t open = 0;
    for (size_t i = 0; i < s->n_parts; i++) {
        if (s->parts[i].start >= s->parts[i].end) {
            s->parts[i].paused = 1;
            continue;
        }
        rd_kafka_topic_partition_list_add(l, s->raw_topic, s->parts[i].partition)->offset =
            s->parts[i].start;
        open++;
    }
    rd_kafka_resp_err_t e = open ? rd_kafka_assign(rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
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
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            snprintf(err, errlen, "%s: %s", s->raw_topic, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            return -1;
        }
        deadline = mh_mono_ms() + READ_TIMEOUT_MS;
        struct replay_part *pt = NULL;
        for (size_t i = 0; i < s->n_parts; i++)
            if (s->parts[i].partition == m->partition) pt = &s->parts[i];
        int eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
        if (pt && !pt->paused && !eof && m->offset < pt->end) {
            pt->next = m->offset + 1;
            if (fn(m, arg, err, errlen) < 0) {
                rd_kafka_message_destroy(m);
                return -1;
            }
        }
        if (pt && !pt->paused && (eof || m->offset + 1 >= pt->end)) {
            pt->paused = 1;
            open--;
        }
        rd_kafka_message_destroy(m);
    }
    return 0;
}

struct list_ctx {
    const struct replay_names *sources;
    json_t *rows;
};

/* The names of the request headers (never their values). */
static json_t *header_names(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    json_t *names = json_array();
    if (rd_kafka_message_headers(m, &h) || !h ||
        rd_kafka_header_get_last(h, MH_HDR_REQUEST_HEADERS, &v, &n) || !v)
        return names;
    struct mh_headers req = {0};
    if (mh_quarantine_headers_decode(v, n, &req) == 0)
        for (size_t i = 0; i < req.n; i++) json_array_append_new(names, json_string(req.v[i].name));
    mh_headers_clear(&req);
    return names;
}

static int list_one(const rd_kafka_message_t *m, void *arg, char *err, size_t errlen)
{
    struct list_ctx *lc = arg;
    char src[256], prov[64], tenant[256], rid[128], recv[64], reason[1024], rec[48];
    (void)err;
    (void)errlen;
    const char *source = mh_kafka_header_cut(m, MH_HDR_SOURCE, src, sizeof(src));
    if (lc->sources->n && !(source && replay_names_has(lc->sources, source))) return 0;
    json_t *o = json_object();
    const char *received = mh_kafka_header_cut(m, MH_HDR_RECEIVED_AT, recv, sizeof(recv));
    int64_t ms = 0;
    if (received) {
        json_object_set_new(o, "received_at", json_string(received));
        if (mh_time_parse(received, &ms) == 0) json_object_set_new(o, "ts_ms", json_integer(ms));
    }
    const char *v;
    if (source) json_object_set_new(o, "source", json_string(source));
    if ((v = mh_kafka_header_cut(m, MH_HDR_PROVIDER, prov, sizeof(prov))))
        json_object_set_new(o, "provider", json_string(v));
    if ((v = mh_kafka_header_cut(m, MH_HDR_TENANT, tenant, sizeof(tenant))))
        json_object_set_new(o, "tenant", json_string(v));
    if ((v = mh_kafka_header_cut(m, MH_HDR_REQUEST_ID, rid, sizeof(rid))))
        json_object_set_new(o, "request_id", json_string(v));
    if ((v = mh_kafka_header_cut(m, MH_HDR_REJECT_REASON, reason, sizeof(reason))))
        json_object_set_new(o, "reason", json_string(v));
    snprintf(rec, sizeof(rec), "%d:%lld", (int)m->partition, (long long)m->offset);
    json_object_set_new(o, "record", json_string(rec));
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "body_bytes", json_integer((json_int_t)m->len));
    json_object_set_new(o, "request_headers", header_names(m));
    json_array_append_new(lc->rows, o);
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "ts_ms"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "ts_ms"));
    return x < y ? 1 : x > y ? -1 : 0;
}

static int quarantine_list(struct mh_config *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"since", required_argument, NULL, 's'},
        {"from-beginning", no_argument, NULL, 'B'},
        {"source", required_argument, NULL, 'S'},
        {"limit", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *since = NULL;
    int from_beginning = 0, json = 0, c;
    long limit = 100;
    struct replay_spec spec = {0};
    struct replay_names sources = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:BS:n:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 's': since = optarg; break;
        case 'B': from_beginning = 1; break;
        case 'S': replay_names_add(&sources, optarg); break;
        case 'j': json = 1; break;
        case 'n': {
            char *end;
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 1 || limit > 1000000) {
                fprintf(stderr, "mailhook quarantine list: --limit: 1..1000000\n");
                replay_names_free(&sources);
                return 2;
            }
            break;
        }
        case 'h': fputs(quarantine_usage, stdout); replay_names_free(&sources); return 0;
        default: fputs(quarantine_usage, stderr); replay_names_free(&sources); return 2;
        }
    }
    if (!cfg || optind != argc || (since && from_beginning)) {
        fputs(quarantine_usage, stderr);
        replay_names_free(&sources);
        return 2;
    }
    if (!since && !from_beginning) since = "7d";

    char err[1024];
    int rc = 1;
    json_t *rows = json_array();
    struct list_ctx lc = {&sources, rows};
    rd_kafka_t *rk = mh_kafka_reader_new(cfg, "mailhook-quarantine-reader", err, sizeof(err));
    if (!rk) goto fail;
    spec.raw_topic = mh_strdup(cfg->ingest.quarantine_topic); /* the range functions' topic */
    if (replay_range_resolve(rk, &spec, NULL, since, from_beginning, NULL, err, sizeof(err)) < 0 ||
        quarantine_read(rk, &spec, list_one, &lc, err, sizeof(err)) < 0)
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
    if (json) {
        json_t *out = json_pack("{sOsI}", "items", shown, "total", (json_int_t)total);
        char *txt = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) puts(txt);
        free(txt);
        json_decref(out);
    } else {
        cli_print_table(stdout, shown, columns);
        if (total > (size_t)limit)
            fprintf(stderr, "%zu quarantined requests in the range; the newest %ld shown "
                            "(--limit)\n", total, limit);
        if (total)
            fprintf(stderr, "once the source's secret is fixed: mailhook quarantine reverify "
                            "(see docs/quarantine.md)\n");
    }
    json_decref(shown);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "mailhook quarantine list: %s\n", err);
out:
    json_decref(rows);
    replay_spec_free(&spec);
    replay_names_free(&sources);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}

int cmd_quarantine(struct mh_config *cfg, int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(quarantine_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "list")) return quarantine_list(cfg, argc - 1, argv + 1);
    if (!strcmp(argv[1], "reverify")) return quarantine_reverify(cfg, argc - 1, argv + 1);
    fprintf(stderr, "mailhook quarantine: unknown subcommand \"%s\"\n", argv[1]);
    fputs(quarantine_usage, stderr);
    return 2;
}
