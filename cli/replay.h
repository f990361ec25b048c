/*
 * replay.h — what the files of `mailhook replay` share.
 *
 *   replay.c             options, the batch loop, resume, exit status
 *   replay_range.c       which offsets a replay covers: --from-offsets, --since/--until
 *                        (Kafka's offsets-for-times), watermarks, the live workers'
 *                        position; creating the target topic
 *   replay_checkpoint.c  table mh_replay_checkpoints: a replay's fixed definition and its
 *                        progress, so --resume continues the same replay
 *   replay_report.c      counters, the progress bar and the final summary
 *
 * A replay is defined once, when it is created: the raw topic, one [start, end) offset
 * range per partition, the filters, the target topics and whether suppression effects
 * apply. Nothing of that changes on resume, so an interrupted replay resumed covers
 * exactly what an uninterrupted one would have.
 */
#ifndef MH_CLI_REPLAY_H
#define MH_CLI_REPLAY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>

#include "mailhook/config.h"

struct replay_part {
    int32_t partition;
    int64_t start;     /* first offset of the range */
    int64_t end;       /* exclusive end, fixed when the replay is created */
    int64_t next;      /* next offset to read */
    int64_t committed; /* next offset after the last committed batch (the checkpoint) */
    int paused;        /* fetching stopped: next reached end */
};

/* A list of names from repeatable, comma-separated options (--source a,b --source c). */
struct replay_names {
    char **v;
    size_t n;
};

struct replay_spec {
    char *id;
    char *raw_topic;
    char *to_topic;  /* NULL in a dry run */
    char *dlq_topic; /* NULL: dead letters are counted, not written */
    struct replay_names sources, providers, types;
    int apply_suppression;
    struct replay_part *parts;
    size_t n_parts;
};

struct replay_counts {
    uint64_t records;          /* raw records read within the range */
    uint64_t records_filtered; /* records skipped by --source / --provider */
    uint64_t events;           /* events written (in a dry run: that would be) */
    uint64_t duplicates;       /* events claimed by another raw record: not written */
    uint64_t events_filtered;  /* events skipped by --type */
    uint64_t dead_letters;     /* records that cannot be parsed or stored */
    uint64_t claimed_anew;     /* events whose claim had expired, claimed by this replay */
    uint64_t batches;          /* committed Kafka transactions */
    json_t *by_type;           /* type -> events written */
    json_t *by_source;         /* source -> events written */
};

/* replay.c */
void replay_names_add(struct replay_names *l, const char *csv);
int replay_names_has(const struct replay_names *l, const char *name);
void replay_names_free(struct replay_names *l);
void replay_spec_free(struct replay_spec *s);

/* replay_range.c — all take a consumer handle `rk` (any client works for these calls). */

/*
 * Fills s->parts from the options: --from-offsets "P:O,..." (only those partitions),
 * --since TIME or --from-beginning (every partition), and --until TIME or "P:O,..."
 * (default: each partition's end now). 0, or -1 with err.
 */
int replay_range_resolve(rd_kafka_t *rk, struct replay_spec *s, const char *from_offsets,
                         const char *since, int from_beginning, const char *until, char *err,
                         size_t errlen);
/*
 * Ends no partition's range beyond what the live workers (consumer group `group`) have
 * committed: records past it may not be claimed yet, and a replay must never claim
 * before the live pipeline does. Prints a note on stderr for each partition it shortens
 * unless quiet. 0, or -1 with err when the group's offsets cannot be read.
 */
int replay_range_clamp_live(const struct mh_config *cfg, const char *group, struct replay_spec *s,
                            int quiet, char *err, size_t errlen);
/* Creates topic when missing, with as many partitions as the live events topic. */
int replay_topic_ensure(rd_kafka_t *rk, const struct mh_config *cfg, const char *topic, char *err,
                        size_t errlen);
/* rd_kafka_committed, retried for up to 30 s while the group coordinator is moving or
 * loading, or a transaction is still committing offsets. */
rd_kafka_resp_err_t replay_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l);
/* 1 when text looks like "P:O[,P:O...]" rather than a time. */
int replay_is_offsets(const char *text);

/* replay_checkpoint.c */

/* Records a new replay; -1 with err when the id is taken or the table is missing. */
int replay_checkpoint_create(PGconn *pg, const struct replay_spec *s, char *err, size_t errlen);
/*
 * Loads replay id into s (parts' start and end; next/committed set to start) and its
 * progress: the totals so far into total (optional) and the positions recorded with the
 * last progress update into s->parts[i].committed when they are past start. *status gets
 * a copy of the status (caller frees). 0, or -1 with err.
 */
int replay_checkpoint_load(PGconn *pg, const char *id, struct replay_spec *s,
                           struct replay_counts *total, char **status, char *err, size_t errlen);
/* Stores the positions (parts' committed), the totals and the status. 0, or -1 with err. */
int replay_checkpoint_progress(PGconn *pg, const struct replay_spec *s,
                               const struct replay_counts *total, const char *status, char *err,
                               size_t errlen);
/* Prints every replay with its status and progress. 0, or -1 with err. */
int replay_checkpoint_list(PGconn *pg, FILE *out, int json, char *err, size_t errlen);

/* replay_report.c */
void replay_counts_init(struct replay_counts *c);
void replay_counts_fini(struct replay_counts *c);
/* Adds the per-key counts of from into into (scalars and by_type/by_source). */
void replay_counts_add(struct replay_counts *into, const struct replay_counts *from);
void replay_counts_bump(json_t *map, const char *key);
json_t *replay_counts_json(const struct replay_counts *c);
void replay_counts_from_json(struct replay_counts *c, json_t *obj);

struct replay_progress {
    int enabled;        /* stderr is a terminal and --no-progress was not given */
    int64_t started_ms; /* monotonic */
    int64_t drawn_ms;
    uint64_t total;     /* records to read in this run */
    int visible;        /* a bar is on the terminal line */
};

void replay_progress_start(struct replay_progress *p, const struct replay_spec *s);
/* Redraws the bar (at most every 200 ms unless force). */
void replay_progress_draw(struct replay_progress *p, const struct replay_spec *s,
                          const struct replay_counts *run, int force);
void replay_progress_clear(struct replay_progress *p);

enum replay_outcome { REPLAY_DONE, REPLAY_INTERRUPTED, REPLAY_FAILED };

/*
 * The final summary on out: this run's counts, the totals of the replay across resumes,
 * per-partition positions; as one JSON object with json.
 */
void replay_summary(FILE *out, int json, const struct replay_spec *s, int dry_run, int resumed,
                    enum replay_outcome outcome, const struct replay_counts *run,
                    const struct replay_counts *total, double elapsed_s);

#endif
