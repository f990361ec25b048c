/*
 * store/suppressions.c — suppression state for the API and the CLI: "may I send?",
 * listing, manual changes, and publishing states that the topic does not have yet.
 *
 * Manual changes go through mh_suppression_apply exactly like events (same registers,
 * same per-address session locks), written at now with a generated event id. The new
 * states are produced to the compacted topic with an idempotent acks=all producer while
 * the locks are held, and the locks are released only after Kafka acknowledged them:
 * a worker or another API process writing the same address afterwards produces after
 * us, so the topic's last record per key stays the PostgreSQL state. Rows are marked
 * `pending` in the same transaction and cleared once published; if Kafka fails in
 * between, maintenance (supp_expire_and_publish) publishes them later.
 *
 * Not here: HTTP (http.c), the event log (store/eventlog.c), partitions
 * (store/maintain.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailhook/crypto.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/pg.h"
#include "mailhook/timeutil.h"
#include "suppressions.h"

#define PUBLISH_BATCH 500
#define MH_STR_(x) #x
#define MH_STR(x) MH_STR_(x)

/* The view's row as JSON, inline (a SQL function would be planned on every call). */
#define STATE_JSON                                                                          \
    "json_build_object('tenant', tenant, 'address', address, 'reason', reason,"             \
    " 'since', mh_rfc3339(since), 'expires_at', mh_rfc3339(expires_at),"                    \
    " 'source_event_id', source_event_id, 'source', source)"

static const char lookup_sql[] =
    "SELECT " STATE_JSON " FROM mh_suppressions_current WHERE tenant = $1 AND address = $2";

static const char list_sql[] =
    "SELECT " STATE_JSON " FROM mh_suppressions_current"
    " WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR reason = $2)"
    " AND ($3::text IS NULL OR (tenant, address) > ($4::text, $3::text))"
    " ORDER BY tenant, address LIMIT $5::integer";

static const char apply_sql[] = "SELECT key, value FROM mh_suppression_apply($1::jsonb, $2::boolean)";

static const char clear_pending_sql[] =
    "UPDATE mh_suppressions s SET pending = false"
    " FROM jsonb_to_recordset($1::jsonb) AS x(tenant text, address text)"
    " WHERE s.tenant = x.tenant AND s.address = x.address AND s.pending";

static const char due_sql[] =
    "SELECT tenant, address FROM mh_suppressions WHERE temp_until <= now()"
    " ORDER BY temp_until LIMIT " MH_STR(PUBLISH_BATCH);

static const char expire_sql[] =
    "UPDATE mh_suppressions s SET temp_at = NULL, temp_until = NULL, temp_event_id = NULL,"
    " pending = true, updated_at = now()"
    " FROM jsonb_to_recordset($1::jsonb) AS x(tenant text, address text)"
    " WHERE s.tenant = x.tenant AND s.address = x.address AND s.temp_until <= now()";

static const char pending_sql[] =
    "SELECT tenant, address FROM mh_suppressions WHERE pending"
    " ORDER BY tenant, address LIMIT " MH_STR(PUBLISH_BATCH);

/* ---- Kafka ------------------------------------------------------------------------------ */

struct pub_wait {
    int done;
    rd_kafka_resp_err_t err;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    (void)opaque;
    struct pub_wait *pw = rkm->_private;
    if (!pw) return;
    pw->err = rkm->err;
    __atomic_store_n(&pw->done, 1, __ATOMIC_RELEASE);
}

static int producer_init(struct supp_store *st, char *err, size_t errlen)
{
    /* message.timeout.ms bounds the wait for every delivery report below. */
    const char *overrides[] = {
        "enable.idempotence", "true",
        "acks", "all",
        "linger.ms", "1",
        "message.timeout.ms", "15000",
        NULL,
    };
    rd_kafka_conf_t *conf = mh_kafka_conf(st->cfg, overrides, err, errlen);
    if (!conf) return -1;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char rkerr[512];
    st->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!st->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka producer: %s", rkerr);
        return -1;
    }
    return 0;
}

/*
 * Produces states ([{"key", "value"}], value null = tombstone) and waits for every
 * delivery report. 0 when all were acknowledged, -1 with err.
 */
