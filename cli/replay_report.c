/*
 * replay_report.c — what `mailhook replay` tells its operator: counters, a progress bar
 * on a terminal (stderr) and one final summary (stdout; a JSON object with --json).
 *
 * The bar shows how far the read position is from the range's end: records/s and
 * events/s since this run started, the records left (lag to the end offsets) and the ETA
 * at the current rate. It is redrawn in place at most five times a second and erased
 * before the summary, so the summary is clean text on both terminals and pipes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"
#include "mailhook/timeutil.h"
#include "replay.h"

void replay_counts_init(struct replay_counts *c)
{
    memset(c, 0, sizeof(*c));
    c->by_type = json_object();
    c->by_source = json_object();
}

void replay_counts_fini(struct replay_counts *c)
{
    json_decref(c->by_type);
    json_decref(c->by_source);
    memset(c, 0, sizeof(*c));
}

static void add_map(json_t *into, json_t *from)
{
    const char *k;
    json_t *v;
    json_object_foreach(from, k, v) {
        json_int_t have = json_integer_value(json_object_get(into, k));
        json_object_set_new(into, k, json_integer(have + json_integer_value(v)));
    }
}

void replay_counts_add(struct replay_counts *into, const struct replay_counts *from)
{
    into->records += from->records;
    into->records_filtered += from->records_filtered;
    into->events += from->events;
    into->duplicates += from->duplicates;
    into->events_filtered += from->events_filtered;
    into->dead_letters += from->dead_letters;
    into->claimed_anew += from->claimed_anew;
    into->batches += from->batches;
    add_map(into->by_type, from->by_type);
    add_map(into->by_source, from->by_source);
}

void replay_counts_bump(json_t *map, const char *key)
{
    if (!key) key = "(none)";
    json_int_t have = json_integer_value(json_object_get(map, key));
    json_object_set_new(map, key, json_integer(have + 1));
}

/* The counter names, shared by the JSON summary and the stored progress. */
#define COUNTERS(X)                                                                        \
    X(records, "records")                                                                  \
    X(records_filtered, "records_filtered")                                                \
    X(events, "events_written")                                                            \
    X(duplicates, "duplicates_skipped")                                                    \
    X(events_filtered, "events_filtered")                                                  \
    X(dead_letters, "dead_letters")                                                        \
    X(claimed_anew, "claimed_anew")                                                        \
    X(batches, "batches")

json_t *replay_counts_json(const struct replay_counts *c)
{
    json_t *o = json_object();
#define SET(field, name) json_object_set_new(o, name, json_integer((json_int_t)c->field));
    COUNTERS(SET)
#undef SET
    json_object_set(o, "by_type", c->by_type);
    json_object_set(o, "by_source", c->by_source);
    return o;
}

void replay_counts_from_json(struct replay_counts *c, json_t *o)
{
#define GET(field, name) c->field = (uint64_t)json_integer_value(json_object_get(o, name));
    COUNTERS(GET)
#undef GET
    if (json_is_object(json_object_get(o, "by_type"))) add_map(c->by_type, json_object_get(o, "by_type"));
    if (json_is_object(json_object_get(o, "by_source")))
        add_map(c->by_source, json_object_get(o, "by_source"));
}

static uint64_t left_to_read(const struct replay_spec *s)
{
    uint64_t left = 0;
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].next < s->parts[i].end) left += (uint64_t)(s->parts[i].end - s->parts[i].next);
    return left;
}

void replay_progress_start(struct replay_progress *p, const struct replay_spec *s)
{
    p->started_ms = mh_mono_ms();
    p->drawn_ms = 0;
    p->total = left_to_read(s);
    p->visible = 0;
}

/* 1234567 -> "1.2M"; below 10000 the plain number. */
static void human(char *out, size_t len, double v)
{
    if (v < 10000) snprintf(out, len, "%.0f", v);
    else if (v < 1e6) snprintf(out, len, "%.1fk", v / 1e3);
    else if (v < 1e9) snprintf(out, len, "%.1fM", v / 1e6);
    else snprintf(out, len, "%.1fG", v / 1e9);
}

