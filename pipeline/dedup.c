/*
 * dedup.c — event claims in PostgreSQL: dedup and exactly-once's durable half.
 *
 * For a batch, one statement inserts a claim per event id into mh_claims (keyed by
 * mh_claim_key(tenant, dedup scope, event_id), which the worker computes: dedup_scope.h)
 * carrying the raw record (topic, partition, offset) that proposes it, ON CONFLICT DO
 * NOTHING, in key order, and in the same statement writes the event log row
 * (mh_event_claims) of every event it inserted (migrations/0008). The claim is what keeps
 * the log's rows distinct: a row is written only with the claim this statement made, so
 * the log needs no unique index of its own (migrations/0011). An event inserted by its own
 * record is fresh and emitted. Only the events it did not insert are read back: one
 * claimed by another record is a provider duplicate, one claimed by its own record (after
 * a crash between the PostgreSQL and the Kafka commit, an aborted transaction, a rebalance
 * or a replay) is emitted again, not fresh. Because the claim never changes, processing
 * the same record again makes the same decision. The batch travels as fourteen parameters,
 * one array per column in the binary format (pg_array.h): the claims' columns, the events
 * as the texts normalize.c serialized, the event log's search columns (type, recipient,
 * message id, time, source) and the claim keys. So a batch costs one statement when every
 * event is new, two otherwise, whatever its size; neither side writes or parses JSON for
 * the columns, and PostgreSQL only checks an event's text once, as the json of the log row
 * of an event it claims (migrations/0010), never building a jsonb of it.
 *
 * The dedup scope (dedup_scope.h) is the provider's name, or "provider/source" for a
 * generic provider whose ids are unique only per sender; it is what the claim's
 * `provider` column holds (migrations/0006), while the event itself keeps its provider.
 *
 * Poison records. normalize.c hands over only values PostgreSQL can hold, but the
 * database may still refuse a batch for good (a constraint, a trigger, a limit no check
 * foresaw). Errors are told apart by SQLSTATE class (mh_pg_sqlstate_transient): a
 * transient one fails the claim and the worker retries the whole batch as before; a
 * permanent one is met again by the same input, so retrying would stop the partition
 * for good. Then the batch is bisected: each half is claimed in a transaction of its
 * own, recursively, down to single records, and a record that still fails alone is
 * marked for the dead-letter topic (stage "store", the database's message as reason).
 * The halves that succeed commit; that is safe for the same reason a crash between the
 * PostgreSQL and the Kafka commit is: their claims never change, so if the batch's Kafka
 * transaction aborts, the redo finds them and decides the same, and the poison record
 * fails again the same way. Before a lone record is dead-lettered, an empty claim is
 * tried: if the database refuses that too, the fault is the database's (a missing
 * table, a revoked grant), not the record's, and it is retried instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/dedup_scope.h"
#include "mailhook/event_limits.h"
#include "mailhook/log.h"
#include "mailhook/pg.h"
#include "mailhook/pg_array.h"
#include "pipeline.h"

/* Largest parameters of one claim statement. An array value holds at most 1 GiB;
 * a batch over this is split (the bisection below) before PostgreSQL sees it. */
#define CLAIM_PARAM_MAX_BYTES ((size_t)128 * 1024 * 1024)

/* insert_sql's name on each connection (dedup_connect prepares it). */
#define CLAIM_STATEMENT "mh_claim"

/* insert_sql's parameters: one array per column, in this order. */
enum { COL_IDX, COL_TENANT, COL_PROVIDER, COL_EVENT_ID, COL_TOPIC, COL_PARTITION, COL_OFFSET,
       COL_EVENT, COL_TYPE, COL_RECIPIENT, COL_MESSAGE_ID, COL_OCCURRED_AT, COL_SOURCE,
       COL_KEY, CLAIM_PARAMS };