static int publish_states(struct supp_store *st, json_t *states, char *err, size_t errlen)
{
    size_t n = json_array_size(states);
    if (n == 0) return 0;
    if (!st->rk) {
        snprintf(err, errlen, "no producer for the suppressions topic");
        return -1;
    }
    const char *topic = st->cfg->worker.suppressions_topic;
    struct pub_wait *pw = mh_calloc(n, sizeof(*pw));
    size_t queued = 0;
    rd_kafka_resp_err_t perr = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < n; i++) {
        json_t *change = json_array_get(states, i);
        const char *key = json_string_value(json_object_get(change, "key"));
        json_t *value = json_object_get(change, "value");
        char *val = json_is_object(value) ? json_dumps(value, JSON_COMPACT) : NULL;
        if (!key) key = "";
        for (;;) {
            rd_kafka_headers_t *h = rd_kafka_headers_new(1);
            if (val) rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
            perr = rd_kafka_producev(st->rk, RD_KAFKA_V_TOPIC(topic),
                                     RD_KAFKA_V_KEY((void *)key, strlen(key)),
                                     RD_KAFKA_V_VALUE(val, val ? strlen(val) : 0),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(&pw[i]),
                                     RD_KAFKA_V_END);
            if (perr) rd_kafka_headers_destroy(h);
            if (perr != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
            rd_kafka_poll(st->rk, 50);
        }
        free(val);
        if (perr) break;
        queued++;
    }
    /* Every queued record gets its report within message.timeout.ms. */
    for (size_t i = 0; i < queued; i++)
        while (!__atomic_load_n(&pw[i].done, __ATOMIC_ACQUIRE)) rd_kafka_poll(st->rk, 20);
    int rc = 0;
    if (perr) {
        snprintf(err, errlen, "kafka produce to %s: %s", topic, rd_kafka_err2str(perr));
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < queued; i++) {
        if (pw[i].err) {
            snprintf(err, errlen, "kafka %s: %s", topic, rd_kafka_err2str(pw[i].err));
            rc = -1;
        }
    }
    free(pw);
    return rc;
}

/* ---- PostgreSQL ------------------------------------------------------------------------- */

int supp_store_ensure(struct supp_store *st, char *err, size_t errlen)
{
    if (st->pg && PQstatus(st->pg) == CONNECTION_OK) return 0;
    if (st->pg) PQfinish(st->pg);
    st->pg = NULL;
    st->locked = 0;
    if (mh_mono_ms() < st->next_connect_ms) {
        snprintf(err, errlen, "%s", st->connect_err);
        return -1;
    }
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {st->cfg->postgres.dsn, st->app, "5", NULL};
    st->pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(st->pg) != CONNECTION_OK) {
        snprintf(err, errlen, "postgres: %s", PQerrorMessage(st->pg));
        char *nl = strchr(err, '\n');
        if (nl) *nl = '\0';
        PQfinish(st->pg);
        st->pg = NULL;
        snprintf(st->connect_err, sizeof(st->connect_err), "%s", err);
        st->next_connect_ms = mh_mono_ms() + 1000;
        return -1;
    }
    PGresult *res = PQprepare(st->pg, "supp_lookup", lookup_sql, 2, NULL);
    int rc = mh_pg_ok(res, PGRES_COMMAND_OK, "prepare lookup", err, errlen);
    PQclear(res);
    if (rc < 0) {
        PQfinish(st->pg);
        st->pg = NULL;
    }
    return rc;
}

int supp_store_open(struct supp_store *st, const struct mh_config *cfg, const char *app,
                    int with_producer, char *err, size_t errlen)
{
    st->cfg = cfg;
    st->app = app;
    if (with_producer && producer_init(st, err, errlen) < 0) return -1;
    return supp_store_ensure(st, err, errlen);
}

void supp_store_close(struct supp_store *st)
{
    if (st->rk) {
        rd_kafka_flush(st->rk, 10000);
        rd_kafka_destroy(st->rk);
        st->rk = NULL;
    }
    if (st->pg) PQfinish(st->pg);
    st->pg = NULL;
}

void supp_unlock_all(struct supp_store *st)
{
    if (!st->locked) return;
    st->locked = 0;
    if (st->pg && PQstatus(st->pg) == CONNECTION_OK)
        PQclear(PQexec(st->pg, "SELECT pg_advisory_unlock_all()"));
}

/* A failed statement on a lost connection: forget it, the next call reconnects. */
static void check_conn(struct supp_store *st)
{
    if (st->pg && PQstatus(st->pg) != CONNECTION_OK) {
        PQfinish(st->pg);
        st->pg = NULL;
        st->locked = 0;
    }
}

