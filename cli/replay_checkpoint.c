/*
 * replay_checkpoint.c — table mh_replay_checkpoints (migrations/0100): a replay's fixed
 * definition ("spec") and its progress.
 *
 * The exact resume point lives in Kafka, not here: every batch's output and the next
 * offsets commit in one Kafka transaction to the consumer group mailhook-replay-<id>
 * (replay.c). The row written here after each commit is for operators (`--list`, the
 * totals of a resumed replay) and the fallback position when Kafka no longer holds the
 * group's offsets (offsets.retention.minutes after the replay stopped).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"
#include "mailhook/pg.h"
#include "replay.h"

/* mh_pg_ok, with a hint when the table is missing. */
static int pg_failed(PGresult *res, ExecStatusType want, const char *what, char *err,
                     size_t errlen)
{
    if (mh_pg_ok(res, want, what, err, errlen) == 0) return 0;
    if (!strcmp(mh_pg_sqlstate(res), "42P01"))
        snprintf(err, errlen, "postgres %s: table mh_replay_checkpoints does not exist (run `mailhook migrate`)",
                 what);
    return -1;
}

static json_t *names_json(const struct replay_names *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++) json_array_append_new(a, json_string(l->v[i]));
    return a;
}

static void names_from_json(struct replay_names *l, json_t *a)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (json_is_string(v)) replay_names_add(l, json_string_value(v));
    }
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static char *dup_or_null(json_t *v)
{
    return json_is_string(v) ? mh_strdup(json_string_value(v)) : NULL;
}

static json_t *spec_json(const struct replay_spec *s)
{
    json_t *ranges = json_array();
    for (size_t i = 0; i < s->n_parts; i++)
        json_array_append_new(ranges, json_pack("{s:i, s:I, s:I}", "partition",
                                                (int)s->parts[i].partition, "start",
                                                (json_int_t)s->parts[i].start, "end",
                                                (json_int_t)s->parts[i].end));
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:o}", "raw_topic", s->raw_topic,
                     "to_topic", str_or_null(s->to_topic), "dlq_topic", str_or_null(s->dlq_topic),
                     "sources", names_json(&s->sources), "providers", names_json(&s->providers),
                     "types", names_json(&s->types), "apply_suppression", s->apply_suppression,
                     "ranges", ranges);
}

static json_t *progress_json(const struct replay_spec *s, const struct replay_counts *total)
{
    json_t *p = total ? replay_counts_json(total) : json_object();
    json_t *pos = json_object();
    for (size_t i = 0; i < s->n_parts; i++) {
        char k[16];
        snprintf(k, sizeof(k), "%d", (int)s->parts[i].partition);
        json_object_set_new(pos, k, json_integer((json_int_t)s->parts[i].committed));
    }
    json_object_set_new(p, "positions", pos);
    return p;
}

static char *dump(json_t *j)
{
    char *txt = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!txt) mh_oom();
    json_decref(j);
    return txt;
}

int replay_checkpoint_create(PGconn *pg, const struct replay_spec *s, char *err, size_t errlen)
{
    char *spec = dump(spec_json(s));
    char *progress = dump(progress_json(s, NULL));
    const char *params[] = {s->id, spec, progress};
    PGresult *res = PQexecParams(pg,
                                 "INSERT INTO mh_replay_checkpoints (replay_id, spec, progress)"
                                 " VALUES ($1, $2::jsonb, $3::jsonb)"
                                 " ON CONFLICT (replay_id) DO NOTHING RETURNING replay_id",
                                 3, NULL, params, NULL, NULL, 0);
    int rc = pg_failed(res, PGRES_TUPLES_OK, "record the replay", err, errlen);
    if (rc == 0 && PQntuples(res) == 0) {
        snprintf(err, errlen,
                 "replay \"%s\" exists already; continue it with --resume %s, or choose another --id",
                 s->id, s->id);
        rc = -1;
    }
    PQclear(res);
    free(spec);
    free(progress);
    return rc;
}

