/*
 * store/eventlog.c — the event log: the canonical events of mh_event_claims (each
 * distinct event once, as claimed) filtered by tenant, type, recipient, message id,
 * source, provider and time, in pages.
 *
 * Order is (log_at, tenant, provider, event_id) — log_at being occurred_at, or the claim
 * time for an event without one; provider being the claim's dedup scope (dedup_scope.h),
 * which keeps the tuple unique when two senders' events share an id — newest first for the log, oldest first for a
 * message's timeline. The cursor is that tuple of the page's last row (log_at with
 * microseconds), an mh_cursor (JSON in URL-safe base64): opaque to clients, any stored
 * value round-trips, stable under inserts, and served by the mh_event_claims_log index.
 *
 * The source is its column (migrations/0010), or the stored event's own for a row a
 * worker of an earlier release wrote after that migration (NULL there). The provider is
 * the `provider` column's first part: that column is the dedup scope, the provider's
 * name or "hmac/maildog" for a per-source provider (dedup_scope.h), and no provider's
 * name holds a slash. Like tenant, they filter the rows the log index yields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "mailhook/cursor.h"
#include "mailhook/log.h"
#include "mailhook/pg.h"
#include "mailhook/timeutil.h"

#define FILTERS                                                                              \
    " FROM mh_event_claims"                                                                  \
    " WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR event_type = $2)"     \
    " AND ($3::text IS NULL OR recipient = $3) AND ($4::text IS NULL OR message_id = $4)"   \
    " AND ($5::timestamptz IS NULL OR log_at >= $5) AND ($6::timestamptz IS NULL OR log_at < $6)" \
    " AND ($11::text IS NULL OR coalesce(source, event ->> 'source') = $11)"                 \
    " AND ($12::text IS NULL OR split_part(provider, '/', 1) = $12)"

#define COLUMNS                                                                              \
    "SELECT event, to_char(log_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"  \
    " tenant, provider, event_id"

static const char newest_sql[] =
    COLUMNS FILTERS
    " AND ($7::timestamptz IS NULL OR (log_at, tenant, provider, event_id) < ($7, $8, $9, $10))"
    " ORDER BY log_at DESC, tenant DESC, provider DESC, event_id DESC LIMIT $13::integer";

static const char oldest_sql[] =
    COLUMNS FILTERS
    " AND ($7::timestamptz IS NULL OR (log_at, tenant, provider, event_id) > ($7, $8, $9, $10))"
    " ORDER BY log_at, tenant, provider, event_id LIMIT $13::integer";

/* Fills the four strings (pointing into *holder) from a cursor; -1 when it is not one. */
static int cursor_decode(const char *cursor, json_t **holder, const char *parts[4])
{
    *holder = mh_cursor_decode(cursor, 4);
    if (!*holder) return -1;
    for (size_t i = 0; i < 4; i++) parts[i] = json_string_value(json_array_get(*holder, i));
    int64_t ms;
    return mh_time_parse(parts[0], &ms);
}

/* A caller's time as RFC 3339 for PostgreSQL; -1 when it cannot be read. */
static int norm_time(const char *in, char *out)
{
    int64_t ms;
    if (mh_time_parse(in, &ms) < 0) return -1;
    mh_time_format(ms, out);
    return 0;
}

int eventlog_page(PGconn *pg, const struct eventlog_query *q, json_t **items, char **next_cursor,
                  char *err, size_t errlen)
{
    char since[MH_TIME_BUFSZ], until[MH_TIME_BUFSZ], lim[32];
    const char *cur[4] = {NULL, NULL, NULL, NULL};
    json_t *holder = NULL;
    int rc = -2;
    *items = NULL;
    *next_cursor = NULL;

    if (q->since && norm_time(q->since, since) < 0) {
        snprintf(err, errlen, "since: not a time (use RFC 3339, e.g. 2026-02-25T12:00:00Z)");
        goto out;
    }
    if (q->until && norm_time(q->until, until) < 0) {
        snprintf(err, errlen, "until: not a time (use RFC 3339, e.g. 2026-02-25T12:00:00Z)");
        goto out;
    }
    if (q->cursor && cursor_decode(q->cursor, &holder, cur) < 0) {
        snprintf(err, errlen, "cursor: not a cursor this API returned");
        goto out;
    }
    /* One more row than asked tells whether there is a next page. */
    snprintf(lim, sizeof(lim), "%ld", q->limit + 1);
    const char *params[] = {q->tenant, q->type, q->recipient, q->message_id,
                            q->since ? since : NULL, q->until ? until : NULL,
                            cur[0], cur[1], cur[2], cur[3], q->source, q->provider, lim};
    PGresult *res = PQexecParams(pg, q->oldest_first ? oldest_sql : newest_sql, 13, NULL, params,
                                 NULL, NULL, 0);
    if (mh_pg_ok(res, PGRES_TUPLES_OK, "event log", err, errlen) < 0) {
        PQclear(res);
        rc = -1;
        goto out;
    }
    int rows = PQntuples(res);
    int shown = rows > q->limit ? (int)q->limit : rows;
    *items = json_array();
    for (int row = 0; row < shown; row++) {
        json_t *ev = json_loads(PQgetvalue(res, row, 0), 0, NULL);
        if (ev) json_array_append_new(*items, ev);
    }
    if (rows > q->limit && shown > 0) {
        const char *last[4] = {PQgetvalue(res, shown - 1, 1), PQgetvalue(res, shown - 1, 2),
                               PQgetvalue(res, shown - 1, 3), PQgetvalue(res, shown - 1, 4)};
        *next_cursor = mh_cursor_encode(last, 4);
    }
    PQclear(res);
    rc = 0;
out:
    json_decref(holder);
    return rc;
}