int supp_lookup(struct supp_store *st, const char *tenant, const char *address, json_t **state,
                char *err, size_t errlen)
{
    *state = NULL;
    if (supp_store_ensure(st, err, errlen) < 0) return -1;
    const char *params[] = {tenant, address};
    PGresult *res = PQexecPrepared(st->pg, "supp_lookup", 2, params, NULL, NULL, 0);
    int rc = -1;
    if (mh_pg_ok(res, PGRES_TUPLES_OK, "lookup", err, errlen) < 0) {
        check_conn(st);
        goto out;
    }
    rc = 0;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        *state = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        rc = *state ? 1 : 0;
    }
out:
    PQclear(res);
    return rc;
}

int supp_list(struct supp_store *st, const char *tenant, const char *reason, const char *after,
              const char *after_tenant, long limit, json_t **items, char *err, size_t errlen)
{
    *items = NULL;
    if (supp_store_ensure(st, err, errlen) < 0) return -1;
    char lim[32];
    snprintf(lim, sizeof(lim), "%ld", limit);
    /* The cursor is (tenant, address); with one tenant asked for, its tenant is that one. */
    const char *cursor_tenant = after_tenant ? after_tenant : tenant ? tenant : "";
    const char *params[] = {tenant, reason, after, after ? cursor_tenant : NULL, lim};
    PGresult *res = PQexecParams(st->pg, list_sql, 5, NULL, params, NULL, NULL, 0);
    if (mh_pg_ok(res, PGRES_TUPLES_OK, "list suppressions", err, errlen) < 0) {
        PQclear(res);
        check_conn(st);
        return -1;
    }
    *items = json_array();
    for (int row = 0; row < PQntuples(res); row++) {
        json_t *v = json_loads(PQgetvalue(res, row, 0), 0, NULL);
        if (v) json_array_append_new(*items, v);
    }
    PQclear(res);
    return 0;
}

/* Runs mh_suppression_apply (taking the locks); *states: new array of {key, value}. */
static int apply_effects(struct supp_store *st, json_t *effects, int pending, json_t **states,
                         char *err, size_t errlen)
{
    char *txt = json_dumps(effects, JSON_COMPACT);
    if (!txt) mh_oom();
    const char *params[] = {txt, pending ? "true" : "false"};
    st->locked = 1;
    PGresult *res = PQexecParams(st->pg, apply_sql, 2, NULL, params, NULL, NULL, 0);
    free(txt);
    if (mh_pg_ok(res, PGRES_TUPLES_OK, "apply suppressions", err, errlen) < 0) {
        PQclear(res);
        return -1;
    }
    *states = json_array();
    for (int row = 0; row < PQntuples(res); row++) {
        json_t *change = json_object();
        json_object_set_new(change, "key", json_string(PQgetvalue(res, row, 0)));
        json_t *v = PQgetisnull(res, row, 1) ? NULL : json_loads(PQgetvalue(res, row, 1), 0, NULL);
        json_object_set_new(change, "value", v ? v : json_null());
        json_array_append_new(*states, change);
    }
    PQclear(res);
    return 0;
}

static int exec_json(struct supp_store *st, const char *sql, json_t *arg, const char *what,
                     char *err, size_t errlen)
{
    char *txt = json_dumps(arg, JSON_COMPACT);
    if (!txt) mh_oom();
    const char *params[] = {txt};
    PGresult *res = PQexecParams(st->pg, sql, 1, NULL, params, NULL, NULL, 0);
    free(txt);
    int rc = mh_pg_ok(res, PGRES_COMMAND_OK, what, err, errlen);
    PQclear(res);
    return rc;
}

static int exec_cmd(struct supp_store *st, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(st->pg, sql);
    int rc = mh_pg_ok(res, PGRES_COMMAND_OK, sql, err, errlen);
    PQclear(res);
    return rc;
}

