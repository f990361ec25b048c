/*
 * quarantine_reverify.c — `mailhook quarantine reverify`: the kept requests checked again
 * with the sources' current secrets, and those that now verify published as ingest would
 * have published them (docs/quarantine.md).
 *
 * Each record goes through its source's provider verify exactly as in ingest: method,
 * URI, every request header and the body as received, but with now = the time ingest
 * received it (mh-received-at), so a timestamp tolerance judges the request as it was
 * then, not how old it is today. A request that verifies is produced to [ingest]
 * raw_topic with an idempotent acks=all producer, keyed by its request id, with the
 * same headers ingest writes (mh-received-at the original receive time) and the body
 * byte for byte. The worker's dedup absorbs a request published twice (a run repeated,
 * or --from-beginning), so at worst a run does work twice, never emits an event twice.
 *
 * Progress is kept as the committed offsets of a consumer group (--group): after a run,
 * each partition's offset is its first request that still fails (so those stay for the
 * next run, once the config is fixed), or its end. Requests of sources filtered out by
 * --source hold the offset back the same way. Skipped requests (source no longer
 * configured or disabled, a record without the headers it needs, a provider's
 * URL check) do not. --from-beginning ignores the committed offsets.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/quarantine.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"
#include "quarantine.h"

#define DEFAULT_GROUP "mailhook-quarantine-reverify"
#define FLUSH_TIMEOUT_MS 30000

struct reverify {
    const struct mh_config *cfg;
    const struct replay_names *sources;
    struct replay_spec *spec;
    int64_t *hold;       /* per partition of spec: first offset to read again, or -1 */
    rd_kafka_t *producer; /* NULL in a dry run */
    unsigned long verified, failing, skipped, filtered, delivery_failed;
    json_t *failures;    /* {record, source, request_id, reason} of those still failing */
    json_t *skips;       /* {record, source, request_id, reason} of those skipped */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct reverify *rv = opaque;
    (void)rk;
    if (rkm->err) {
        rv->delivery_failed++;
        fprintf(stderr, "mailhook quarantine reverify: not published: %s\n",
                rd_kafka_err2str(rkm->err));
    }
}

static rd_kafka_t *producer_new(const struct mh_config *cfg, struct reverify *rv, char *err,
                                size_t errlen)
{
    char max_bytes[32];
    snprintf(max_bytes, sizeof(max_bytes), "%ld", mh_config_max_record_bytes(cfg));
    const char *overrides[] = {
        "acks", "all",
        "enable.idempotence", "true",
        "message.max.bytes", max_bytes,
        NULL,
    };
    rd_kafka_conf_t *conf = mh_kafka_conf(cfg, overrides, err, errlen);
    if (!conf) return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, rv);
    char rkerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka producer: %s", rkerr);
    }
    return rk;
}

static void hold_at(struct reverify *rv, const rd_kafka_message_t *m)
{
    for (size_t i = 0; i < rv->spec->n_parts; i++)
        if (rv->spec->parts[i].partition == m->partition &&
            (rv->hold[i] < 0 || m->offset < rv->hold[i]))
            rv->hold[i] = m->offset;
}

static void note(json_t *list, const rd_kafka_message_t *m, const char *source, const char *rid,
                 const char *reason)
{
    char rec[48];
    snprintf(rec, sizeof(rec), "%d:%lld", (int)m->partition, (long long)m->offset);
    json_array_append_new(list, json_pack("{s:s, s:s?, s:s?, s:s}", "record", rec, "source",
                                          source, "request_id", rid, "reason", reason));
}

static void add(rd_kafka_headers_t *hdrs, const char *name, const char *value)
{
    if (value) rd_kafka_header_add(hdrs, name, -1, value, -1);
}

/* Produces the request to the raw topic with ingest's headers (http.c). 0, or -1. */
static int publish(struct reverify *rv, const struct mh_source *src, const rd_kafka_message_t *m,
                   const char *rid, const char *received, const struct mh_headers *req,
                   char *err, size_t errlen)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8 + src->n_forward);
    add(hdrs, MH_HDR_SOURCE, src->name);
    add(hdrs, MH_HDR_PROVIDER, src->provider->name);
    add(hdrs, MH_HDR_TENANT, src->tenant);
    add(hdrs, MH_HDR_RECEIVED_AT, received);
    add(hdrs, MH_HDR_REQUEST_ID, rid);
    add(hdrs, "content-type", mh_headers_get(req, "content-type"));
    for (size_t i = 0; i < src->n_forward; i++)
        add(hdrs, src->forward_headers[i], mh_headers_get(req, src->forward_headers[i]));
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rv->producer, RD_KAFKA_V_TOPIC(rv->cfg->ingest.raw_topic),
            RD_KAFKA_V_KEY(rid, strlen(rid)), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!e) break;
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rv->producer, 100);
            continue;
        }
        rd_kafka_headers_destroy(hdrs);
        snprintf(err, errlen, "produce to %s: %s", rv->cfg->ingest.raw_topic,
                 rd_kafka_err2str(e));
        return -1;
    }
    rd_kafka_poll(rv->producer, 0);
    return 0;
}