static const Oid claim_param_types[CLAIM_PARAMS] = {
    MH_PG_INT4_ARRAY_OID, MH_PG_TEXT_ARRAY_OID, MH_PG_TEXT_ARRAY_OID, MH_PG_TEXT_ARRAY_OID,
    MH_PG_TEXT_ARRAY_OID, MH_PG_INT4_ARRAY_OID, MH_PG_INT8_ARRAY_OID, MH_PG_TEXT_ARRAY_OID,
    MH_PG_TEXT_ARRAY_OID, MH_PG_TEXT_ARRAY_OID, MH_PG_TEXT_ARRAY_OID, MH_PG_TEXT_ARRAY_OID,
    MH_PG_TEXT_ARRAY_OID, MH_PG_BYTEA_ARRAY_OID,
};

/*
 * Claims the batch's events and writes the log rows of those it claimed; returns the idx
 * of every event this statement claimed for its own record. Two records of one batch
 * carrying the same event both propose it; in key, then idx order the first wins.
 */
static const char insert_sql[] =
    "WITH x AS (SELECT r.* FROM unnest($1::integer[], $2::text[], $3::text[], $4::text[],"
    " $5::text[], $6::integer[], $7::bigint[], $8::text[], $9::text[], $10::text[],"
    " $11::text[], $12::text[], $13::text[], $14::bytea[]) AS r(idx, tenant, provider,"
    " event_id, raw_topic, raw_partition, raw_offset, event, event_type, recipient,"
    " message_id, occurred_at, source, k)),"
    " c AS (INSERT INTO mh_claims (claim_key, claim_day, raw_topic, raw_partition, raw_offset)"
    " SELECT k, (now() AT TIME ZONE 'UTC')::date, raw_topic, raw_partition, raw_offset"
    " FROM x ORDER BY k, idx ON CONFLICT DO NOTHING"
    " RETURNING claim_key, claim_day, raw_topic, raw_partition, raw_offset),"
    " n AS (SELECT x.*, c.claim_day FROM x JOIN c ON c.claim_key = x.k"
    " AND c.raw_topic = x.raw_topic AND c.raw_partition = x.raw_partition"
    " AND c.raw_offset = x.raw_offset),"
    " l AS (INSERT INTO mh_event_claims (tenant, provider, event_id, claim_day, raw_topic,"
    " raw_partition, raw_offset, event_type, recipient, message_id, occurred_at, source,"
    " event)"
    " SELECT tenant, provider, event_id, claim_day, raw_topic, raw_partition, raw_offset,"
    " event_type, recipient, message_id, occurred_at::timestamptz, source, event::json"
    " FROM n)"
    " SELECT idx FROM n";

/* The claims of the given events: their idx and claim keys, two arrays. */
static const char claims_sql[] =
    "SELECT x.idx, c.raw_topic, c.raw_partition, c.raw_offset"
    " FROM unnest($1::integer[], $2::bytea[]) AS x(idx, k)"
    " JOIN mh_claims c ON c.claim_key = x.k";

int dedup_connect(struct worker *w, char *err, size_t errlen)
{
    if (w->pg && PQstatus(w->pg) == CONNECTION_OK) return 0;
    if (w->pg) PQfinish(w->pg);
    /* Events are UTF-8 and a claim key is a digest of their UTF-8 bytes (dedup_scope.h):
     * the connection says so, the server converts to its own encoding on the way in, and
     * mh_claim_key's convert_to(..., 'UTF8') gives the database the same bytes back. */
    const char *keys[] = {"dbname", "application_name", "connect_timeout", "client_encoding",
                          NULL};
    const char *vals[] = {w->cfg->postgres.dsn, "mailhook-worker", "5", "UTF8", NULL};
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
    /* Parsed and planned once a connection, not once a batch: the plan is the same for
     * every batch (the rows come as array parameters), and planning the statement
     * cost about a tenth of what running it on 250 events did. A connection is made only
     * here, so every one the worker claims on has it. A database that refuses it (no
     * schema yet) refuses the claim too: the connection is dropped and the claim retried. */
    PGresult *res = PQprepare(w->pg, CLAIM_STATEMENT, insert_sql, CLAIM_PARAMS, claim_param_types);
    if (mh_pg_ok(res, PGRES_COMMAND_OK, "prepare the claim statement", err, errlen) < 0) {
        PQclear(res);
        PQfinish(w->pg);
        w->pg = NULL;
        return -1;
    }
    PQclear(res);
    return 0;
}