int supp_write(struct supp_store *st, json_t *ops, const char *source, json_t **states,
               char *err, size_t errlen)
{
    json_t *effects = json_array(), *out = NULL;
    char now[MH_TIME_BUFSZ];
    int rc = -1;
    if (states) *states = NULL;
    if (supp_store_ensure(st, err, errlen) < 0) goto done;
    mh_time_format(mh_now_ms(), now);

    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        char id[64], rnd[33];
        mh_random_hex(16, rnd);
        snprintf(id, sizeof(id), "%s-%s", source, rnd);
        json_t *e = json_object();
        json_object_set(e, "tenant", json_object_get(op, "tenant"));
        json_object_set(e, "address", json_object_get(op, "address"));
        json_object_set(e, "op", json_object_get(op, "op"));
        json_object_set(e, "reason", json_object_get(op, "reason"));
        json_object_set_new(e, "at", json_string(now));
        json_object_set_new(e, "event_id", json_string(id));
        json_object_set_new(e, "source", json_string(source));
        json_object_set_new(e, "fresh", json_true());
        json_array_append_new(effects, e);
    }
    if (exec_cmd(st, "BEGIN", err, errlen) < 0) goto fail;
    if (apply_effects(st, effects, 1, &out, err, errlen) < 0) {
        PQclear(PQexec(st->pg, "ROLLBACK"));
        goto fail;
    }
    if (exec_cmd(st, "COMMIT", err, errlen) < 0) goto fail;

    char kerr[512];
    if (publish_states(st, out, kerr, sizeof(kerr)) < 0) {
        snprintf(err, errlen, "saved, but not yet on the suppressions topic (maintenance "
                 "will publish it): %s", kerr);
        goto fail;
    }
    if (exec_json(st, clear_pending_sql, effects, "clear pending", err, errlen) < 0) goto fail;
    rc = 0;
fail:
    supp_unlock_all(st);
    check_conn(st);
done:
    if (rc == 0 && states) *states = out;
    else json_decref(out);
    json_decref(effects);
    return rc;
}

/* tenant/address rows of a query result as [{"tenant", "address", "fresh": false}]. */
static json_t *keys_of(PGresult *res)
{
    json_t *keys = json_array();
    for (int row = 0; row < PQntuples(res); row++) {
        json_t *k = json_object();
        json_object_set_new(k, "tenant", json_string(PQgetvalue(res, row, 0)));
        json_object_set_new(k, "address", json_string(PQgetvalue(res, row, 1)));
        json_object_set_new(k, "fresh", json_false());
        json_array_append_new(keys, k);
    }
    return keys;
}

/*
 * One round: the addresses of select_sql, locked; expired temporary suppressions ended
 * (when expire); their current states published; pending cleared. *n: rows handled.
 */
static int publish_round(struct supp_store *st, const char *select_sql, int expire, size_t *n,
                         size_t *published, char *err, size_t errlen)
{
    json_t *keys = NULL, *states = NULL;
    int rc = -1;
    *n = 0;
    PGresult *res = PQexec(st->pg, select_sql);
    if (mh_pg_ok(res, PGRES_TUPLES_OK, "select addresses", err, errlen) < 0) {
        PQclear(res);
        return -1;
    }
    keys = keys_of(res);
    PQclear(res);
    if (json_array_size(keys) == 0) {
        rc = 0;
        goto out;
    }
    /* Locks first (no effect is fresh), then the change, then the states to publish. */
    json_t *ignored = NULL;
    if (apply_effects(st, keys, 0, &ignored, err, errlen) < 0) goto out;
    json_decref(ignored);
    if (expire && exec_json(st, expire_sql, keys, "expire", err, errlen) < 0) goto out;
    if (apply_effects(st, keys, 0, &states, err, errlen) < 0) goto out;
    if (publish_states(st, states, err, errlen) < 0) goto out;
    if (exec_json(st, clear_pending_sql, keys, "clear pending", err, errlen) < 0) goto out;
    *n = json_array_size(keys);
    *published += json_array_size(states);
    rc = 0;
out:
    supp_unlock_all(st);
    json_decref(keys);
    json_decref(states);
    return rc;
}

int supp_expire_and_publish(struct supp_store *st, size_t *published, char *err, size_t errlen)
{
    *published = 0;
    if (supp_store_ensure(st, err, errlen) < 0) return -1;
    size_t n;
    int rc = 0;
    do {
        rc = publish_round(st, due_sql, 1, &n, published, err, errlen);
    } while (rc == 0 && n == PUBLISH_BATCH);
    do {
        if (rc == 0) rc = publish_round(st, pending_sql, 0, &n, published, err, errlen);
    } while (rc == 0 && n == PUBLISH_BATCH);
    check_conn(st);
    return rc;
}