int replay_checkpoint_load(PGconn *pg, const char *id, struct replay_spec *s,
                           struct replay_counts *total, char **status, char *err, size_t errlen)
{
    const char *params[] = {id};
    PGresult *res = PQexecParams(pg,
                                 "SELECT spec::text, progress::text, status"
                                 " FROM mh_replay_checkpoints WHERE replay_id = $1",
                                 1, NULL, params, NULL, NULL, 0);
    json_t *spec = NULL, *progress = NULL;
    int rc = -1;
    if (pg_failed(res, PGRES_TUPLES_OK, "load the replay", err, errlen) < 0) goto out;
    if (PQntuples(res) == 0) {
        snprintf(err, errlen, "no replay \"%s\" (`mailhook replay --list` shows them)", id);
        goto out;
    }
    json_error_t jerr;
    spec = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
    progress = json_loads(PQgetvalue(res, 0, 1), 0, &jerr);
    json_t *ranges = json_object_get(spec, "ranges");
    if (!json_is_string(json_object_get(spec, "raw_topic")) || !json_is_array(ranges)) {
        snprintf(err, errlen, "replay \"%s\": its stored definition is unreadable", id);
        goto out;
    }
    s->id = mh_strdup(id);
    s->raw_topic = dup_or_null(json_object_get(spec, "raw_topic"));
    s->to_topic = dup_or_null(json_object_get(spec, "to_topic"));
    s->dlq_topic = dup_or_null(json_object_get(spec, "dlq_topic"));
    names_from_json(&s->sources, json_object_get(spec, "sources"));
    names_from_json(&s->providers, json_object_get(spec, "providers"));
    names_from_json(&s->types, json_object_get(spec, "types"));
    s->apply_suppression = json_is_true(json_object_get(spec, "apply_suppression"));
    s->n_parts = json_array_size(ranges);
    s->parts = mh_calloc(s->n_parts ? s->n_parts : 1, sizeof(*s->parts));
    json_t *positions = json_object_get(progress, "positions");
    for (size_t i = 0; i < s->n_parts; i++) {
        json_t *r = json_array_get(ranges, i);
        struct replay_part *pt = &s->parts[i];
        pt->partition = (int32_t)json_integer_value(json_object_get(r, "partition"));
        pt->start = json_integer_value(json_object_get(r, "start"));
        pt->end = json_integer_value(json_object_get(r, "end"));
        pt->next = pt->committed = pt->start;
        char k[16];
        snprintf(k, sizeof(k), "%d", (int)pt->partition);
        json_int_t pos = json_integer_value(json_object_get(positions, k));
        if (pos > pt->start && pos <= pt->end) pt->committed = pos;
    }
    if (total) replay_counts_from_json(total, progress);
    if (status) *status = mh_strdup(PQgetvalue(res, 0, 2));
    rc = 0;
out:
    json_decref(spec);
    json_decref(progress);
    PQclear(res);
    return rc;
}

int replay_checkpoint_progress(PGconn *pg, const struct replay_spec *s,
                               const struct replay_counts *total, const char *status, char *err,
                               size_t errlen)
{
    char *progress = dump(progress_json(s, total));
    const char *params[] = {s->id, progress, status};
    PGresult *res = PQexecParams(pg,
                                 "UPDATE mh_replay_checkpoints SET progress = $2::jsonb,"
                                 " status = $3, updated_at = now() WHERE replay_id = $1",
                                 3, NULL, params, NULL, NULL, 0);
    int rc = pg_failed(res, PGRES_COMMAND_OK, "record progress", err, errlen);
    PQclear(res);
    free(progress);
    return rc;
}

int replay_checkpoint_list(PGconn *pg, FILE *out, int json, char *err, size_t errlen)
{
    PGresult *res = PQexec(pg,
                           "SELECT replay_id, status, spec::text, progress::text,"
                           " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                           " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                           " FROM mh_replay_checkpoints ORDER BY created_at, replay_id");
    if (pg_failed(res, PGRES_TUPLES_OK, "list replays", err, errlen) < 0) {
        PQclear(res);
        return -1;
    }
    json_t *all = json_array();
    if (!json) fprintf(out, "%-32s %-11s %6s %12s %12s  %-20s %s\n", "ID", "STATUS", "DONE",
                       "RECORDS", "EVENTS", "UPDATED", "TARGET");
    for (int row = 0; row < PQntuples(res); row++) {
        json_error_t jerr;
        json_t *spec = json_loads(PQgetvalue(res, row, 2), 0, &jerr);
        json_t *progress = json_loads(PQgetvalue(res, row, 3), 0, &jerr);
        json_t *positions = json_object_get(progress, "positions");
        int64_t todo = 0, done = 0;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(spec, "ranges"), i, r) {
            json_int_t start = json_integer_value(json_object_get(r, "start"));
            json_int_t end = json_integer_value(json_object_get(r, "end"));
            char k[16];
            snprintf(k, sizeof(k), "%d", (int)json_integer_value(json_object_get(r, "partition")));
            json_int_t pos = json_integer_value(json_object_get(positions, k));
            if (pos < start) pos = start;
            if (pos > end) pos = end;
            todo += end - start;
            done += pos - start;
        }
        double pct = todo ? 100.0 * (double)done / (double)todo : 100.0;
        const char *target = json_string_value(json_object_get(spec, "to_topic"));
        if (json) {
            json_array_append_new(all, json_pack("{s:s, s:s, s:s, s:s, s:f, s:O, s:O}",
                                                 "replay_id", PQgetvalue(res, row, 0),
                                                 "status", PQgetvalue(res, row, 1),
                                                 "created_at", PQgetvalue(res, row, 4),
                                                 "updated_at", PQgetvalue(res, row, 5),
                                                 "percent_done", pct, "spec",
                                                 spec ? spec : json_null(), "progress",
                                                 progress ? progress : json_null()));
        } else {
            fprintf(out, "%-32s %-11s %5.1f%% %12lld %12lld  %-20s %s\n", PQgetvalue(res, row, 0),
                    PQgetvalue(res, row, 1), pct,
                    (long long)json_integer_value(json_object_get(progress, "records")),
                    (long long)json_integer_value(json_object_get(progress, "events_written")),
                    PQgetvalue(res, row, 5), target ? target : "-");
        }
        json_decref(spec);
        json_decref(progress);
    }
    if (json) {
        char *txt = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) fprintf(out, "%s\n", txt);
        free(txt);
    }
    json_decref(all);
    PQclear(res);
    return 0;
}