static int reverify_one(const rd_kafka_message_t *m, void *arg, char *err, size_t errlen)
{
    struct reverify *rv = arg;
    char name[256], ridbuf[128], recv[64], uribuf[8192];
    const char *source = mh_kafka_header_cut(m, MH_HDR_SOURCE, name, sizeof(name));
    const char *rid = mh_kafka_header_cut(m, MH_HDR_REQUEST_ID, ridbuf, sizeof(ridbuf));
    if (rv->sources->n && !(source && replay_names_has(rv->sources, source))) {
        rv->filtered++;
        hold_at(rv, m);
        return 0;
    }
    const struct mh_source *src = source ? mh_config_source(rv->cfg, source) : NULL;
    const char *received = mh_kafka_header_cut(m, MH_HDR_RECEIVED_AT, recv, sizeof(recv));
    const char *uri = mh_kafka_header_cut(m, MH_HDR_REQUEST_URI, uribuf, sizeof(uribuf));
    rd_kafka_headers_t *kh = NULL;
    const void *hv = NULL;
    size_t hn = 0;
    int64_t received_ms = 0;
    const char *skip = NULL;
    struct mh_headers req = {0};
    if (!src || !src->enabled) skip = "source not configured or disabled";
    else if (!rid || !received || mh_time_parse(received, &received_ms) < 0)
        skip = "record without mh-request-id or mh-received-at";
    else if (rd_kafka_message_headers(m, &kh) || !kh ||
             rd_kafka_header_get_last(kh, MH_HDR_REQUEST_HEADERS, &hv, &hn) || !hv ||
             mh_quarantine_headers_decode(hv, hn, &req) < 0)
        skip = "record without readable mh-request-headers";
    if (skip) {
        rv->skipped++;
        note(rv->skips, m, source, rid, skip);
        mh_headers_clear(&req);
        return 0;
    }
    char vuri[512];
    if (!uri) {
        snprintf(vuri, sizeof(vuri), "/v1/webhooks/%s", src->name);
        uri = vuri;
    }
    struct mh_request mreq = {
        .method = "POST",
        .uri = uri,
        .headers = &req,
        .body = m->payload ? m->payload : (const unsigned char *)"",
        .body_len = m->len,
        .now_ms = received_ms, /* timestamps are judged as of the receive time */
    };
    char verr[512] = "";
    enum mh_verdict v = src->provider->verify(src, &mreq, verr, sizeof(verr));
    int rc = 0;
    if (v == MH_VERIFY_OK) {
        rv->verified++;
        if (rv->producer) rc = publish(rv, src, m, rid, received, &req, err, errlen);
    } else if (v == MH_VERIFY_ACK) {
        rv->skipped++;
        note(rv->skips, m, source, rid, "a provider check: nothing to publish");
    } else {
        rv->failing++;
        hold_at(rv, m);
        note(rv->failures, m, source, rid, verr);
    }
    mh_headers_clear(&req);
    return rc;
}

/* Starts each partition after the group's committed offset, unless from the beginning. */
static int start_after_committed(rd_kafka_t *rk, struct replay_spec *s, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n_parts);
    for (size_t i = 0; i < s->n_parts; i++)
        rd_kafka_topic_partition_list_add(l, s->raw_topic, s->parts[i].partition);
    rd_kafka_resp_err_t e = replay_committed(rk, l);
    if (e) {
        snprintf(err, errlen, "committed offsets of %s: %s", s->raw_topic, rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
        return -1;
    }
    for (int k = 0; k < l->cnt; k++)
        for (size_t i = 0; i < s->n_parts; i++)
            if (s->parts[i].partition == l->elems[k].partition && l->elems[k].offset >= 0 &&
                l->elems[k].offset > s->parts[i].start)
                s->parts[i].start = l->elems[k].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return 0;
}

/* Each partition's next start into next: its first held offset, or its end; committed
 * for the partitions read when commit is set. */
