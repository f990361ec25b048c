/*
 * replay.c — `mailhook replay`: re-reads a range of the raw topic through the live
 * worker's own pipeline and writes the events to a topic of the operator's choice.
 *
 * Same code. Each batch goes through normalize_batch, the claims in PostgreSQL (dedup.c)
 * and emit_batch (emit.c), the functions mailhook-worker runs, with the replay's own
 * consumer, producer and target topics.
 *
 * Deterministic. An event is written only by the raw record that claims it, as in the
 * live pipeline, so a replay of a range yields the events the live workers emitted for
 * that range, each provider duplicate once. Claims are first looked up read-only
 * (dedup_lookup). When a batch carries an event with no claim (it expired from the dedup
 * window), the batch is claimed with dedup_claim: that inserts the missing claims (the
 * first record of the replay carrying the event wins) and decides every other event
 * exactly as the lookup did. Suppression effects of such new claims apply only with
 * --apply-suppression (worker.skip_suppression otherwise).
 *
 * Never disturbs the live workers. It reads with manual assignment (it never joins a
 * consumer group) and ends each partition's range at the live workers' committed
 * offset: a record they have not processed yet has no claim, and a replay claiming it
 * first would take the event's first claim, and its suppression effect, away from them.
 *
 * Exactly-once output, exact resume. The replay's transactional producer
 * (transactional.id mailhook-replay-<id>) commits each batch's events together with the
 * next offsets of the consumer group mailhook-replay-<id> in one Kafka transaction, so a
 * crash leaves both or neither. `--resume ID` first fences the previous incarnation
 * (init_transactions aborts its open transaction), then reads the group's committed
 * offsets and goes on from there: nothing is written twice or skipped. PostgreSQL
 * (mh_replay_checkpoints) keeps the replay's fixed definition and, after each commit,
 * its progress (replay_checkpoint.c).
 *
 * Signals: the first SIGINT/SIGTERM finishes and commits the batch in hand, then exits
 * with status 130 (resumable); a second one exits at once (the open transaction is
 * aborted by the next resume).
 */
#include <ctype.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mailhook/crypto.h"
#include "mailhook/dedup_scope.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"
#include "pipeline.h"
#include "replay.h"

#define PG_GIVE_UP_MS 30000
#define MAX_ABORTS_IN_A_ROW 5
#define KAFKA_TIMEOUT_MS 15000
#define REPLAY_PREFIX "mailhook-replay"

static const char usage[] =
    "usage: mailhook [--config FILE] replay RANGE [--until TIME|OFFSETS] [FILTERS]\n"
    "                                       (--to-topic TOPIC | --dry-run) [OPTIONS]\n"
    "       mailhook [--config FILE] replay --resume ID [--batch-size N] [--json] [--no-progress]\n"
    "       mailhook [--config FILE] replay --list [--json]\n"
    "\n"
    "Re-reads raw webhooks from Kafka ([worker] raw_topic), normalizes them with the live\n"
    "worker's code and writes each event its record claims, once, to a topic. See\n"
    "docs/replay.md.\n"
    "\n"
    "Range (exactly one):\n"
    "  --from-offsets P:O,...  start at these offsets; only the partitions listed\n"
    "  --since TIME            start at the first record written at or after TIME\n"
    "                          (RFC 3339, or 30m, 2h, 7d ago)\n"
    "  --from-beginning        start at the oldest record Kafka still holds\n"
    "  --until TIME|P:O,...    stop before the first record written at or after TIME, or\n"
    "                          before these offsets (default: each partition's end now)\n"
    "Filters (repeatable, comma-separated):\n"
    "  --source NAME           only records of these sources (mh-source)\n"
    "  --provider NAME         only records of these providers (mh-provider)\n"
    "  --type TYPE             only events of these types (email.bounced, ...)\n"
    "Output:\n"
    "  --to-topic TOPIC        write the events here (created when missing); the live\n"
    "                          events topic only together with --yes\n"
    "  --yes                   confirm writing to the live events or dead-letter topic\n"
    "  --dlq-topic TOPIC       also write the records that cannot be parsed here\n"
    "                          (default: count them only)\n"
    "  --dry-run               write and claim nothing; count what would be written, by\n"
    "                          type and source\n"
    "  --apply-suppression     apply the suppression effects of events claimed anew\n"
    "                          (default: suppression state is never changed)\n"
    "Run:\n"
    "  --id ID                 name of the replay (default: generated); its checkpoint,\n"
    "                          consumer group and transactional.id are mailhook-replay-ID\n"
    "  --resume ID             continue an interrupted replay where it stopped\n"
    "  --list                  list the replays with their status and progress\n"
    "  --batch-size N          records per Kafka transaction (default [worker] batch_size)\n"
    "  --ignore-live           also replay records the live workers have not processed yet\n"
    "                          (default: each partition ends at their committed offset)\n"
    "  --live-group ID         the live workers' consumer group (default [worker] group_id)\n"
    "  --json                  print the final summary as one JSON object\n"
    "  --no-progress           no progress bar, even on a terminal\n"
    "\n"
    "Exit status: 0 done, 1 error (resumable when a replay id was printed), 2 usage,\n"
    "130 interrupted (resumable).\n";

