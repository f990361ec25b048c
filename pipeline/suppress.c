/*
 * suppress.c — suppression effects of claimed events (the hook pipeline.h describes).
 *
 * Inside the claim transaction, every event its own record claims (rec->emit) and whose
 * type the tenant's rules care about (suppression_rules.c) becomes one effect; all of a
 * batch's effects go to mh_suppression_apply in one statement. That function takes the
 * session advisory lock of every touched address (sorted, so two workers never wait
 * for each other in a cycle), applies the effects of *fresh* events only — a record
 * processed again after an abort or a crash finds its events claimed but not fresh, so
 * nothing is applied twice — and returns the current state of every touched address.
 * Those states become the batch's records for the compacted suppressions topic; emit.c
 * produces them in the batch's Kafka transaction, and the locks are released only after
 * that transaction ended (suppression_release). So a later writer of the same address
 * produces after this one committed, and the topic's last record per key is always the
 * state in PostgreSQL. A redo produces the current state again: harmless on a compacted
 * topic.
 *
 * What this file does not do: count soft bounces (PostgreSQL does, over the event log)
 * or publish anything itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"
#include "mailhook/pg.h"
#include "mailhook/suppression_rules.h"
#include "pipeline.h"

static const char apply_sql[] = "SELECT key, value FROM mh_suppression_apply($1::jsonb)";

int suppression_apply(struct worker *w, struct batch *b, char *err, size_t errlen)
{
    json_t *effects = json_array();
    char *txt = NULL;
    PGresult *res = NULL;
    int rc = -1;

    json_decref(b->suppression_out);
    b->suppression_out = NULL;
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *r = &b->recs[i];
        if (!r->events || !r->emit) continue;
        size_t j;
        json_t *ev;
        json_array_foreach(r->events, j, ev) {
            if (!r->emit[j]) continue;
            const char *tenant = json_string_value(json_object_get(ev, "tenant"));
            json_t *e = supp_effect(mh_config_suppression(w->cfg, tenant), ev,
                                    r->fresh && r->fresh[j]);
            if (e) json_array_append_new(effects, e);
        }
    }
    if (json_array_size(effects) == 0) {
        rc = 0;
        goto out;
    }
    txt = json_dumps(effects, JSON_COMPACT);
    if (!txt) mh_oom();
    const char *params[] = {txt};
    w->pg_locks = 1; /* set before: a failure may leave some taken */
    res = PQexecParams(w->pg, apply_sql, 1, NULL, params, NULL, NULL, 0);
    if (mh_pg_ok(res, PGRES_TUPLES_OK, "apply suppressions", err, errlen) < 0) {
        if (!mh_pg_sqlstate_transient(mh_pg_sqlstate(res))) rc = -2;
        goto out;
    }
    b->suppression_out = json_array();
    for (int row = 0; row < PQntuples(res); row++) {
        json_t *change = json_object();
        json_object_set_new(change, "key", json_string(PQgetvalue(res, row, 0)));
        json_t *value = NULL;
        if (!PQgetisnull(res, row, 1)) value = json_loads(PQgetvalue(res, row, 1), 0, NULL);
        json_object_set_new(change, "value", value ? value : json_null());
        json_array_append_new(b->suppression_out, change);
    }
    rc = 0;
out:
    PQclear(res);
    free(txt);
    json_decref(effects);
    return rc;
}

void suppression_release_conn(PGconn *pg, int *locks_held)
{
    if (!*locks_held) return;
    *locks_held = 0;
    if (pg && PQstatus(pg) == CONNECTION_OK)
        PQclear(PQexec(pg, "SELECT pg_advisory_unlock_all()"));
}

void suppression_release(struct worker *w)
{
    suppression_release_conn(w->pg, &w->pg_locks);
}
