/*
 * replay_range.c — which raw records a replay covers.
 *
 * A range is one [start, end) offset interval per partition of the raw topic, computed
 * once when the replay is created and stored with it, so the replay terminates and a
 * resume covers the same records:
 *   start  --from-offsets P:O (as given), --since TIME (Kafka's offsets-for-times: the
 *          first record whose timestamp is at or after TIME), --from-beginning (the
 *          oldest record still held);
 *   end    --until P:O (exclusive), --until TIME (the first record at or after TIME),
 *          else the partition's high watermark at creation;
 * then no end beyond what the live workers have committed (replay_range_clamp_live).
 * Record timestamps are the ingest's produce time, within milliseconds of mh-received-at.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/timeutil.h"
#include "replay.h"

#define KAFKA_TIMEOUT_MS 15000

int replay_is_offsets(const char *text)
{
    const char *p = text;
    for (;;) {
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
        if (*p++ != ':') return 0;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
        if (*p == '\0') return 1;
        if (*p++ != ',') return 0;
    }
}

/* "P:O,P:O" into a list (offsets as given); NULL with err when malformed or repeated. */
static rd_kafka_topic_partition_list_t *parse_offsets(const char *text, const char *topic,
                                                      const char *what, char *err, size_t errlen)
{
    if (!replay_is_offsets(text)) {
        snprintf(err, errlen, "%s: expected PARTITION:OFFSET[,PARTITION:OFFSET...], not \"%s\"",
                 what, text);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long part = strtol(p, &end, 10);
        long long off = strtoll(end + 1, &end, 10);
        if (errno || part > INT32_MAX) {
            snprintf(err, errlen, "%s: number out of range in \"%s\"", what, text);
            rd_kafka_topic_partition_list_destroy(l);
            return NULL;
        }
        if (rd_kafka_topic_partition_list_find(l, topic, (int32_t)part)) {
            snprintf(err, errlen, "%s: partition %ld given twice", what, part);
            rd_kafka_topic_partition_list_destroy(l);
            return NULL;
        }
        rd_kafka_topic_partition_list_add(l, topic, (int32_t)part)->offset = off;
        p = *end == ',' ? end + 1 : end;
    }
    return l;
}

/* "30m", "2h", "7d" (that long ago) or any time mh_time_parse accepts. */
static int parse_when(const char *text, int64_t *ms)
{
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (!errno && end != text && n >= 0 && end[0] && !end[1]) {
        int64_t unit = end[0] == 's' ? 1000 : end[0] == 'm' ? 60000 : end[0] == 'h' ? 3600000
                     : end[0] == 'd' ? 86400000 : 0;
        if (unit) {
            *ms = mh_now_ms() - (int64_t)n * unit;
            return 0;
        }
    }
    return mh_time_parse(text, ms);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* The topic's partition ids, sorted. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int32_t **out, size_t *n,
                            char *err, size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS);
    int rc = -1;
    if (e) {
        snprintf(err, errlen, "topic %s: metadata: %s", topic, rd_kafka_err2str(e));
        goto out;
    }
    if (md->topic_cnt != 1 || md->topics[0].err) {
        e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        snprintf(err, errlen, "topic %s: %s", topic,
                 e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? "does not exist" : rd_kafka_err2str(e));
        goto out;
    }
    *n = (size_t)md->topics[0].partition_cnt;
    *out = mh_calloc(*n ? *n : 1, sizeof(int32_t));
    for (size_t i = 0; i < *n; i++) (*out)[i] = md->topics[0].partitions[i].id;
    qsort(*out, *n, sizeof(int32_t), cmp_i32);
    rc = 0;
out:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* Replaces each element's offset (a timestamp in ms) with offsets-for-times' answer:
 * the first offset at or after it, or -1 when there is none. */
static int offsets_for_time(rd_kafka_t *rk, const struct replay_spec *s, int64_t ms,
                            rd_kafka_topic_partition_list_t **out, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n_parts);
    for (size_t i = 0; i < s->n_parts; i++)
        rd_kafka_topic_partition_list_add(l, s->raw_topic, s->parts[i].partition)->offset = ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, KAFKA_TIMEOUT_MS);
    for (int i = 0; !e && i < l->cnt; i++) e = l->elems[i].err;
    if (e) {
        snprintf(err, errlen, "topic %s: offsets for times: %s", s->raw_topic, rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
        return -1;
    }
    *out = l;
    return 0;
}

static int64_t time_offset(const rd_kafka_topic_partition_list_t *l, const char *topic,
                           int32_t partition)
{
    const rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(l, topic, partition);
    return tp ? tp->offset : -1;
}

