/*
 * store.h — the store library (mailhook_store) that mailhook-api and the CLI share,
 * besides the suppression store (suppressions.h): the event log query (eventlog.c) and
 * maintenance (maintain.c). The HTTP server itself is api/.
 */
#ifndef MH_STORE_H
#define MH_STORE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "suppressions.h"

/* ---- event log ------------------------------------------------------------------------ */

struct eventlog_query {
    const char *tenant, *type, *recipient, *message_id; /* NULL: any */
    const char *source, *provider; /* NULL: any; the event's own fields, matched exactly */
    const char *since, *until; /* times as the caller wrote them (any mh_time_parse form) */
    const char *cursor;        /* next_cursor of the previous page, or NULL */
    long limit;
    int oldest_first;          /* message timelines read forwards; the log newest first */
};

/*
 * One page of the event log: *items a new array of canonical events, *next_cursor a new
 * string when there may be more (else NULL). Returns 0; -2 with err when the query is
 * invalid (bad time or cursor: the caller's fault); -1 with err when PostgreSQL failed.
 */
int eventlog_page(PGconn *pg, const struct eventlog_query *q, json_t **items, char **next_cursor,
                  char *err, size_t errlen);

/* ---- maintenance ---------------------------------------------------------------------- */

struct maint_report {
    long partitions_created;
    long partitions_dropped;
    long default_rows_deleted; /* from the default partition (undated or out-of-range) */
    long claims_deleted;       /* claims of the dropped weeks (mh_claims) */
    long lifted_rows_deleted;  /* lifted addresses older than the window */
    size_t states_published;   /* expired temporary suppressions and pending states */
    int skipped_partitions;    /* another process was doing the partition work */
};

/*
 * One maintenance pass: creates the event log's week partitions from retention_days back
 * to ahead_days ahead, drops older ones and forgets their claims, trims the default
 * partition and forgotten lifted
 * addresses in short batches, ends expired temporary suppressions and publishes every
 * state the suppressions topic lacks. Safe to run from several processes at once.
 * 0, or -1 with err (what was done stays done).
 */
int maintain_run(struct supp_store *st, long retention_days, long ahead_days,
                 struct maint_report *rep, char *err, size_t errlen);

#endif