static const char *str_or(json_t *ev, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(ev, key));
    return s ? s : def;
}

/* ev[key] as a text element: NULL when the event has no such string (make_storable
 * leaves recipient, message_id, source and occurred_at strings or absent). */
static void add_text_or_null(struct mh_pg_array *a, json_t *ev, const char *key)
{
    json_t *v = json_object_get(ev, key);
    if (json_is_string(v))
        mh_pg_array_add_text(a, json_string_value(v), json_string_length(v));
    else
        mh_pg_array_add_null(a);
}

/* A row of insert_sql: an event's first copy in its record. Its tenant, scope and id
 * are in the statement's arrays; claims_sql needs only its slot and key. */
struct claim_row {
    size_t idx;                          /* its slot */
    unsigned char key[MH_CLAIM_KEY_LEN]; /* mh_claim_key of tenant, scope and event id */
};

/* Where an event lives: its record and its index in that record's events. */
struct slot {
    struct batch_rec *rec;
    size_t j;
};

/* A batch's events as both statements see them; idx (build_rows) indexes slots. */
struct claim_set {
    struct slot *slots;
    size_t nslots;
    struct claim_row *rows; /* only an event's first copy in its record has one */
    size_t nrows;
    struct mh_pg_array cols[CLAIM_PARAMS]; /* insert_sql's parameters, in the order of rows */
    size_t param_bytes;
};

/*
 * Builds the rows and the statement's parameters: the claims' columns (idx numbers the
 * (record, event) pairs in rec order) and, in the same order, the events as the texts
 * normalize.c made, so no event is serialized again here, and the log's search columns
 * from the slim events (an event whose type is not a string is logged as "other").
 */
static void build_rows(struct batch *b, struct claim_set *cs)
{
    static const uint32_t elem[CLAIM_PARAMS] = {
        MH_PG_INT4_OID, MH_PG_TEXT_OID, MH_PG_TEXT_OID, MH_PG_TEXT_OID,
        MH_PG_TEXT_OID, MH_PG_INT4_OID, MH_PG_INT8_OID, MH_PG_TEXT_OID,
        MH_PG_TEXT_OID, MH_PG_TEXT_OID, MH_PG_TEXT_OID, MH_PG_TEXT_OID, MH_PG_TEXT_OID,
        MH_PG_BYTEA_OID,
    };
    for (int c = 0; c < CLAIM_PARAMS; c++) mh_pg_array_init(&cs->cols[c], elem[c]);
    cs->rows = mh_calloc(cs->nslots, sizeof(*cs->rows));
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
            struct claim_row *row = &cs->rows[cs->nrows++];
            const char *tenant = str_or(ev, "tenant", "");
            char *scope = mh_event_dedup_scope(ev);
            row->idx = this_idx;
            mh_claim_key(tenant, scope, id, row->key);
            mh_pg_array_add_int4(&cs->cols[COL_IDX], (int32_t)this_idx);
            mh_pg_array_add_text(&cs->cols[COL_TENANT], tenant, strlen(tenant));
            mh_pg_array_add_text(&cs->cols[COL_PROVIDER], scope, strlen(scope));
            free(scope);
            mh_pg_array_add_text(&cs->cols[COL_EVENT_ID], id, strlen(id));
            mh_pg_array_add_text(&cs->cols[COL_TOPIC], topic, strlen(topic));
            mh_pg_array_add_int4(&cs->cols[COL_PARTITION], r->rkm->partition);
            mh_pg_array_add_int8(&cs->cols[COL_OFFSET], r->rkm->offset);
            mh_pg_array_add_text(&cs->cols[COL_EVENT], r->ev_text[j], r->ev_len[j]);
            const char *type = str_or(ev, "type", "other");
            mh_pg_array_add_text(&cs->cols[COL_TYPE], type, strlen(type));
            add_text_or_null(&cs->cols[COL_RECIPIENT], ev, "recipient");
            add_text_or_null(&cs->cols[COL_MESSAGE_ID], ev, "message_id");
            add_text_or_null(&cs->cols[COL_OCCURRED_AT], ev, "occurred_at");
            add_text_or_null(&cs->cols[COL_SOURCE], ev, "source");
            mh_pg_array_add_bytes(&cs->cols[COL_KEY], row->key, sizeof(row->key));
        }
        json_decref(seen);
    }
    for (int c = 0; c < CLAIM_PARAMS; c++) {
        mh_pg_array_finish(&cs->cols[c]);
        cs->param_bytes += cs->cols[c].len;
    }
}