int replay_range_resolve(rd_kafka_t *rk, struct replay_spec *s, const char *from_offsets,
                         const char *since, int from_beginning, const char *until, char *err,
                         size_t errlen)
{
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rd_kafka_topic_partition_list_t *given = NULL, *times = NULL;
    int64_t since_ms = 0, until_ms = 0;
    int rc = -1;

    if (since && parse_when(since, &since_ms) < 0) {
        snprintf(err, errlen, "--since: cannot read \"%s\" as a time (RFC 3339, or 30m, 2h, 7d)",
                 since);
        return -1;
    }
    int until_is_time = until && !replay_is_offsets(until);
    if (until_is_time && parse_when(until, &until_ms) < 0) {
        snprintf(err, errlen, "--until: \"%s\" is neither PARTITION:OFFSET,... nor a time", until);
        return -1;
    }
    if (since && until_is_time && until_ms < since_ms) {
        snprintf(err, errlen, "--until %s is before --since %s", until, since);
        return -1;
    }
    if (topic_partitions(rk, s->raw_topic, &ids, &n_ids, err, errlen) < 0) return -1;

    if (from_offsets) {
        given = parse_offsets(from_offsets, s->raw_topic, "--from-offsets", err, errlen);
        if (!given) goto out;
        s->parts = mh_calloc((size_t)given->cnt, sizeof(*s->parts));
        for (int i = 0; i < given->cnt; i++) {
            int32_t p = given->elems[i].partition;
            if (!bsearch(&p, ids, n_ids, sizeof(int32_t), cmp_i32)) {
                snprintf(err, errlen, "--from-offsets: topic %s has no partition %d (it has %zu)",
                         s->raw_topic, (int)p, n_ids);
                goto out;
            }
            s->parts[s->n_parts].partition = p;
            s->parts[s->n_parts++].start = given->elems[i].offset;
        }
        qsort(s->parts, s->n_parts, sizeof(*s->parts), cmp_i32); /* partition is the first member */
    } else {
        s->parts = mh_calloc(n_ids ? n_ids : 1, sizeof(*s->parts));
        for (size_t i = 0; i < n_ids; i++) s->parts[s->n_parts++].partition = ids[i];
    }

    if (since && offsets_for_time(rk, s, since_ms, &times, err, errlen) < 0) goto out;
    for (size_t i = 0; i < s->n_parts; i++) {
        struct replay_part *pt = &s->parts[i];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, s->raw_topic, pt->partition,
                                                                 &lo, &hi, KAFKA_TIMEOUT_MS);
        if (e) {
            snprintf(err, errlen, "topic %s partition %d: watermarks: %s", s->raw_topic,
                     (int)pt->partition, rd_kafka_err2str(e));
            goto out;
        }
        if (from_beginning) pt->start = lo;
        else if (since) {
            int64_t off = time_offset(times, s->raw_topic, pt->partition);
            pt->start = off < 0 ? hi : off;
        }
        if (pt->start < lo) {
            fprintf(stderr,
                    "mailhook replay: note: partition %d: offsets below %lld are no longer in "
                    "Kafka (retention); starting there\n", (int)pt->partition, (long long)lo);
            pt->start = lo;
        }
        if (pt->start > hi) pt->start = hi;
        pt->end = hi;
    }

    if (until && !until_is_time) {
        rd_kafka_topic_partition_list_t *u = parse_offsets(until, s->raw_topic, "--until", err, errlen);
        if (!u) goto out;
        for (int i = 0; i < u->cnt; i++) {
            struct replay_part *pt = NULL;
            for (size_t k = 0; k < s->n_parts; k++)
                if (s->parts[k].partition == u->elems[i].partition) pt = &s->parts[k];
            if (!pt) {
                snprintf(err, errlen, "--until: partition %d is not in the range",
                         (int)u->elems[i].partition);
                rd_kafka_topic_partition_list_destroy(u);
                goto out;
            }
            if (u->elems[i].offset < pt->start) {
                snprintf(err, errlen, "--until %d:%lld is before the start, offset %lld",
                         (int)pt->partition, (long long)u->elems[i].offset, (long long)pt->start);
                rd_kafka_topic_partition_list_destroy(u);
                goto out;
            }
            if (u->elems[i].offset < pt->end) pt->end = u->elems[i].offset;
        }
        rd_kafka_topic_partition_list_destroy(u);
    } else if (until) {
        rd_kafka_topic_partition_list_destroy(times);
        times = NULL;
        if (offsets_for_time(rk, s, until_ms, &times, err, errlen) < 0) goto out;
        for (size_t i = 0; i < s->n_parts; i++) {
            int64_t off = time_offset(times, s->raw_topic, s->parts[i].partition);
            if (off >= 0 && off < s->parts[i].end) s->parts[i].end = off;
            if (s->parts[i].end < s->parts[i].start) s->parts[i].end = s->parts[i].start;
        }
    }
    for (size_t i = 0; i < s->n_parts; i++) s->parts[i].next = s->parts[i].committed = s->parts[i].start;
    rc = 0;