struct replay_opts {
    const char *from_offsets, *since, *until, *to_topic, *dlq_topic, *id, *resume, *live_group;
    int from_beginning, yes, dry_run, apply_suppression, list, ignore_live, json, no_progress;
    long batch_size;
    struct replay_names sources, providers, types;
};

struct replay {
    struct replay_spec spec;
    struct worker w;
    struct mh_config cfg; /* the loaded config with the replay's topics (shallow copy) */
    char *group;          /* mailhook-replay-<id> */
    int dry_run;
    int stored; /* the checkpoint row is this replay's: created or loaded by this run */
    long batch_size;
    json_t *seen;      /* dry run: events without a claim counted already */
    int *index;        /* partition id -> index in spec.parts, or -1 */
    size_t n_index;
    struct replay_counts run, total;
    struct replay_progress progress;
};

static struct replay *the_replay;

static void on_signal(int sig)
{
    (void)sig;
    if (the_replay->w.stop) _exit(130);
    the_replay->w.stop = 1;
}

/* --- small helpers ------------------------------------------------------------------ */

void replay_names_add(struct replay_names *l, const char *csv)
{
    const char *p = csv;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && isspace((unsigned char)*p)) p++, n--;
        while (n && isspace((unsigned char)p[n - 1])) n--;
        if (n) {
            char *name = mh_strndup(p, n);
            if (replay_names_has(l, name)) {
                free(name);
            } else {
                l->v = mh_realloc(l->v, (l->n + 1) * sizeof(char *));
                l->v[l->n++] = name;
            }
        }
        if (!e) break;
        p = e + 1;
    }
}

int replay_names_has(const struct replay_names *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], name)) return 1;
    return 0;
}

void replay_names_free(struct replay_names *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void replay_spec_free(struct replay_spec *s)
{
    free(s->id);
    free(s->raw_topic);
    free(s->to_topic);
    free(s->dlq_topic);
    replay_names_free(&s->sources);
    replay_names_free(&s->providers);
    replay_names_free(&s->types);
    free(s->parts);
    memset(s, 0, sizeof(*s));
}

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 100) return 0;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') return 0;
    return 1;
}

static char *new_id(void)
{
    char stamp[32], rnd[7], id[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    mh_random_hex(3, rnd);
    snprintf(id, sizeof(id), "%s-%s", stamp, rnd);
    return mh_strdup(id);
}

static struct replay_part *part_of(struct replay *r, int32_t partition)
{
    if (partition < 0 || (size_t)partition >= r->n_index || r->index[partition] < 0) return NULL;
    return &r->spec.parts[r->index[partition]];
}

static int all_read(const struct replay *r)
{
    for (size_t i = 0; i < r->spec.n_parts; i++)
        if (r->spec.parts[i].next < r->spec.parts[i].end) return 0;
    return 1;
}

static void set_paused(struct replay *r, struct replay_part *pt, int pause)
{
    if (pt->paused == pause) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->spec.raw_topic, pt->partition);
    if (pause) rd_kafka_pause_partitions(r->w.consumer, l);
    else rd_kafka_resume_partitions(r->w.consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    pt->paused = pause;
}

/* --- checks before anything is written ---------------------------------------------- */

/* Refuses targets that would corrupt the live pipeline's topics. */
static int check_targets(const struct mh_config *cfg, const struct replay_opts *o, char *err,
                         size_t errlen)
{
    const struct mh_config *c = cfg;
    const char *to = o->to_topic, *dlq = o->dlq_topic;
    if (to && (!strcmp(to, c->worker.raw_topic) || !strcmp(to, c->worker.suppressions_topic) ||
               !strcmp(to, c->worker.dlq_topic))) {
        snprintf(err, errlen, "refusing to write events to %s, one of the pipeline's own topics", to);
        return -1;
    }
    if (to && !strcmp(to, c->worker.events_topic) && !o->yes) {
        snprintf(err, errlen,
                 "refusing to write to the live events topic %s: every consumer of it would "
                 "receive the replayed events a second time (same event_id). Write to another "
                 "topic, or add --yes to do it anyway", to);
        return -1;
    }
    if (dlq && (!strcmp(dlq, c->worker.raw_topic) || !strcmp(dlq, c->worker.events_topic) ||
                !strcmp(dlq, c->worker.suppressions_topic) || (to && !strcmp(dlq, to)))) {
        snprintf(err, errlen, "refusing to write dead letters to %s", dlq);
        return -1;
    }
    if (dlq && !strcmp(dlq, c->worker.dlq_topic) && !o->yes) {
        snprintf(err, errlen,
                 "refusing to write to the live dead-letter topic %s: the live workers wrote "
                 "these dead letters there already. Add --yes to do it anyway", dlq);
        return -1;
    }
    return 0;
}

/* --- Kafka ----------------------------------------------------------------------------- */

static int consumer_new(struct replay *r, char *err, size_t errlen)
{
    r->w.consumer = mh_kafka_reader_new(r->w.cfg, r->group, err, errlen);
    return r->w.consumer ? 0 : -1;
}

/*
 * Sets every partition's committed and next offset from the replay group's committed
 * offsets (resume) and commits the start of every partition that has none — for a new
 * replay all of them — so the group holds the exact checkpoint of every partition from
 * the start, and a resume never has to fall back to PostgreSQL's progress for a
 * partition that has made none yet.
 */
static int positions_init(struct replay *r, int resumed, char *err, size_t errlen)
{
    struct replay_spec *s = &r->spec;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n_parts);
    rd_kafka_topic_partition_list_t *set = rd_kafka_topic_partition_list_new((int)s->n_parts);
    int rc = -1;
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].start < s->parts[i].end)
            rd_kafka_topic_partition_list_add(l, s->raw_topic, s->parts[i].partition);
    if (resumed && l->cnt) {
        rd_kafka_resp_err_t e = replay_committed(r->w.consumer, l);
        if (e) {
            snprintf(err, errlen, "cannot read the checkpoint (group %s): %s", r->group,
                     rd_kafka_err2str(e));
            goto out;
        }
    }
    for (size_t i = 0; i < s->n_parts; i++) {
        struct replay_part *pt = &s->parts[i];
        const rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, s->raw_topic, pt->partition);
        if (!tp) {
            pt->committed = pt->end; /* empty range */
        } else if (resumed && !tp->err && tp->offset >= 0) {
            pt->committed = tp->offset < pt->start ? pt->start
                            : tp->offset > pt->end ? pt->end
                                                   : tp->offset;
        } else {
            if (resumed && pt->committed > pt->start)
                fprintf(stderr,
                        "mailhook replay: note: Kafka holds no checkpoint for partition %d "
                        "(expired?); continuing from the last progress recorded in PostgreSQL, "
                        "offset %lld\n", (int)pt->partition, (long long)pt->committed);
            else
                pt->committed = pt->start;
            rd_kafka_topic_partition_list_add(set, s->raw_topic, pt->partition)->offset = pt->committed;
        }
        pt->next = pt->committed;
    }
    if (set->cnt) {
        rd_kafka_resp_err_t e = rd_kafka_commit(r->w.consumer, set, 0);
        if (e) {
            snprintf(err, errlen, "cannot store the starting checkpoint (group %s): %s", r->group,
                     rd_kafka_err2str(e));
            goto out;
        }
    }
    rc = 0;
