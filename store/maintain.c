/*
 * store/maintain.c — retention and housekeeping, run by `mailhook maintain` and on
 * mailhook-api's timer.
 *
 * Retention never deletes the bulk row by row: the event log (which is also the dedup
 * state) is partitioned by the week each event was first claimed in, and whole weeks
 * are dropped once every day of them left the window. Only the default partition (rows claimed while their day had no partition,
 * few by construction), the claims of the dropped weeks (mh_claims, which is not
 * partitioned so that a claim is found by its key alone) and lifted addresses are
 * deleted, in batches of BATCH rows, each its own short statement. DDL runs with a lock timeout so a busy table makes a pass give up (and the
 * next one retry) instead of queueing the workers behind it. The partition work holds a
 * session advisory lock so two processes never do it at once; expiry and publishing are
 * safe concurrently (they take the per-address locks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "mailhook/log.h"
#include "mailhook/pg.h"

#define BATCH 5000
#define MAINT_LOCK_KEY "7244117155150352003"

static const char create_sql[] =
    "SELECT count(*) FILTER (WHERE mh_event_claims_create_partition(d::date))"
    " FROM generate_series(mh_claim_week((now() AT TIME ZONE 'UTC')::date - $1::integer),"
    " (now() AT TIME ZONE 'UTC')::date + $2::integer, interval '7 days') AS d";

static const char drop_sql[] =
    "SELECT count(*) FROM mh_event_claims_drop_before((now() AT TIME ZONE 'UTC')::date - $1::integer)";

static const char trim_default_sql[] =
    "DELETE FROM mh_event_claims_default WHERE ctid = ANY (ARRAY("
    " SELECT ctid FROM mh_event_claims_default"
    " WHERE claim_day < (now() AT TIME ZONE 'UTC')::date - $1::integer"
    " LIMIT 5000))";

/* The claims of the days no week partition keeps: before the Monday of the oldest week
 * mh_event_claims_drop_before leaves. Rows of the default partition take their claims
 * with them when deleted (migrations/0008). */
static const char forget_claims_sql[] =
    "DELETE FROM mh_claims WHERE ctid = ANY (ARRAY("
    " SELECT ctid FROM mh_claims"
    " WHERE claim_day < mh_claim_week((now() AT TIME ZONE 'UTC')::date - $1::integer)"
    " LIMIT 5000))";

static const char trim_lifted_sql[] =
    "DELETE FROM mh_suppressions WHERE ctid = ANY (ARRAY("
    " SELECT ctid FROM mh_suppressions"
    " WHERE state IS DISTINCT FROM 'suppressed' AND updated_at < now() - make_interval(days => $1::integer)"
    " AND (temp_until IS NULL OR temp_until <= now()) AND NOT pending LIMIT 5000))";

static long count_of(PGconn *pg, const char *sql, int nparams, const char *const *params,
                     const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    long n = -1;
    if (mh_pg_ok(res, PGRES_TUPLES_OK, what, err, errlen) == 0 && PQntuples(res) == 1)
        n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/* Deletes in batches until a batch comes back short; the total, or -1 with err. */
static long delete_batches(PGconn *pg, const char *sql, const char *days, const char *what,
                           char *err, size_t errlen)
{
    long total = 0;
    const char *params[] = {days};
    for (;;) {
        PGresult *res = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
        if (mh_pg_ok(res, PGRES_COMMAND_OK, what, err, errlen) < 0) {
            PQclear(res);
            return -1;
        }
        long n = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        total += n;
        if (n < BATCH) return total;
    }
}

static int partitions(PGconn *pg, long retention_days, long ahead_days, struct maint_report *rep,
                      char *err, size_t errlen)
{
    char back[32], ahead[32];
    snprintf(back, sizeof(back), "%ld", retention_days);
    snprintf(ahead, sizeof(ahead), "%ld", ahead_days);
    const char *p2[] = {back, ahead};
    long n = count_of(pg, create_sql, 2, p2, "create partitions", err, errlen);
    if (n < 0) return -1;
    rep->partitions_created = n;
    const char *p1[] = {back};
    n = count_of(pg, drop_sql, 1, p1, "drop partitions", err, errlen);
    if (n < 0) return -1;
    rep->partitions_dropped = n;
    n = delete_batches(pg, trim_default_sql, back, "trim default partition", err, errlen);
    if (n < 0) return -1;
    rep->default_rows_deleted = n;
    n = delete_batches(pg, forget_claims_sql, back, "forget claims of dropped weeks", err, errlen);
    if (n < 0) return -1;
    rep->claims_deleted = n;
    return 0;
}

int maintain_run(struct supp_store *st, long retention_days, long ahead_days,
                 struct maint_report *rep, char *err, size_t errlen)
{
    memset(rep, 0, sizeof(*rep));
    if (supp_store_ensure(st, err, errlen) < 0) return -1;
    PGconn *pg = st->pg;
    int rc = -1;

    PQclear(PQexec(pg, "SET lock_timeout = '5s'"));
    PGresult *res = PQexec(pg, "SELECT pg_try_advisory_lock(" MAINT_LOCK_KEY ")");
    if (mh_pg_ok(res, PGRES_TUPLES_OK, "maintenance lock", err, errlen) < 0) {
        PQclear(res);
        goto out;
    }
    int have_lock = !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (have_lock) {
        int prc = partitions(pg, retention_days, ahead_days, rep, err, errlen);
        PQclear(PQexec(pg, "SELECT pg_advisory_unlock(" MAINT_LOCK_KEY ")"));
        if (prc < 0) goto out;
    } else {
        rep->skipped_partitions = 1;
    }

    char back[32];
    snprintf(back, sizeof(back), "%ld", retention_days);
    long n = delete_batches(pg, trim_lifted_sql, back, "forget lifted addresses", err, errlen);
    if (n < 0) goto out;
    rep->lifted_rows_deleted = n;

    if (supp_expire_and_publish(st, &rep->states_published, err, errlen) < 0) goto out;
    rc = 0;
out:
    if (st->pg) PQclear(PQexec(st->pg, "RESET lock_timeout"));
    return rc;
}
