/*
 * dedup.c — event claims in PostgreSQL: dedup and exactly-once's durable half.
 *
 * For a batch, one transaction inserts a claim row per event id (tenant, provider,
 * event_id) carrying the raw record (topic, partition, offset) that proposes it,
 * ON CONFLICT DO NOTHING, and then reads every claim back. An event whose claim names
 * its own record is emitted; one claimed by another record is a provider duplicate.
 * Because the claim never changes, processing the same record again — after a crash
 * between the PostgreSQL and the Kafka commit, an aborted transaction, a rebalance or a
 * replay — makes the same decision. The batch travels as one jsonb parameter, so a
 * batch costs two statements whatever its size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"
#include "worker.h"

/* Returns the idx of every row this statement inserted (first-time claims). */
static const char insert_sql[] =
    "WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(idx integer, tenant text,"
    " provider text, event_id text, raw_topic text, raw_partition integer, raw_offset bigint,"
    " event_type text, recipient text, message_id text, occurred_at timestamptz, event jsonb)),"
    " d AS (SELECT * FROM mh_claim_days($1::jsonb)),"
    " ins AS (INSERT INTO mh_event_claims (tenant, provider, event_id, claim_day, raw_topic,"
    " raw_partition, raw_offset, event_type, recipient, message_id, occurred_at, event)"
    " SELECT tenant, provider, event_id, d.claim_day, raw_topic, raw_partition, raw_offset,"
    " event_type, recipient, message_id, occurred_at, event FROM x JOIN d USING (idx)"
    " ORDER BY idx"
    " ON CONFLICT DO NOTHING RETURNING tenant, provider, event_id, raw_partition, raw_offset)"
    " SELECT x.idx FROM ins JOIN x USING (tenant, provider, event_id, raw_partition, raw_offset)";

static const char claims_sql[] =
    "SELECT x.idx, c.raw_topic, c.raw_partition, c.raw_offset"
    " FROM jsonb_to_recordset($1::jsonb) AS x(idx integer, tenant text, provider text,"
    " event_id text)"
    " JOIN mh_event_claims c USING (tenant, provider, event_id)";

int dedup_connect(struct worker *w, char *err, size_t errlen)
{
    if (w->pg && PQstatus(w->pg) == CONNECTION_OK) return 0;
    if (w->pg) PQfinish(w->pg);
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {w->cfg->postgres.dsn, "mailhook-worker", "5", NULL};
    w->pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(w->pg) != CONNECTION_OK) {
        snprintf(err, errlen, "postgres: %s", PQerrorMessage(w->pg));
        /* libpq messages end with a newline; keep log lines single-line. */
        char *nl = strchr(err, '\n');
        if (nl) *nl = '\0';
        PQfinish(w->pg);
        w->pg = NULL;
        return -1;
    }
    return 0;
}

static int exec_ok(PGresult *res, ExecStatusType want, const char *what, char *err, size_t errlen)
{
    if (PQresultStatus(res) == want) return 0;
    snprintf(err, errlen, "postgres %s: %s", what, PQresultErrorMessage(res));
    char *nl = strchr(err, '\n');
    if (nl) *nl = '\0';
    return -1;
}

static const char *str_or(json_t *ev, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(ev, key));
    return s ? s : def;
}