out:
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_topic_partition_list_destroy(set);
    return rc;
}

static int assign(struct replay *r, char *err, size_t errlen)
{
    struct replay_spec *s = &r->spec;
    int32_t maxp = 0;
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].partition > maxp) maxp = s->parts[i].partition;
    r->n_index = (size_t)maxp + 1;
    r->index = mh_malloc(r->n_index * sizeof(int));
    for (size_t i = 0; i < r->n_index; i++) r->index[i] = -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->n_parts);
    for (size_t i = 0; i < s->n_parts; i++) {
        r->index[s->parts[i].partition] = (int)i;
        if (s->parts[i].next < s->parts[i].end)
            rd_kafka_topic_partition_list_add(l, s->raw_topic, s->parts[i].partition)->offset =
                s->parts[i].next;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(r->w.consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "kafka assign: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

/* --- the batch loop -------------------------------------------------------------------- */

/* Collects up to batch_size records of the range ([worker] batch_max_bytes of bodies at
 * most); stops early when the range is read, on a signal, or when nothing more arrives
 * within a moment. */
static void collect(struct replay *r, struct batch *b)
{
    size_t bytes = 0;
    while (!r->w.stop && b->n < (size_t)r->batch_size && !all_read(r) &&
           bytes < (size_t)r->cfg.worker.batch_max_bytes) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(r->w.consumer, b->n ? 20 : 200);
        if (!rkm) {
            if (b->n) break;
            replay_progress_draw(&r->progress, &r->spec, &r->run, 0);
            continue;
        }
        struct replay_part *pt = part_of(r, rkm->partition);
        if (rkm->err) {
            if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* Everything below the end of the log has been delivered. */
                if (pt && rkm->offset >= pt->end && pt->next < pt->end) {
                    pt->next = pt->end;
                    set_paused(r, pt, 1);
                }
            } else {
                mh_warn("consume: %s", rd_kafka_message_errstr(rkm));
                if (rd_kafka_fatal_error(r->w.consumer, NULL, 0)) r->w.stop = 2;
            }
            rd_kafka_message_destroy(rkm);
            continue;
        }
        if (!pt || rkm->offset < pt->next) {
            rd_kafka_message_destroy(rkm);
            continue;
        }
        if (rkm->offset >= pt->end) {
            pt->next = pt->end;
            set_paused(r, pt, 1);
            rd_kafka_message_destroy(rkm);
            continue;
        }
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 64;
            b->recs = mh_realloc(b->recs, b->cap * sizeof(*b->recs));
        }
        memset(&b->recs[b->n], 0, sizeof(b->recs[b->n]));
        b->recs[b->n++].rkm = rkm;
        bytes += rkm->len;
        pt->next = rkm->offset + 1;
        if (pt->next >= pt->end) set_paused(r, pt, 1);
    }
}