void replay_progress_draw(struct replay_progress *p, const struct replay_spec *s,
                          const struct replay_counts *run, int force)
{
    if (!p->enabled) return;
    int64_t now = mh_mono_ms();
    if (!force && now - p->drawn_ms < 200) return;
    p->drawn_ms = now;
    double secs = (double)(now - p->started_ms) / 1000.0;
    uint64_t left = left_to_read(s);
    uint64_t done = p->total > left ? p->total - left : 0;
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    double rps = secs > 0 ? (double)run->records / secs : 0;
    double eps = secs > 0 ? (double)run->events / secs : 0;
    char bar[32], r1[16], r2[16], lag[16], eta[24];
    int width = 24, fill = (int)(frac * width);
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '-';
    bar[width] = '\0';
    human(r1, sizeof(r1), rps);
    human(r2, sizeof(r2), eps);
    human(lag, sizeof(lag), (double)left);
    if (left == 0) snprintf(eta, sizeof(eta), "0:00");
    else if (rps < 1) snprintf(eta, sizeof(eta), "--:--");
    else {
        long t = (long)((double)left / rps + 0.5);
        if (t >= 3600) snprintf(eta, sizeof(eta), "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
        else snprintf(eta, sizeof(eta), "%ld:%02ld", t / 60, t % 60);
    }
    fprintf(stderr, "\r\033[K[%s] %5.1f%%  %s rec/s  %s ev/s  lag %s  ETA %s", bar, frac * 100.0,
            r1, r2, lag, eta);
    fflush(stderr);
    p->visible = 1;
}

void replay_progress_clear(struct replay_progress *p)
{
    if (!p->visible) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->visible = 0;
}

/* v rounded to a multiple of step (0.1, 0.001), for readable JSON numbers. */
static double round_to(double v, double step)
{
    return (double)(long long)(v / step + 0.5) * step;
}

static const char *outcome_name(enum replay_outcome o)
{
    return o == REPLAY_DONE ? "done" : o == REPLAY_INTERRUPTED ? "interrupted" : "failed";
}

static void print_map(FILE *out, const char *title, json_t *map)
{
    if (!json_object_size(map)) return;
    fprintf(out, "  %s:\n", title);
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v) {
        fprintf(out, "    %-28s %12lld\n", k, (long long)json_integer_value(v));
    }
}

void replay_summary(FILE *out, int json, const struct replay_spec *s, int dry_run, int resumed,
                    enum replay_outcome outcome, const struct replay_counts *run,
                    const struct replay_counts *total, double elapsed_s)
{
    double rps = elapsed_s > 0 ? (double)run->records / elapsed_s : 0;
    double eps = elapsed_s > 0 ? (double)run->events / elapsed_s : 0;
    if (json) {
        json_t *parts = json_array();
        for (size_t i = 0; i < s->n_parts; i++)
            json_array_append_new(
                parts, json_pack("{s:i, s:I, s:I, s:I}", "partition", (int)s->parts[i].partition,
                                 "start", (json_int_t)s->parts[i].start, "end",
                                 (json_int_t)s->parts[i].end, "position",
                                 (json_int_t)(dry_run ? s->parts[i].next : s->parts[i].committed)));
        json_t *o = json_pack("{s:o, s:s, s:b, s:b, s:s, s:o, s:o}", "replay_id",
                              s->id ? json_string(s->id) : json_null(), "status",
                              outcome_name(outcome), "dry_run", dry_run, "resumed", resumed,
                              "raw_topic", s->raw_topic,
                              "to_topic", s->to_topic ? json_string(s->to_topic) : json_null(),
                              "dlq_topic", s->dlq_topic ? json_string(s->dlq_topic) : json_null());
        json_t *counts = replay_counts_json(run);
        json_object_update(o, counts);
        json_decref(counts);
        json_object_set_new(o, "elapsed_s", json_real(round_to(elapsed_s, 0.001)));
        json_object_set_new(o, "records_per_s", json_real(round_to(rps, 0.1)));
        json_object_set_new(o, "events_per_s", json_real(round_to(eps, 0.1)));
        json_object_set_new(o, "apply_suppression", json_boolean(s->apply_suppression));
        json_object_set_new(o, "partitions", parts);
        if (total) json_object_set_new(o, "totals", replay_counts_json(total));
        char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
        if (txt) fprintf(out, "%s\n", txt);
        free(txt);
        json_decref(o);
        return;
    }
    const char *would = dry_run ? "would be " : "";
    if (dry_run)
        fprintf(out, "replay dry run %s: %s (nothing was written)\n", outcome_name(outcome),
                s->raw_topic);
    else
        fprintf(out, "replay %s %s%s: %s -> %s\n", s->id, outcome_name(outcome),
                resumed ? " (resumed)" : "", s->raw_topic, s->to_topic);
    fprintf(out, "  records read         %12llu", (unsigned long long)run->records);
    if (run->records_filtered)
        fprintf(out, "  (%llu skipped by --source/--provider)",
                (unsigned long long)run->records_filtered);
    fprintf(out, "\n  events %-13s %12llu", dry_run ? "to write" : "written",
            (unsigned long long)run->events);
    if (run->events_filtered)
        fprintf(out, "  (%llu skipped by --type)", (unsigned long long)run->events_filtered);
    fprintf(out, "\n  duplicates skipped   %12llu\n", (unsigned long long)run->duplicates);
    fprintf(out, "  claimed anew         %12llu  (claims had expired; %sclaimed by this replay)\n",
            (unsigned long long)run->claimed_anew, would);
    fprintf(out, "  dead letters         %12llu  (%s)\n", (unsigned long long)run->dead_letters,
            s->dlq_topic ? s->dlq_topic : "counted, not written");
    fprintf(out, "  elapsed              %12.1f s  (%.0f records/s, %.0f events/s)\n", elapsed_s,
            rps, eps);
    print_map(out, dry_run ? "events to write by type" : "events written by type", run->by_type);
    print_map(out, dry_run ? "events to write by source" : "events written by source",
              run->by_source);
    if (resumed && total)
        fprintf(out, "  whole replay so far: %llu records read, %llu events written\n",
                (unsigned long long)total->records, (unsigned long long)total->events);
    if (outcome != REPLAY_DONE && !dry_run)
        fprintf(out, "  continue with: mailhook replay --resume %s\n", s->id);
}