/*
 * Resets every record's emit and fresh flags to 0 and numbers the batch's events in rec
 * order. Returns the number of events; when there are any, cs holds their slots, rows and
 * parameters (claim_set_free), else nothing is allocated.
 */
static size_t claim_set_build(struct batch *b, struct claim_set *cs)
{
    *cs = (struct claim_set){0};
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *r = &b->recs[i];
        if (!r->events) continue;
        size_t n = json_array_size(r->events);
        free(r->emit);
        free(r->fresh);
        r->emit = mh_calloc(n ? n : 1, 1);
        r->fresh = mh_calloc(n ? n : 1, 1);
        cs->slots = mh_realloc(cs->slots, (cs->nslots + n + 1) * sizeof(*cs->slots));
        for (size_t j = 0; j < n; j++) cs->slots[cs->nslots++] = (struct slot){r, j};
    }
    if (cs->nslots == 0) {
        free(cs->slots);
        cs->slots = NULL;
        return 0;
    }
    build_rows(b, cs);
    return cs->nslots;
}

static void claim_set_free(struct claim_set *cs)
{
    free(cs->rows);
    for (int c = 0; c < CLAIM_PARAMS; c++) mh_pg_array_free(&cs->cols[c]);
    free(cs->slots);
}

/* claims_sql's parameters (idx, key): the rows whose event is not yet fresh (after the
 * insert: the events it did not claim; before any: all). Returns how many. */
static size_t keys_to_read(const struct claim_set *cs, struct mh_pg_array *idx,
                           struct mh_pg_array *keys)
{
    mh_pg_array_init(idx, MH_PG_INT4_OID);
    mh_pg_array_init(keys, MH_PG_BYTEA_OID);
    for (size_t k = 0; k < cs->nrows; k++) {
        const struct claim_row *row = &cs->rows[k];
        if (cs->slots[row->idx].rec->fresh[cs->slots[row->idx].j]) continue;
        mh_pg_array_add_int4(idx, (int32_t)row->idx);
        mh_pg_array_add_bytes(keys, row->key, sizeof(row->key));
    }
    mh_pg_array_finish(idx);
    mh_pg_array_finish(keys);
    return idx->n;
}

/* After a failure, drops a connection that broke so the next batch reconnects. */
static void drop_broken_connection(struct worker *w)
{
    if (w->pg && PQstatus(w->pg) != CONNECTION_OK) {
        PQfinish(w->pg);
        w->pg = NULL;
    }
}

/* What one attempt at a set of records came to. */
enum attempt { A_OK, A_TRANSIENT, A_PERMANENT };

/* Where an attempt writes its error: the message, and whether it is permanent. */
struct fault {
    char *err;
    size_t errlen;
    int permanent;
};

/* mh_pg_ok, and on failure classifies the error by its SQLSTATE. A connection that broke
 * makes any error transient: the statement never finished. */