static int commit_progress(rd_kafka_t *rk, struct reverify *rv, json_t *next, int commit,
                           char *err, size_t errlen)
{
    struct replay_spec *s = rv->spec;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n_parts);
    for (size_t i = 0; i < s->n_parts; i++) {
        int64_t off = rv->hold[i] >= 0 ? rv->hold[i] : s->parts[i].end;
        char key[16];
        snprintf(key, sizeof(key), "%d", (int)s->parts[i].partition);
        json_object_set_new(next, key, json_integer(off));
        if (!commit || s->parts[i].start >= s->parts[i].end) continue; /* nothing read */
        rd_kafka_topic_partition_list_add(l, s->raw_topic, s->parts[i].partition)->offset = off;
    }
    rd_kafka_resp_err_t e = l->cnt ? rd_kafka_commit(rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "commit %s: %s", s->raw_topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void report(FILE *out, const struct reverify *rv, int dry_run, int json, json_t *next)
{
    if (json) {
        json_t *o = json_pack("{sbsIsIsIsIsOsOsO}", "dry_run", dry_run, "verified",
                              (json_int_t)rv->verified, "published",
                              (json_int_t)(dry_run ? 0 : rv->verified), "still_failing",
                              (json_int_t)rv->failing, "skipped", (json_int_t)rv->skipped,
                              "failing", rv->failures, "skips", rv->skips, "next", next);
        json_object_set_new(o, "filtered", json_integer((json_int_t)rv->filtered));
        char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) fprintf(out, "%s\n", txt);
        free(txt);
        json_decref(o);
        return;
    }
    size_t i;
    json_t *f;
    json_array_foreach(rv->failures, i, f)
        fprintf(out, "still failing  %s  %s  %s  %s\n",
                json_string_value(json_object_get(f, "record")),
                json_string_value(json_object_get(f, "source")),
                json_string_value(json_object_get(f, "request_id")),
                json_string_value(json_object_get(f, "reason")));
    json_array_foreach(rv->skips, i, f)
        fprintf(out, "skipped        %s  %s  %s  %s\n",
                json_string_value(json_object_get(f, "record")),
                json_string_value(json_object_get(f, "source")) ?
                    json_string_value(json_object_get(f, "source")) : "-",
                json_string_value(json_object_get(f, "request_id")) ?
                    json_string_value(json_object_get(f, "request_id")) : "-",
                json_string_value(json_object_get(f, "reason")));
    fprintf(out, "%s %lu, still failing %lu, skipped %lu", dry_run ? "would publish" :
            "verified and published", rv->verified, rv->failing, rv->skipped);
    if (rv->filtered) fprintf(out, ", other sources %lu", rv->filtered);
    fprintf(out, "\n");
}

int quarantine_reverify(struct mh_config *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"source", required_argument, NULL, 'S'},
        {"dry-run", no_argument, NULL, 'n'},
        {"from-beginning", no_argument, NULL, 'B'},
        {"group", required_argument, NULL, 'g'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int dry_run = 0, from_beginning = 0, json = 0, c;
    const char *group = DEFAULT_GROUP;
    struct replay_names sources = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "S:nBg:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'S': replay_names_add(&sources, optarg); break;
        case 'n': dry_run = 1; break;
        case 'B': from_beginning = 1; break;
        case 'g': group = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(quarantine_usage, stdout); replay_names_free(&sources); return 0;
        default: fputs(quarantine_usage, stderr); replay_names_free(&sources); return 2;
        }
    }
    if (!cfg || optind != argc) {
        fputs(quarantine_usage, stderr);
        replay_names_free(&sources);
        return 2;
    }

    char err[1024] = "";
    int rc = 1;
    struct replay_spec spec = {0};
    struct reverify rv = {.cfg = cfg, .sources = &sources, .spec = &spec,
                          .failures = json_array(), .skips = json_array()};
    json_t *next = json_object();
    rd_kafka_t *rk = mh_kafka_reader_new(cfg, group, err, sizeof(err));
    if (!rk) goto fail;
    spec.raw_topic = mh_strdup(cfg->ingest.quarantine_topic); /* the range functions' topic */
    if (replay_range_resolve(rk, &spec, NULL, NULL, 1, NULL, err, sizeof(err)) < 0) goto fail;
    if (!from_beginning && start_after_committed(rk, &spec, err, sizeof(err)) < 0) goto fail;
    rv.hold = mh_calloc(spec.n_parts ? spec.n_parts : 1, sizeof(*rv.hold));
    for (size_t i = 0; i < spec.n_parts; i++) rv.hold[i] = -1;
    if (!dry_run && !(rv.producer = producer_new(cfg, &rv, err, sizeof(err)))) goto fail;

    if (quarantine_read(rk, &spec, reverify_one, &rv, err, sizeof(err)) < 0) goto fail;
    if (rv.producer) {
        rd_kafka_flush(rv.producer, FLUSH_TIMEOUT_MS);
        if (rd_kafka_outq_len(rv.producer) > 0 || rv.delivery_failed) {
            snprintf(err, sizeof(err), "%lu requests not acknowledged by %s: nothing committed, "
                     "run again", rv.delivery_failed + (unsigned long)rd_kafka_outq_len(rv.producer),
                     cfg->ingest.raw_topic);
            goto fail;
        }
        /* Only what Kafka acknowledged is remembered as done. */
        if (commit_progress(rk, &rv, next, 1, err, sizeof(err)) < 0) goto fail;
    } else {
        commit_progress(rk, &rv, next, 0, err, sizeof(err));
    }
    report(stdout, &rv, dry_run, json, next);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "mailhook quarantine reverify: %s\n", err);
out:
    json_decref(next);
    json_decref(rv.failures);
    json_decref(rv.skips);
    free(rv.hold);
    if (rv.producer) rd_kafka_destroy(rv.producer);
    replay_spec_free(&spec);
    replay_names_free(&sources);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}