/* --source / --provider: a record that does not match gets no events and is not parsed. */
static void filter_records(struct replay *r, struct batch *b, struct replay_counts *c)
{
    const struct replay_spec *s = &r->spec;
    if (!s->sources.n && !s->providers.n) return;
    for (size_t i = 0; i < b->n; i++) {
        char buf[256];
        const char *v;
        int keep = 1;
        if (s->sources.n) {
            v = mh_kafka_header(b->recs[i].rkm, MH_HDR_SOURCE, buf, sizeof(buf));
            keep = v && replay_names_has(&s->sources, v);
        }
        if (keep && s->providers.n) {
            v = mh_kafka_header(b->recs[i].rkm, MH_HDR_PROVIDER, buf, sizeof(buf));
            keep = v && replay_names_has(&s->providers, v);
        }
        if (!keep) {
            b->recs[i].events = json_array();
            c->records_filtered++;
        }
    }
}

/* --type drops other events before they are claimed; dead letters are counted, and kept
 * for emit_batch only when they have a topic to go to. */
static void filter_events(struct replay *r, struct batch *b, struct replay_counts *c)
{
    const struct replay_spec *s = &r->spec;
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *rec = &b->recs[i];
        if (rec->dlq_reason) {
            c->dead_letters++;
            if (!s->dlq_topic) {
                free(rec->dlq_reason);
                rec->dlq_reason = NULL;
            }
            continue;
        }
        if (!rec->events || !s->types.n) continue;
        for (size_t j = json_array_size(rec->events); j-- > 0;) {
            const char *type = json_string_value(json_object_get(json_array_get(rec->events, j), "type"));
            if (!type || !replay_names_has(&s->types, type)) {
                batch_rec_drop_event(rec, j);
                c->events_filtered++;
            }
        }
    }
}

/*
 * Records PostgreSQL refused for good (dedup.c isolated them, stage "store"): reported on
 * stderr and counted as dead letters, and kept for emit_batch only when they have a topic
 * to go to — the replay goes on either way.
 */
static void store_dead_letters(struct replay *r, struct batch *b, struct replay_counts *c)
{
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *rec = &b->recs[i];
        if (!rec->dlq_reason || !rec->dlq_stage || strcmp(rec->dlq_stage, MH_DLQ_STAGE_STORE))
            continue;
        c->dead_letters++;
        fprintf(stderr, "mailhook replay: %s[%d]@%lld cannot be stored: %s\n",
                rd_kafka_topic_name(rec->rkm->rkt), (int)rec->rkm->partition,
                (long long)rec->rkm->offset, rec->dlq_reason);
        if (!r->spec.dlq_topic) {
            free(rec->dlq_reason);
            rec->dlq_reason = NULL;
        }
    }
}

static int any_fresh(const struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct batch_rec *rec = &b->recs[i];
        if (!rec->events || !rec->fresh) continue;
        for (size_t j = 0; j < json_array_size(rec->events); j++)
            if (rec->fresh[j]) return 1;
    }
    return 0;
}

typedef int (*claim_fn)(struct worker *w, struct batch *b, char *err, size_t errlen);

/* Runs a claims step, retrying while PostgreSQL is unavailable (at most PG_GIVE_UP_MS). */
static int with_pg_retry(struct replay *r, claim_fn fn, struct batch *b)
{
    char err[1024];
    int64_t start = mh_mono_ms();
    int delay_ms = 100;
    for (;;) {
        if (fn(&r->w, b, err, sizeof(err)) == 0) return 0;
        if (r->w.stop || mh_mono_ms() - start > PG_GIVE_UP_MS) {
            replay_progress_clear(&r->progress);
            fprintf(stderr, "mailhook replay: %s\n", err);
            return -1;
        }
        mh_warn("%s (retrying in %d ms)", err, delay_ms);
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
    }
}

/* A dry run claims nothing: an event without a claim counts once, for the first record
 * of the replay that carries it, as a real replay would claim it. */
static void dry_run_claims(struct replay *r, struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *rec = &b->recs[i];
        size_t j;
        json_t *ev;
        json_array_foreach(rec->events, j, ev) {
            if (!rec->fresh[j]) continue;
            /* The claim's key (dedup.c): tenant, dedup scope, event id. */
            char *key = NULL, *scope = mh_event_dedup_scope(ev);
            if (asprintf(&key, "%s\x1f%s\x1f%s", json_string_value(json_object_get(ev, "tenant")) ?: "",
                         scope, json_string_value(json_object_get(ev, "event_id")) ?: "") < 0)
                mh_oom();
            free(scope);
            if (json_object_get(r->seen, key)) {
                rec->fresh[j] = 0;
            } else {
                json_object_set_new(r->seen, key, json_true());
                rec->emit[j] = 1;
            }
            free(key);
        }
    }
}