/* Builds the rows parameter; idx numbers the (record, event) pairs in rec order. */
static json_t *build_rows(struct batch *b, json_t **keys_out)
{
    json_t *rows = json_array();
    json_t *keys = json_array();
    size_t idx = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *r = &b->recs[i];
        if (!r->events) continue;
        const char *topic = rd_kafka_topic_name(r->rkm->rkt);
        json_t *seen = json_object();
        size_t j;
        json_t *ev;
        json_array_foreach(r->events, j, ev) {
            const char *id = str_or(ev, "event_id", "");
            size_t this_idx = idx++;
            /* The same event twice in one record: only its first copy may claim. */
            if (json_object_get(seen, id)) continue;
            json_object_set_new(seen, id, json_true());
            json_t *row = json_object();
            json_object_set_new(row, "idx", json_integer((json_int_t)this_idx));
            json_object_set_new(row, "tenant", json_string(str_or(ev, "tenant", "")));
            json_object_set_new(row, "provider", json_string(str_or(ev, "provider", "")));
            json_object_set_new(row, "event_id", json_string(id));
            json_object_set_new(row, "raw_topic", json_string(topic));
            json_object_set_new(row, "raw_partition", json_integer(r->rkm->partition));
            json_object_set_new(row, "raw_offset", json_integer(r->rkm->offset));
            json_object_set_new(row, "event_type", json_string(str_or(ev, "type", "other")));
            json_object_set(row, "recipient", json_object_get(ev, "recipient"));
            json_object_set(row, "message_id", json_object_get(ev, "message_id"));
            json_object_set(row, "occurred_at", json_object_get(ev, "occurred_at"));
            json_object_set(row, "event", ev);
            json_array_append_new(rows, row);

            json_t *key = json_object();
            json_object_set_new(key, "idx", json_integer((json_int_t)this_idx));
            json_object_set_new(key, "tenant", json_string(str_or(ev, "tenant", "")));
            json_object_set_new(key, "provider", json_string(str_or(ev, "provider", "")));
            json_object_set_new(key, "event_id", json_string(id));
            json_array_append_new(keys, key);
        }
        json_decref(seen);
    }
    *keys_out = keys;
    return rows;
}

int dedup_claim(struct worker *w, struct batch *b, char *err, size_t errlen)
{
    PGresult *res = NULL;
    char *rows_txt = NULL, *keys_txt = NULL;
    json_t *keys = NULL, *rows = NULL;
    int rc = -1;

    /* Per event: where its (record, index) lives, to mark emit flags from idx. */
    struct slot { struct batch_rec *rec; size_t j; } *slots = NULL;
    size_t nslots = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *r = &b->recs[i];
        if (!r->events) continue;
        size_t n = json_array_size(r->events);
        free(r->emit);
        free(r->fresh);
        r->emit = mh_calloc(n ? n : 1, 1);
        r->fresh = mh_calloc(n ? n : 1, 1);
        slots = mh_realloc(slots, (nslots + n + 1) * sizeof(*slots));
        for (size_t j = 0; j < n; j++) slots[nslots++] = (struct slot){r, j};
    }
    if (nslots == 0) {
        free(slots);
        return 0;
    }
    if (dedup_connect(w, err, errlen) < 0) goto out;

    rows = build_rows(b, &keys);
    rows_txt = json_dumps(rows, JSON_COMPACT);
    keys_txt = json_dumps(keys, JSON_COMPACT);
    if (!rows_txt || !keys_txt) mh_oom();

    res = PQexec(w->pg, "BEGIN");
    if (exec_ok(res, PGRES_COMMAND_OK, "begin", err, errlen) < 0) goto rollback;
    PQclear(res);

    const char *p1[] = {rows_txt};
    res = PQexecParams(w->pg, insert_sql, 1, NULL, p1, NULL, NULL, 0);
    if (exec_ok(res, PGRES_TUPLES_OK, "insert claims", err, errlen) < 0) goto rollback;
    for (int row = 0; row < PQntuples(res); row++) {
        long idx = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (idx >= 0 && (size_t)idx < nslots) slots[idx].rec->fresh[slots[idx].j] = 1;
    }
    PQclear(res);

    const char *p2[] = {keys_txt};
    res = PQexecParams(w->pg, claims_sql, 1, NULL, p2, NULL, NULL, 0);
    if (exec_ok(res, PGRES_TUPLES_OK, "read claims", err, errlen) < 0) goto rollback;
    for (int row = 0; row < PQntuples(res); row++) {
        long idx = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (idx < 0 || (size_t)idx >= nslots) continue;
        struct batch_rec *r = slots[idx].rec;
        if (!strcmp(PQgetvalue(res, row, 1), rd_kafka_topic_name(r->rkm->rkt)) &&
            strtol(PQgetvalue(res, row, 2), NULL, 10) == r->rkm->partition &&
            strtoll(PQgetvalue(res, row, 3), NULL, 10) == r->rkm->offset)
            r->emit[slots[idx].j] = 1;
    }
    PQclear(res);
    res = NULL;
    /* Fresh means inserted now *by its own record*: the join above also matches a
     * same-id event of another record in this batch whose insert was skipped. */
    for (size_t k = 0; k < nslots; k++)
        if (!slots[k].rec->emit[slots[k].j]) slots[k].rec->fresh[slots[k].j] = 0;

    if (!w->skip_suppression && suppression_apply(w, b, err, errlen) < 0) goto rollback;

    res = PQexec(w->pg, "COMMIT");
    if (exec_ok(res, PGRES_COMMAND_OK, "commit", err, errlen) < 0) goto out;
    rc = 0;
    goto out;