static int pg_check(struct worker *w, PGresult *res, ExecStatusType want, const char *what,
                    struct fault *f)
{
    if (mh_pg_ok(res, want, what, f->err, f->errlen) == 0) return 0;
    f->permanent = PQstatus(w->pg) == CONNECTION_OK &&
                   !mh_pg_sqlstate_transient(mh_pg_sqlstate(res));
    return -1;
}

/*
 * Reads back the claims of the set's events that are not fresh (keys_to_read) and marks
 * emit for every one whose claim names its own record. When found is not NULL,
 * found[idx] is set for every event that has a claim at all.
 */
static int read_claims(struct worker *w, const struct claim_set *cs, unsigned char *found,
                       struct fault *f)
{
    struct mh_pg_array ids, keys;
    if (keys_to_read(cs, &ids, &keys) == 0) {
        mh_pg_array_free(&ids);
        mh_pg_array_free(&keys);
        return 0;
    }
    static const Oid types[] = {MH_PG_INT4_ARRAY_OID, MH_PG_BYTEA_ARRAY_OID};
    const char *values[] = {(const char *)ids.buf, (const char *)keys.buf};
    const int lengths[] = {(int)ids.len, (int)keys.len}, formats[] = {1, 1};
    PGresult *res = PQexecParams(w->pg, claims_sql, 2, types, values, lengths, formats, 0);
    mh_pg_array_free(&ids);
    mh_pg_array_free(&keys);
    if (pg_check(w, res, PGRES_TUPLES_OK, "read claims", f) < 0) {
        PQclear(res);
        return -1;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        long idx = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (idx < 0 || (size_t)idx >= cs->nslots) continue;
        const struct slot *sl = &cs->slots[idx];
        if (found) found[idx] = 1;
        if (!strcmp(PQgetvalue(res, row, 1), rd_kafka_topic_name(sl->rec->rkm->rkt)) &&
            strtol(PQgetvalue(res, row, 2), NULL, 10) == sl->rec->rkm->partition &&
            strtoll(PQgetvalue(res, row, 3), NULL, 10) == sl->rec->rkm->offset)
            sl->rec->emit[sl->j] = 1;
    }
    PQclear(res);
    return 0;
}

/* From insert_sql's result: the events it claimed for their own record are fresh and
 * emitted. */
static void mark_claimed(struct claim_set *cs, PGresult *res)
{
    for (int row = 0; row < PQntuples(res); row++) {
        long idx = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (idx < 0 || (size_t)idx >= cs->nslots) continue;
        const struct slot *sl = &cs->slots[idx];
        sl->rec->fresh[sl->j] = 1;
        sl->rec->emit[sl->j] = 1;
    }
}

/* Claims the events of b's records in one transaction (the claim attempt). */
static enum attempt claim_once(struct worker *w, struct batch *b, struct fault *f)
{
    PGresult *res = NULL;
    struct claim_set cs;
    enum attempt rc = A_TRANSIENT;

    f->permanent = 0;
    if (claim_set_build(b, &cs) == 0) return A_OK;
    if (cs.param_bytes > CLAIM_PARAM_MAX_BYTES) {
        snprintf(f->err, f->errlen, "claim parameters of %zu bytes are over the %zu-byte limit",
                 cs.param_bytes, CLAIM_PARAM_MAX_BYTES);
        rc = A_PERMANENT;
        goto out;
    }
    if (dedup_connect(w, f->err, f->errlen) < 0) goto out;

    if (w->lock_timeout_ms > 0) {
        char begin[96];
        snprintf(begin, sizeof(begin), "BEGIN; SET LOCAL lock_timeout = %ld", w->lock_timeout_ms);
        res = PQexec(w->pg, begin);
    } else {
        res = PQexec(w->pg, "BEGIN");
    }
    if (pg_check(w, res, PGRES_COMMAND_OK, "begin", f) < 0) goto rollback;
    PQclear(res);