static void count_events(const struct batch *b, struct replay_counts *c)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct batch_rec *rec = &b->recs[i];
        size_t j;
        json_t *ev;
        json_array_foreach(rec->events, j, ev) {
            if (!rec->emit || !rec->emit[j]) {
                c->duplicates++;
                continue;
            }
            c->events++;
            if (rec->fresh && rec->fresh[j]) c->claimed_anew++;
            replay_counts_bump(c->by_type, json_string_value(json_object_get(ev, "type")));
            replay_counts_bump(c->by_source, json_string_value(json_object_get(ev, "source")));
        }
    }
}

/*
 * After an aborted transaction: every unfinished partition goes back to its checkpoint —
 * read position and consumer position — so the batch comes again. Done here for every
 * partition, whatever emit.c's own rewind covered (a partition marked read by an EOF has
 * no record in the batch). 0, or -1 with err when the consumer cannot seek.
 */
static int after_abort(struct replay *r, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)r->spec.n_parts);
    int rc = 0;
    for (size_t i = 0; i < r->spec.n_parts; i++) {
        struct replay_part *pt = &r->spec.parts[i];
        pt->next = pt->committed;
        if (pt->next < pt->end)
            rd_kafka_topic_partition_list_add(l, r->spec.raw_topic, pt->partition)->offset = pt->next;
    }
    if (l->cnt) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(r->w.consumer, l, KAFKA_TIMEOUT_MS);
        if (e) {
            snprintf(err, errlen, "rewind after an aborted transaction: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            rc = -1;
        }
        for (int i = 0; rc == 0 && i < l->cnt; i++) {
            if (!l->elems[i].err) continue;
            snprintf(err, errlen, "rewind partition %d after an aborted transaction: %s",
                     (int)l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
            rc = -1;
        }
    }
    for (size_t i = 0; rc == 0 && i < r->spec.n_parts; i++)
        if (r->spec.parts[i].next < r->spec.parts[i].end) set_paused(r, &r->spec.parts[i], 0);
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* One batch: 0 committed (or counted, in a dry run), 1 aborted and rewound, -1 failed. */
static int process(struct replay *r, struct batch *b)
{
    struct replay_counts c;
    int rc = -1;
    replay_counts_init(&c);
    c.records = b->n;
    filter_records(r, b, &c);
    normalize_batch(&r->w, b, 0);
    filter_events(r, b, &c);

    if (with_pg_retry(r, dedup_lookup, b) < 0) goto out;
    if (r->dry_run) {
        dry_run_claims(r, b);
    } else if (any_fresh(b)) {
        if (with_pg_retry(r, dedup_claim, b) < 0) goto out;
    }
    store_dead_letters(r, b, &c);
    if (!r->dry_run) {
        rc = emit_batch(&r->w, b);
        if (rc != 0) goto out;
        c.batches = 1;
    }
    count_events(b, &c);
    for (size_t i = 0; i < b->n; i++) {
        struct replay_part *pt = part_of(r, b->recs[i].rkm->partition);
        if (pt && b->recs[i].rkm->offset + 1 > pt->committed) pt->committed = b->recs[i].rkm->offset + 1;
    }
    replay_counts_add(&r->run, &c);
    replay_counts_add(&r->total, &c);
    if (!r->dry_run) {
        char err[1024];
        /* Informational (the checkpoint is in Kafka): a failure here only warns. */
        if (replay_checkpoint_progress(r->w.pg, &r->spec, &r->total, "running", err, sizeof(err)) < 0)
            mh_warn("%s", err);
    }
    rc = 0;
out:
    /* After the Kafka transaction ended, or after a failed claim: never before. */
    if (!r->dry_run && r->spec.apply_suppression) suppression_release(&r->w);
    replay_counts_fini(&c);
    return rc;
}

/* Sleeps up to ms, returning early on a signal. */
static void nap(struct replay *r, int ms)
{
    for (; ms > 0 && !r->w.stop; ms -= 50) usleep(50 * 1000);
}

static enum replay_outcome run_loop(struct replay *r)
{
    int aborts = 0; /* in a row: a permanent error (record too large, no ACL) must end */
    for (;;) {
        if (r->w.stop) return r->w.stop == 2 ? REPLAY_FAILED : REPLAY_INTERRUPTED;
        if (all_read(r)) return REPLAY_DONE;
        struct batch b = {0};
        collect(r, &b);
        if (b.n == 0) {
            batch_free(&b);
            continue;
        }
        int rc = process(r, &b);
        batch_free(&b);
        if (rc < 0) return r->w.stop == 1 ? REPLAY_INTERRUPTED : REPLAY_FAILED;
        if (rc == 1) {
            char err[512];
            if (after_abort(r, err, sizeof(err)) < 0) {
                replay_progress_clear(&r->progress);
                fprintf(stderr, "mailhook replay: %s\n", err);
                return REPLAY_FAILED;
            }
            if (++aborts >= MAX_ABORTS_IN_A_ROW) {
                replay_progress_clear(&r->progress);
                fprintf(stderr,
                        "mailhook replay: the same batch was aborted %d times in a row, nothing "
                        "of it was written; the Kafka errors are logged at level warn%s\n",
                        aborts, r->progress.enabled ? " (MAILHOOK_LOG_LEVEL=warn shows them)" : "");
                return REPLAY_FAILED;
            }
            nap(r, 250 << (aborts - 1));
        } else {
            aborts = 0;
        }
        replay_progress_draw(&r->progress, &r->spec, &r->run, 0);
    }
}

/* --- setting a replay up --------------------------------------------------------------- */

static int build_spec(struct replay *r, const struct mh_config *cfg, const struct replay_opts *o,
                      char *err, size_t errlen)
{
    struct replay_spec *s = &r->spec;
    s->raw_topic = mh_strdup(cfg->worker.raw_topic);
    s->to_topic = o->dry_run || !o->to_topic ? NULL : mh_strdup(o->to_topic);
    s->dlq_topic = o->dry_run || !o->dlq_topic ? NULL : mh_strdup(o->dlq_topic);
    for (size_t i = 0; i < o->sources.n; i++) replay_names_add(&s->sources, o->sources.v[i]);
    for (size_t i = 0; i < o->providers.n; i++) replay_names_add(&s->providers, o->providers.v[i]);
    for (size_t i = 0; i < o->types.n; i++) replay_names_add(&s->types, o->types.v[i]);
    s->apply_suppression = o->apply_suppression;
    if (replay_range_resolve(r->w.consumer, s, o->from_offsets, o->since, o->from_beginning,
                             o->until, err, errlen) < 0)
        return -1;
    if (!o->ignore_live &&
        replay_range_clamp_live(cfg, o->live_group ? o->live_group : cfg->worker.group_id, s,
                                0, err, errlen) < 0)
        return -1;
    return 0;
}

static int list_replays(struct mh_config *cfg, int json)
{
    struct worker w = {0};
    char err[1024];
    w.cfg = cfg;
    int rc = 1;
    if (dedup_connect(&w, err, sizeof(err)) == 0 &&
        replay_checkpoint_list(w.pg, stdout, json, err, sizeof(err)) == 0)
        rc = 0;
    else
        fprintf(stderr, "mailhook replay: %s\n", err);
    if (w.pg) PQfinish(w.pg);
    return rc;
}

static int replay_main(struct replay *r, struct mh_config *cfg, const struct replay_opts *o)
{
    static char txn_prefix[] = REPLAY_PREFIX;
    char err[1024];
    int resumed = o->resume != NULL;
    enum replay_outcome outcome = REPLAY_FAILED;
    int64_t t0 = 0;

    r->cfg = *cfg;
    r->w.cfg = &r->cfg;
    r->dry_run = o->dry_run;
    r->batch_size = o->batch_size ? o->batch_size : cfg->worker.batch_size;
    replay_counts_init(&r->run);
    replay_counts_init(&r->total);
    r->seen = json_object();

    if (resumed) {
        char *status = NULL;
        if (dedup_connect(&r->w, err, sizeof(err)) < 0 ||
            replay_checkpoint_load(r->w.pg, o->resume, &r->spec, &r->total, &status, err,
                                   sizeof(err)) < 0)
            goto fail;
        int done = !strcmp(status, "done");
        free(status);
        r->stored = 1;
        if (done) {
            for (size_t i = 0; i < r->spec.n_parts; i++)
                r->spec.parts[i].next = r->spec.parts[i].committed = r->spec.parts[i].end;
            fprintf(stderr, "mailhook replay: replay %s is complete already\n", r->spec.id);
            replay_summary(stdout, o->json, &r->spec, 0, 1, REPLAY_DONE, &r->run, &r->total, 0);
            return 0;
        }
        if (strcmp(r->spec.raw_topic, cfg->worker.raw_topic))
            fprintf(stderr, "mailhook replay: note: replay %s reads %s, not [worker] raw_topic %s\n",
                    r->spec.id, r->spec.raw_topic, cfg->worker.raw_topic);
    }
    if (!resumed && !o->dry_run) r->spec.id = o->id ? mh_strdup(o->id) : new_id();
    if (asprintf(&r->group, "%s-%s", REPLAY_PREFIX, r->spec.id ? r->spec.id : "dry-run") < 0)
        mh_oom();
    if (consumer_new(r, err, sizeof(err)) < 0) goto fail;

    if (!resumed) {
        if (build_spec(r, cfg, o, err, sizeof(err)) < 0) goto fail;
        if (!o->dry_run) {
            if (replay_topic_ensure(r->w.consumer, cfg, r->spec.to_topic, err, sizeof(err)) < 0 ||
                (r->spec.dlq_topic &&
                 replay_topic_ensure(r->w.consumer, cfg, r->spec.dlq_topic, err, sizeof(err)) < 0) ||
                dedup_connect(&r->w, err, sizeof(err)) < 0 ||
                replay_checkpoint_create(r->w.pg, &r->spec, err, sizeof(err)) < 0)
                goto fail;
            r->stored = 1;
        }
    }
    r->w.skip_suppression = !r->spec.apply_suppression;

    uint64_t n_records = 0;
    for (size_t i = 0; i < r->spec.n_parts; i++)
        n_records += (uint64_t)(r->spec.parts[i].end - r->spec.parts[i].start);
    if (r->dry_run) {
        fprintf(stderr, "mailhook replay: dry run over %llu records in %zu partitions of %s\n",
                (unsigned long long)n_records, r->spec.n_parts, r->spec.raw_topic);
    } else {
        /* Events to the target, dead letters to --dlq-topic (or nowhere), and
         * transactional.id mailhook-replay-<id> (emit_init names it <group_id>-<instance>). */
        r->cfg.worker.events_topic = r->spec.to_topic;
        if (r->spec.dlq_topic) r->cfg.worker.dlq_topic = r->spec.dlq_topic;
        r->cfg.worker.group_id = txn_prefix;
        r->w.instance = r->spec.id;
        fprintf(stderr,
                "mailhook replay: replay %s: %llu records in %zu partitions of %s -> %s%s\n"
                "mailhook replay: after an interruption, continue with: mailhook replay --resume %s\n",
                r->spec.id, (unsigned long long)n_records, r->spec.n_parts, r->spec.raw_topic,
                r->spec.to_topic, resumed ? " (resuming)" : "", r->spec.id);
        if (emit_init(&r->w, err, sizeof(err)) < 0) goto fail;
    }
    if ((!r->dry_run && positions_init(r, resumed, err, sizeof(err)) < 0) ||
        assign(r, err, sizeof(err)) < 0)
        goto fail;

    replay_progress_start(&r->progress, &r->spec);
    t0 = mh_mono_ms();
    outcome = run_loop(r);
    goto report;

fail:
    fprintf(stderr, "mailhook replay: %s\n", err);
    if (!r->stored) return 1;
    if (r->w.stop == 1) outcome = REPLAY_INTERRUPTED;
report:
    replay_progress_clear(&r->progress);
    double elapsed = t0 ? (double)(mh_mono_ms() - t0) / 1000.0 : 0;
    if (r->stored && r->w.pg) {
        const char *status = outcome == REPLAY_DONE          ? "done"
                             : outcome == REPLAY_INTERRUPTED ? "interrupted"
                                                             : "failed";
        if (replay_checkpoint_progress(r->w.pg, &r->spec, &r->total, status, err, sizeof(err)) < 0)
            fprintf(stderr, "mailhook replay: %s\n", err);
    }
    replay_summary(stdout, o->json, &r->spec, r->dry_run, resumed, outcome, &r->run, &r->total,
                   elapsed);
    return outcome == REPLAY_DONE ? 0 : outcome == REPLAY_INTERRUPTED ? 130 : 1;
}

static void replay_free(struct replay *r)
{
    if (r->w.consumer) {
        rd_kafka_consumer_close(r->w.consumer);
        rd_kafka_destroy(r->w.consumer);
    }
    if (r->w.producer) {
        rd_kafka_flush(r->w.producer, 5000);
        rd_kafka_destroy(r->w.producer);
    }
    if (r->w.pg) PQfinish(r->w.pg);
    replay_spec_free(&r->spec);
    replay_counts_fini(&r->run);
    replay_counts_fini(&r->total);
    json_decref(r->seen);
    free(r->index);
    free(r->group);
}

/* --- options ---------------------------------------------------------------------------- */

enum {
    O_FROM_OFFSETS = 256, O_SINCE, O_FROM_BEGINNING, O_UNTIL, O_SOURCE, O_PROVIDER, O_TYPE,
    O_TO_TOPIC, O_YES, O_DLQ_TOPIC, O_DRY_RUN, O_APPLY, O_ID, O_RESUME, O_LIST, O_BATCH,
    O_IGNORE_LIVE, O_LIVE_GROUP, O_JSON, O_NO_PROGRESS,
};

static int usage_error(const char *fmt, const char *arg)
{
    fputs("mailhook replay: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(mailhook replay --help describes the options)\n", stderr);
    return 2;
}

static int parse_opts(struct replay_opts *o, int argc, char **argv, int *help)
{
    static const struct option opts[] = {
        {"from-offsets", required_argument, NULL, O_FROM_OFFSETS},
        {"since", required_argument, NULL, O_SINCE},
        {"from-beginning", no_argument, NULL, O_FROM_BEGINNING},
        {"until", required_argument, NULL, O_UNTIL},
        {"source", required_argument, NULL, O_SOURCE},
        {"provider", required_argument, NULL, O_PROVIDER},
        {"type", required_argument, NULL, O_TYPE},
        {"to-topic", required_argument, NULL, O_TO_TOPIC},
        {"yes", no_argument, NULL, O_YES},
        {"dlq-topic", required_argument, NULL, O_DLQ_TOPIC},
        {"dry-run", no_argument, NULL, O_DRY_RUN},
        {"apply-suppression", no_argument, NULL, O_APPLY},
        {"id", required_argument, NULL, O_ID},
        {"resume", required_argument, NULL, O_RESUME},
        {"list", no_argument, NULL, O_LIST},
        {"batch-size", required_argument, NULL, O_BATCH},
        {"ignore-live", no_argument, NULL, O_IGNORE_LIVE},
        {"live-group", required_argument, NULL, O_LIVE_GROUP},
        {"json", no_argument, NULL, O_JSON},
        {"no-progress", no_argument, NULL, O_NO_PROGRESS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_FROM_OFFSETS: o->from_offsets = optarg; break;
        case O_SINCE: o->since = optarg; break;
        case O_FROM_BEGINNING: o->from_beginning = 1; break;
        case O_UNTIL: o->until = optarg; break;
        case O_SOURCE: replay_names_add(&o->sources, optarg); break;
        case O_PROVIDER: replay_names_add(&o->providers, optarg); break;
        case O_TYPE: replay_names_add(&o->types, optarg); break;
        case O_TO_TOPIC: o->to_topic = optarg; break;
        case O_YES: o->yes = 1; break;
        case O_DLQ_TOPIC: o->dlq_topic = optarg; break;
        case O_DRY_RUN: o->dry_run = 1; break;
        case O_APPLY: o->apply_suppression = 1; break;
        case O_ID: o->id = optarg; break;
        case O_RESUME: o->resume = optarg; break;
        case O_LIST: o->list = 1; break;
        case O_BATCH: {
            char *end;
            o->batch_size = strtol(optarg, &end, 10);
            if (*end || o->batch_size < 1 || o->batch_size > 100000)
                return usage_error("--batch-size: expected 1..100000, not \"%s\"", optarg);
            break;
        }
        case O_IGNORE_LIVE: o->ignore_live = 1; break;
        case O_LIVE_GROUP: o->live_group = optarg; break;
        case O_JSON: o->json = 1; break;
        case O_NO_PROGRESS: o->no_progress = 1; break;
        case 'h': *help = 1; return 0;
        default: return usage_error("%s", "unknown option");
        }
    }
    if (optind != argc) return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (o->list) {
        if (o->resume || o->from_offsets || o->since || o->from_beginning || o->to_topic || o->dry_run)
            return usage_error("%s", "--list takes no other option than --json");
        return 0;
    }
    if (o->resume) {
        if (o->from_offsets || o->since || o->from_beginning || o->until || o->sources.n ||
            o->providers.n || o->types.n || o->to_topic || o->dlq_topic || o->dry_run ||
            o->apply_suppression || o->id || o->ignore_live || o->live_group || o->yes)
            return usage_error("%s", "a replay's range, filters and targets are fixed when it is "
                                     "created: --resume takes only --batch-size, --json and "
                                     "--no-progress");
        if (!valid_id(o->resume)) return usage_error("--resume: invalid id \"%s\"", o->resume);
        return 0;
    }
    int ranges = !!o->from_offsets + !!o->since + o->from_beginning;
    if (ranges != 1)
        return usage_error("%s", "give exactly one of --from-offsets, --since, --from-beginning");
    if (!o->to_topic && !o->dry_run) return usage_error("%s", "give --to-topic TOPIC or --dry-run");
    if (o->id && !valid_id(o->id))
        return usage_error("--id: \"%s\" may hold only letters, digits, '-', '_' and '.' (at most "
                           "100)", o->id);
    if (o->id && o->dry_run) return usage_error("%s", "a dry run has no id (it stores nothing)");
    return 0;
}

int cmd_replay(struct mh_config *cfg, int argc, char **argv)
{
    struct replay_opts o = {0};
    int help = 0;
    int rc = parse_opts(&o, argc, argv, &help);
    if (rc || help || !cfg) {
        if (help) fputs(usage, stdout);
        else if (!rc) fputs(usage, stderr);
        replay_names_free(&o.sources);
        replay_names_free(&o.providers);
        replay_names_free(&o.types);
        return help ? 0 : rc ? rc : 2;
    }
    if (o.list) {
        rc = list_replays(cfg, o.json);
        goto out;
    }
    char err[1024];
    if (!o.resume && check_targets(cfg, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "mailhook replay: %s\n", err);
        rc = 1;
        goto out;
    }

    struct replay r = {0};
    r.progress.enabled = !o.no_progress && isatty(STDERR_FILENO);
    if (!getenv("MAILHOOK_LOG_LEVEL"))
        mh_log_threshold = r.progress.enabled ? MH_LOG_ERROR : MH_LOG_WARN;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    the_replay = &r;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal(SIGPIPE, SIG_IGN);

    rc = replay_main(&r, cfg, &o);

    replay_free(&r);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    the_replay = NULL;
out:
    replay_names_free(&o.sources);
    replay_names_free(&o.providers);
    replay_names_free(&o.types);
    return rc;
}