out:
    if (given) rd_kafka_topic_partition_list_destroy(given);
    if (times) rd_kafka_topic_partition_list_destroy(times);
    free(ids);
    return rc;
}

rd_kafka_resp_err_t replay_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l)
{
    int64_t deadline = mh_mono_ms() + 30000;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, KAFKA_TIMEOUT_MS);
        int transient = e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
                        e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
                        e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
                        e == RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT ||
                        e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT;
        if (!transient || mh_mono_ms() >= deadline) return e;
        rd_kafka_poll(rk, 250);
    }
}

int replay_range_clamp_live(const struct mh_config *cfg, const char *group, struct replay_spec *s,
                            int quiet, char *err, size_t errlen)
{
    const char *overrides[] = {
        "group.id", group,
        "enable.auto.commit", "false",
        /* Waits for offsets a live transaction is still committing. */
        "isolation.level", "read_committed",
        NULL,
    };
    char rkerr[512];
    rd_kafka_topic_partition_list_t *l = NULL;
    int rc = -1;
    rd_kafka_conf_t *conf = mh_kafka_conf(cfg, overrides, err, errlen);
    if (!conf) return -1;
    /* Only reads the group's committed offsets: it never joins the group. */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka consumer: %s", rkerr);
        return -1;
    }
    l = rd_kafka_topic_partition_list_new((int)s->n_parts);
    for (size_t i = 0; i < s->n_parts; i++)
        rd_kafka_topic_partition_list_add(l, s->raw_topic, s->parts[i].partition);
    rd_kafka_resp_err_t e = replay_committed(rk, l);
    if (e) {
        snprintf(err, errlen, "cannot read the live workers' offsets (group %s): %s", group,
                 rd_kafka_err2str(e));
        goto out;
    }
    for (size_t i = 0; i < s->n_parts; i++) {
        struct replay_part *pt = &s->parts[i];
        const rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, s->raw_topic, pt->partition);
        int64_t live = !tp || tp->err ? -1 : tp->offset;
        int64_t limit = live < 0 ? pt->start : live;
        if (pt->end <= limit) continue;
        int64_t end = limit < pt->start ? pt->start : limit;
        if (!quiet) {
            if (live < 0)
                fprintf(stderr,
                        "mailhook replay: note: partition %d: the live workers (group %s) have "
                        "not processed it; skipping offsets %lld..%lld (--ignore-live reads them)\n",
                        (int)pt->partition, group, (long long)pt->start, (long long)pt->end - 1);
            else
                fprintf(stderr,
                        "mailhook replay: note: partition %d: the live workers (group %s) are at "
                        "offset %lld; the range ends there instead of at %lld\n",
                        (int)pt->partition, group, (long long)live, (long long)pt->end);
        }
        pt->end = end;
    }
    rc = 0;
out:
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return rc;
}

int replay_topic_ensure(rd_kafka_t *rk, const struct mh_config *cfg, const char *topic, char *err,
                        size_t errlen)
{
    int32_t *ids = NULL;
    size_t n = 0;
    char terr[512];
    if (topic_partitions(rk, topic, &ids, &n, terr, sizeof(terr)) == 0) {
        free(ids);
        return 0;
    }
    long parts = cfg->worker.raw_partitions;
    if (topic_partitions(rk, cfg->worker.events_topic, &ids, &n, terr, sizeof(terr)) == 0) {
        parts = (long)n;
        free(ids);
    }
    char max_bytes[32];
    snprintf(max_bytes, sizeof(max_bytes), "%ld", mh_config_max_record_bytes(cfg));
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, (int)parts, -1, terr, sizeof(terr));
    if (!nt) {
        snprintf(err, errlen, "topic %s: %s", topic, terr);
        return -1;
    }
    rd_kafka_NewTopic_set_config(nt, "max.message.bytes", max_bytes);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, 30000, terr, sizeof(terr));
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    int rc = -1;
    if (!ev) {
        snprintf(err, errlen, "create topic %s: no answer from Kafka within 60 s", topic);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "create topic %s: %s", topic, rd_kafka_event_error_string(ev));
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        rd_kafka_resp_err_t e = cnt ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            snprintf(err, errlen, "create topic %s: %s", topic, rd_kafka_topic_result_error_string(tr[0]));
        else
            rc = 0;
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    if (rc == 0) fprintf(stderr, "mailhook replay: created topic %s (%ld partitions)\n", topic, parts);
    return rc;
}