rollback:
    PQclear(res);
    res = NULL;
    if (w->pg && PQstatus(w->pg) == CONNECTION_OK) PQclear(PQexec(w->pg, "ROLLBACK"));
out:
    PQclear(res);
    if (rc < 0 && w->pg && PQstatus(w->pg) != CONNECTION_OK) {
        PQfinish(w->pg);
        w->pg = NULL;
    }
    free(rows_txt);
    free(keys_txt);
    json_decref(rows);
    json_decref(keys);
    free(slots);
    return rc;
}

int dedup_lookup(struct worker *w, struct batch *b, char *err, size_t errlen)
{
    PGresult *res = NULL;
    char *keys_txt = NULL;
    json_t *keys = NULL, *rows = NULL;
    unsigned char *found = NULL;
    int rc = -1;

    struct slot { struct batch_rec *rec; size_t j; } *slots = NULL;
    size_t nslots = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *r = &b->recs[i];
        if (!r->events) continue;
        size_t n = json_array_size(r->events);
        free(r->emit);
        free(r->fresh);
        r->emit = mh_calloc(n ? n : 1, 1);
        r->fresh = mh_calloc(n ? n : 1, 1);
        slots = mh_realloc(slots, (nslots + n + 1) * sizeof(*slots));
        for (size_t j = 0; j < n; j++) slots[nslots++] = (struct slot){r, j};
    }
    if (nslots == 0) {
        free(slots);
        return 0;
    }
    if (dedup_connect(w, err, errlen) < 0) goto out;

    rows = build_rows(b, &keys);
    keys_txt = json_dumps(keys, JSON_COMPACT);
    if (!keys_txt) mh_oom();
    const char *p[] = {keys_txt};
    res = PQexecParams(w->pg, claims_sql, 1, NULL, p, NULL, NULL, 0);
    if (exec_ok(res, PGRES_TUPLES_OK, "read claims", err, errlen) < 0) goto out;
    found = mh_calloc(nslots, 1);
    for (int row = 0; row < PQntuples(res); row++) {
        long idx = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (idx < 0 || (size_t)idx >= nslots) continue;
        struct batch_rec *r = slots[idx].rec;
        found[idx] = 1;
        if (!strcmp(PQgetvalue(res, row, 1), rd_kafka_topic_name(r->rkm->rkt)) &&
            strtol(PQgetvalue(res, row, 2), NULL, 10) == r->rkm->partition &&
            strtoll(PQgetvalue(res, row, 3), NULL, 10) == r->rkm->offset)
            r->emit[slots[idx].j] = 1;
    }
    /* Only an event's first copy in its record has a key (build_rows). */
    size_t k;
    json_t *key;
    json_array_foreach(keys, k, key) {
        json_int_t idx = json_integer_value(json_object_get(key, "idx"));
        if (idx >= 0 && (size_t)idx < nslots && !found[idx])
            slots[idx].rec->fresh[slots[idx].j] = 1;
    }
    rc = 0;
out:
    PQclear(res);
    if (rc < 0 && w->pg && PQstatus(w->pg) != CONNECTION_OK) {
        PQfinish(w->pg);
        w->pg = NULL;
    }
    free(keys_txt);
    free(found);
    json_decref(rows);
    json_decref(keys);
    free(slots);
    return rc;
}
