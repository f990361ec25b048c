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
#include "dlq.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "replay.h"
#include "table.h"

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

/* Leaves out the rows of other sources than --source's. */
static int keep_source(const json_t *row, void *ctx)
{
    const struct replay_names *sources = ctx;
    const char *source = json_string_value(json_object_get(row, "source"));
    return !sources->n || (source && replay_names_has(sources, source));
}

/* Reads every partition's [start, end) of the resolved range and appends the rows. */
static int read_range(rd_kafka_t *rk, struct replay_spec *s, const struct replay_names *sources,
                      int body, json_t *rows, char *err, size_t errlen)
{
    struct dlq_window *w = mh_calloc(s->n_parts ? s->n_parts : 1, sizeof(*w));
    for (size_t i = 0; i < s->n_parts; i++)
        w[i] = (struct dlq_window){s->parts[i].partition, s->parts[i].start, s->parts[i].end, 0};
    int rc = dlq_read_windows(rk, s->raw_topic, w, s->n_parts, body, keep_source, (void *)sources,
                              rows, READ_TIMEOUT_MS, 0, err, errlen);
    free(w);
    return rc;
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
    rd_kafka_t *rk = dlq_reader_new(cfg, err, sizeof(err));
    if (!rk) goto fail;
    spec.raw_topic = mh_strdup(cfg->worker.dlq_topic); /* the range functions' topic */
    if (replay_range_resolve(rk, &spec, from_offsets, since, from_beginning, until, err,
                             sizeof(err)) < 0 ||
        read_range(rk, &spec, &sources, body, rows, err, sizeof(err)) < 0)
        goto fail;

    size_t total = json_array_size(rows);
    dlq_sort_newest_first(rows);
    json_t *shown = json_array();
    for (size_t i = 0; i < total && (long)i < limit; i++)
        json_array_append(shown, json_array_get(rows, i));
    range = dlq_replay_range(shown);
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
