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
 * A delivery's "reset" matters only to an address under a soft-bounce suppression, and
 * deliveries are most events: their addresses are asked about first, as bare pairs, and
 * only the resets of the addresses that matter become effects.
 *
 * What this file does not do: count soft bounces (PostgreSQL does, over the event log)
 * or publish anything itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"
#include "mailhook/pg.h"
#include "mailhook/pg_array.h"
#include "mailhook/suppression_rules.h"
#include "pipeline.h"

static const char apply_sql[] = "SELECT key, value FROM mh_suppression_apply($1::jsonb)";

/*
 * Of the given (tenant, address) pairs, the ones under a soft-bounce suppression: the
 * only addresses a delivery's "reset" changes. mh_suppression_apply drops every other
 * reset itself (migrations/0004) with the same test, but each reset would first be a
 * whole effect object for the worker to build and PostgreSQL to parse — and deliveries
 * are most of a batch. Returns the 1-based positions of the pairs that matter.
 */
static const char resets_that_matter_sql[] =
    "SELECT x.i FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(tenant, address, i)"
    " WHERE EXISTS (SELECT 1 FROM mh_suppressions s WHERE s.tenant = x.tenant"
    " AND s.address = x.address AND s.temp_until > now())";

/* An event of the batch whose effect is a reset, waiting for resets_that_matter_sql. */
struct reset {
    json_t *ev;
    const struct mh_suppression_policy *pol;
    int fresh;
};

/* mh_pg_ok for a statement of suppression_apply: 0, or -1 (transient) / -2 (permanent, by
 * SQLSTATE) with err. */
static int check(PGresult *res, const char *what, char *err, size_t errlen)
{
    if (mh_pg_ok(res, PGRES_TUPLES_OK, what, err, errlen) == 0) return 0;
    return mh_pg_sqlstate_transient(mh_pg_sqlstate(res)) ? -1 : -2;
}

/* Appends the effects of the resets that matter to effects. 0, or -1 / -2 with err. */
static int add_resets(struct worker *w, const struct reset *resets, size_t n_resets,
                      struct mh_pg_array *tenants, struct mh_pg_array *addresses,
                      json_t *effects, char *err, size_t errlen)
{
    mh_pg_array_finish(tenants);
    mh_pg_array_finish(addresses);
    static const Oid types[] = {MH_PG_TEXT_ARRAY_OID, MH_PG_TEXT_ARRAY_OID};
    const char *values[] = {(const char *)tenants->buf, (const char *)addresses->buf};
    const int lengths[] = {(int)tenants->len, (int)addresses->len}, formats[] = {1, 1};
    PGresult *res = PQexecParams(w->pg, resets_that_matter_sql, 2, types, values, lengths,
                                 formats, 0);
    int rc = check(res, "select resets", err, errlen);
    if (rc < 0) {
        PQclear(res);
        return rc;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        long i = strtol(PQgetvalue(res, row, 0), NULL, 10) - 1;
        if (i < 0 || (size_t)i >= n_resets) continue;
        json_t *e = supp_effect(resets[i].pol, resets[i].ev, resets[i].fresh);
        if (e) json_array_append_new(effects, e);
    }
    PQclear(res);
    return 0;
}

int suppression_apply(struct worker *w, struct batch *b, char *err, size_t errlen)
{
    json_t *effects = json_array();
    struct mh_pg_array tenants, addresses;
    mh_pg_array_init(&tenants, MH_PG_TEXT_OID);
    mh_pg_array_init(&addresses, MH_PG_TEXT_OID);
    struct reset *resets = NULL;
    size_t n_resets = 0, cap = 0;
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
            const struct mh_suppression_policy *pol = mh_config_suppression(w->cfg, tenant);
            int fresh = r->fresh && r->fresh[j];
            const char *reason;
            char addr[SUPP_ADDRESS_MAX + 1];
            if (supp_rule(pol, ev, &reason) == SUPP_RESET) {
                /* Only its pair for now: supp_effect once the address proves to matter. */
                if (supp_address_normalize(json_string_value(json_object_get(ev, "recipient")),
                                           addr, sizeof(addr)) < 0)
                    continue;
                if (n_resets == cap) {
                    cap = cap ? cap * 2 : 64;
                    resets = mh_realloc(resets, cap * sizeof(*resets));
                }
                resets[n_resets++] = (struct reset){ev, pol, fresh};
                mh_pg_array_add_text(&tenants, tenant ? tenant : "", tenant ? strlen(tenant) : 0);
                mh_pg_array_add_text(&addresses, addr, strlen(addr));
                continue;
            }
            json_t *e = supp_effect(pol, ev, fresh);
            if (e) json_array_append_new(effects, e);
        }
    }
    if (n_resets && (rc = add_resets(w, resets, n_resets, &tenants, &addresses, effects, err,
                                     errlen)) < 0)
        goto out;
    rc = 0;
    if (json_array_size(effects) == 0) goto out;
    txt = json_dumps(effects, JSON_COMPACT);
    if (!txt) mh_oom();
    const char *params[] = {txt};
    w->pg_locks = 1; /* set before: a failure may leave some taken */
    res = PQexecParams(w->pg, apply_sql, 1, NULL, params, NULL, NULL, 0);
    if ((rc = check(res, "apply suppressions", err, errlen)) < 0) goto out;
    b->suppression_out = json_array();
    for (int row = 0; row < PQntuples(res); row++) {
        json_t *change = json_object();
        json_object_set_new(change, "key", json_string(PQgetvalue(res, row, 0)));
        json_t *value = NULL;
        if (!PQgetisnull(res, row, 1)) value = json_loads(PQgetvalue(res, row, 1), 0, NULL);
        json_object_set_new(change, "value", value ? value : json_null());
        json_array_append_new(b->suppression_out, change);
    }
out:
    PQclear(res);
    free(txt);
    free(resets);
    mh_pg_array_free(&tenants);
    mh_pg_array_free(&addresses);
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
    for (size_t i = 0; i < w->n_lanes; i++)
        suppression_release_conn(w->lanes[i]->pg, &w->lanes[i]->pg_locks);
}