    const char *values[CLAIM_PARAMS];
    int lengths[CLAIM_PARAMS], formats[CLAIM_PARAMS];
    for (int c = 0; c < CLAIM_PARAMS; c++) {
        values[c] = (const char *)cs.cols[c].buf;
        lengths[c] = (int)cs.cols[c].len;
        formats[c] = 1;
    }
    res = PQexecPrepared(w->pg, CLAIM_STATEMENT, CLAIM_PARAMS, values, lengths, formats, 0);
    if (pg_check(w, res, PGRES_TUPLES_OK, "insert claims", f) < 0) goto rollback;
    mark_claimed(&cs, res);
    PQclear(res);
    res = NULL;

    if (read_claims(w, &cs, NULL, f) < 0) goto rollback;

    if (!w->skip_suppression) {
        int s = suppression_apply(w, b, f->err, f->errlen);
        if (s < 0) {
            f->permanent = s == -2 && PQstatus(w->pg) == CONNECTION_OK;
            goto rollback;
        }
    }

    res = PQexec(w->pg, "COMMIT");
    if (pg_check(w, res, PGRES_COMMAND_OK, "commit", f) < 0) goto out;
    rc = A_OK;
    goto out;

rollback:
    PQclear(res);
    res = NULL;
    if (w->pg && PQstatus(w->pg) == CONNECTION_OK) PQclear(PQexec(w->pg, "ROLLBACK"));
out:
    PQclear(res);
    if (rc != A_OK) {
        if (f->permanent) rc = A_PERMANENT;
        drop_broken_connection(w);
    }
    claim_set_free(&cs);
    return rc;
}

/* Looks the events of b's records up (the lookup attempt). */
static enum attempt lookup_once(struct worker *w, struct batch *b, struct fault *f)
{
    struct claim_set cs;
    unsigned char *found = NULL;
    enum attempt rc = A_TRANSIENT;

    f->permanent = 0;
    if (claim_set_build(b, &cs) == 0) return A_OK;
    if (dedup_connect(w, f->err, f->errlen) < 0) goto out;
    found = mh_calloc(cs.nslots, 1);
    if (read_claims(w, &cs, found, f) < 0) goto out;
    /* An event without a claim would be claimed anew by this record. Only an event's
     * first copy in its record has a row (build_rows). */
    for (size_t k = 0; k < cs.nrows; k++) {
        size_t idx = cs.rows[k].idx;
        if (!found[idx]) cs.slots[idx].rec->fresh[cs.slots[idx].j] = 1;
    }
    rc = A_OK;
out:
    if (rc != A_OK) {
        if (f->permanent) rc = A_PERMANENT;
        drop_broken_connection(w);
    }
    free(found);
    claim_set_free(&cs);
    return rc;
}

/*
 * Whether the database takes the statements of an attempt at all, with no event: an
 * empty claim (and an empty suppression update), rolled back. 0 when it does; -1 with
 * err when it does not, in which case a permanent error is not a record's fault.
 */
static int database_takes_empty_claim(struct worker *w, int lookup, char *err, size_t errlen)
{
    const char *empty[] = {"[]"};
    const char *no_keys[] = {"{}", "{}"};
    const char *no_rows[CLAIM_PARAMS];
    for (int c = 0; c < CLAIM_PARAMS; c++) no_rows[c] = "{}";
    char why[512] = "";
    struct fault f = {why, sizeof(why), 0};
    PGresult *res = NULL;
    int rc = -1;

    if (dedup_connect(w, why, sizeof(why)) < 0) goto out;
    if (lookup) {
        res = PQexecParams(w->pg, claims_sql, 2, NULL, no_keys, NULL, NULL, 0);
        rc = pg_check(w, res, PGRES_TUPLES_OK, "read claims", &f);
        goto out;
    }
    res = PQexec(w->pg, "BEGIN");
    if (pg_check(w, res, PGRES_COMMAND_OK, "begin", &f) < 0) goto rollback;
    PQclear(res);
    res = PQexecParams(w->pg, insert_sql, CLAIM_PARAMS, NULL, no_rows, NULL, NULL, 0);
    if (pg_check(w, res, PGRES_TUPLES_OK, "insert claims", &f) < 0) goto rollback;
    if (!w->skip_suppression) {
        PQclear(res);
        res = PQexecParams(w->pg, "SELECT count(*) FROM mh_suppression_apply($1::jsonb)", 1,
                           NULL, empty, NULL, NULL, 0);
        if (pg_check(w, res, PGRES_TUPLES_OK, "apply suppressions", &f) < 0) goto rollback;
    }
    rc = 0;
rollback:
    if (w->pg && PQstatus(w->pg) == CONNECTION_OK) PQclear(PQexec(w->pg, "ROLLBACK"));
out:
    PQclear(res);
    if (rc < 0) {
        snprintf(err, errlen, "database refuses even an empty claim: %s", why);
        drop_broken_connection(w);
    }
    return rc;
}

/* Sends r to the dead-letter topic as a record PostgreSQL refused for good. */
static void dead_letter_store(struct batch_rec *r, const char *why)
{
    const rd_kafka_message_t *rkm = r->rkm;
    mh_warn("dead letter %s[%d]@%lld: PostgreSQL refuses its events: %s",
            rd_kafka_topic_name(rkm->rkt), (int)rkm->partition, (long long)rkm->offset, why);
    free(r->dlq_reason);
    r->dlq_reason = mh_strdup(why);
    r->dlq_stage = MH_DLQ_STAGE_STORE;
    batch_rec_drop_events(r);
}

typedef enum attempt (*attempt_fn)(struct worker *w, struct batch *b, struct fault *f);

/*
 * Runs fn on records [lo, hi) of b and, when it fails for good, isolates the records
 * that cause it (the bisection the header comment describes). The suppression states of
 * every attempt that succeeded are appended to b->suppression_out, in the order they
 * committed. A_OK or A_TRANSIENT (with f->err).
 */
static enum attempt isolate(struct worker *w, struct batch *b, size_t lo, size_t hi,
                            attempt_fn fn, struct fault *f)
{
    size_t with_events = 0, half = 0, mid = lo;
    for (size_t i = lo; i < hi; i++)
        if (b->recs[i].events) with_events++;
    if (with_events == 0) return A_OK;

    struct batch sub = {.recs = b->recs + lo, .n = hi - lo};
    enum attempt a = fn(w, &sub, f);
    if (a == A_OK && sub.suppression_out) {
        if (!b->suppression_out) b->suppression_out = json_array();
        json_array_extend(b->suppression_out, sub.suppression_out);
    }
    json_decref(sub.suppression_out);
    if (a != A_PERMANENT) return a;

    if (with_events == 1) {
        char why[1024];
        snprintf(why, sizeof(why), "%s", f->err);
        if (database_takes_empty_claim(w, fn == lookup_once, f->err, f->errlen) < 0)
            return A_TRANSIENT;
        for (size_t i = lo; i < hi; i++)
            if (b->recs[i].events) dead_letter_store(&b->recs[i], why);
        return A_OK;
    }
    /* Split where each half keeps records with events. */
    for (mid = lo; mid < hi; mid++) {
        if (b->recs[mid].events && half++ == with_events / 2) break;
    }
    mh_warn("%s: isolating the records that cause it (%zu with events)", f->err, with_events);
    a = isolate(w, b, lo, mid, fn, f);
    if (a != A_OK) return a;
    return isolate(w, b, mid, hi, fn, f);
}

static int run_isolated(struct worker *w, struct batch *b, attempt_fn fn, char *err,
                        size_t errlen)
{
    struct fault f = {err, errlen, 0};
    json_decref(b->suppression_out);
    b->suppression_out = NULL;
    return isolate(w, b, 0, b->n, fn, &f) == A_OK ? 0 : -1;
}

int dedup_claim(struct worker *w, struct batch *b, char *err, size_t errlen)
{
    return run_isolated(w, b, claim_once, err, errlen);
}

int dedup_lookup(struct worker *w, struct batch *b, char *err, size_t errlen)
{
    return run_isolated(w, b, lookup_once, err, errlen);
}
