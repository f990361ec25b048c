/*
 * sources_stats.c — GET /v1/sources/stats?range=&step=: per configured source (those
 * the token may see), series of [unix time, value] pairs, one per step:
 *   responses    by status code, from the ingest's /metrics (scrape.c's rings)
 *   ack_seconds  p50 and p99 of the time to 200, from the per-source histogram's
 *                bucket increases within each step
 *   events       by type, from the event log (mh_event_claims: event time log_at)
 *   bounce_rate  bounced / (delivered + bounced), complaint_rate complained / delivered
 * The metrics part is built on the loop (the rings are the loop's); the event counts
 * come from one grouped, bounded query on the pool.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "endpoint.h"
#include "mailhook/api_tokens.h"
#include "mailhook/log.h"
#include "mailhook/pg.h"
#include "mailhook/provider.h"
#include "scrape.h"

#define DEFAULT_RANGE 3600
#define DEFAULT_STEP 60
#define MAX_RANGE 86400
#define MIN_STEP 10
#define MAX_POINTS 1440
#define MAX_GROUPS 100000

struct stats_call {
    struct api_job job; /* first: the pool hands it back */
    struct api_server *s;
    struct evhttp_request *req;
    int64_t start, step;
    long points;
    json_t *tenants; /* the visible sources' tenants */
    json_t *out;     /* the reply, metrics filled in on the loop */
    json_t *groups;  /* [source, type, t, count] from PostgreSQL; NULL: err */
    char err[1024];
};

static const char sql[] =
    "SELECT coalesce(source, event->>'source'), event_type,"
    " (floor(extract(epoch FROM log_at) / $2::bigint) * $2::bigint)::bigint, count(*)"
    " FROM mh_event_claims"
    " WHERE tenant IN (SELECT jsonb_array_elements_text($1::jsonb))"
    " AND log_at >= to_timestamp($3::bigint) AND log_at < to_timestamp($4::bigint)"
    " GROUP BY 1, 2, 3 LIMIT $5::integer";

static void stats_run(struct api_job *job, struct supp_store *st)
{
    struct stats_call *c = (struct stats_call *)job;
    if (supp_store_ensure(st, c->err, sizeof(c->err)) < 0) return;
    char *tenants = json_dumps(c->tenants, JSON_COMPACT);
    char step[24], from[24], to[24], lim[24];
    snprintf(step, sizeof(step), "%lld", (long long)c->step);
    snprintf(from, sizeof(from), "%lld", (long long)c->start);
    snprintf(to, sizeof(to), "%lld", (long long)(c->start + c->points * c->step));
    snprintf(lim, sizeof(lim), "%d", MAX_GROUPS);
    const char *params[] = {tenants, step, from, to, lim};
    PGresult *res = PQexecParams(st->pg, sql, 5, NULL, params, NULL, NULL, 0);
    free(tenants);
    if (mh_pg_ok(res, PGRES_TUPLES_OK, "event counts", c->err, sizeof(c->err)) == 0) {
        c->groups = json_array();
        for (int i = 0; i < PQntuples(res); i++) {
            if (PQgetisnull(res, i, 0)) continue;
            json_t *row = json_pack("[ssII]", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                    (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10),
                                    (json_int_t)strtoll(PQgetvalue(res, i, 3), NULL, 10));
            if (row) json_array_append_new(c->groups, row);
        }
    }
    PQclear(res);
}

/* [[t, 0], ...] for every step. */
static json_t *zero_series(const struct stats_call *c)
{
    json_t *a = json_array();
    for (long k = 0; k < c->points; k++)
        json_array_append_new(a, json_pack("[Ii]", (json_int_t)(c->start + k * c->step), 0));
    return a;
}

static double value_at(json_t *series, long k)
{
    return series ? json_number_value(json_array_get(json_array_get(series, (size_t)k), 1)) : 0;
}

static json_t *ratio_series(const struct stats_call *c, json_t *num, json_t *den1, json_t *den2)
{
    json_t *a = json_array();
    for (long k = 0; k < c->points; k++) {
        double n = value_at(num, k), d = value_at(den1, k) + value_at(den2, k);
        json_array_append_new(a, json_pack("[Io]", (json_int_t)(c->start + k * c->step),
                                           d > 0 ? json_real(n / d) : json_null()));
    }
    return a;
}

/* Adds the event counts and the rates to each source of c->out. */
static void add_events(struct stats_call *c)
{
    size_t i;
    json_t *src;
    json_array_foreach(json_object_get(c->out, "sources"), i, src) {
        const char *name = json_string_value(json_object_get(src, "name"));
        json_t *events = json_object();
        size_t j;
        json_t *g;
        json_array_foreach(c->groups, j, g) {
            if (strcmp(json_string_value(json_array_get(g, 0)), name)) continue;
            const char *type = json_string_value(json_array_get(g, 1));
            long k = (long)((json_integer_value(json_array_get(g, 2)) - c->start) / c->step);
            if (k < 0 || k >= c->points) continue;
            json_t *series = json_object_get(events, type);
            if (!series) json_object_set_new(events, type, series = zero_series(c));
            json_t *pt = json_array_get(series, (size_t)k);
            json_array_set_new(pt, 1, json_integer(json_integer_value(json_array_get(pt, 1)) +
                                                   json_integer_value(json_array_get(g, 3))));
        }
        json_t *delivered = json_object_get(events, "email.delivered"),
               *bounced = json_object_get(events, "email.bounced"),
               *complained = json_object_get(events, "email.complained");
        json_object_set_new(src, "bounce_rate", ratio_series(c, bounced, delivered, bounced));
        json_object_set_new(src, "complaint_rate", ratio_series(c, complained, delivered, NULL));
        json_object_set_new(src, "events", events);
    }
}

static void stats_done(struct api_job *job)
{
    struct stats_call *c = (struct stats_call *)job;
    if (c->groups) {
        add_events(c);
        api_reply(c->s, c->req, 200, c->out);
        c->out = NULL;
    } else {
        api_reply_unavailable(c->s, c->req, c->err);
    }
    json_decref(c->out);
    json_decref(c->groups);
    json_decref(c->tenants);
    free(c);
}

/* responses and ack_seconds of one source from its ring. */
static void add_metrics(const struct stats_call *c, json_t *o, const struct scrape_source *ss)
{
    double (*codes)[SRC_CODES] = mh_calloc((size_t)c->points, sizeof(*codes));
    double (*buckets)[SRC_BUCKETS] = mh_calloc((size_t)c->points, sizeof(*buckets));
    for (size_t i = 0; ss && i < ss->ring.n; i++) {
        const struct src_sample *s = src_ring_get(&ss->ring, i);
        if (s->t < c->start) continue;
        long k = (long)((s->t - c->start) / c->step);
        if (k >= c->points) continue;
        for (int j = 0; j < SRC_CODES; j++) codes[k][j] += s->codes[j];
        for (int j = 0; j < SRC_BUCKETS; j++) buckets[k][j] += s->buckets[j];
    }
    json_t *responses = json_object();
    for (int j = 0; j < SRC_CODES; j++) {
        json_t *a = json_array();
        for (long k = 0; k < c->points; k++)
            json_array_append_new(a, json_pack("[II]", (json_int_t)(c->start + k * c->step),
                                               (json_int_t)llround(codes[k][j])));
        json_object_set_new(responses, src_codes[j], a);
    }
    json_object_set_new(o, "responses", responses);
    double bounds[MH_HIST_NBOUNDS];
    for (size_t j = 0; j < MH_HIST_NBOUNDS; j++) bounds[j] = mh_histogram_bound(j);
    json_t *p50 = json_array(), *p99 = json_array();
    for (long k = 0; k < c->points; k++) {
        json_int_t t = (json_int_t)(c->start + k * c->step);
        double a = hist_quantile(buckets[k], bounds, SRC_BUCKETS, 0.5);
        double b = hist_quantile(buckets[k], bounds, SRC_BUCKETS, 0.99);
        json_array_append_new(p50, json_pack("[Io]", t, a < 0 ? json_null() : json_real(a)));
        json_array_append_new(p99, json_pack("[Io]", t, b < 0 ? json_null() : json_real(b)));
    }
    json_object_set_new(o, "ack_seconds", json_pack("{soso}", "p50", p50, "p99", p99));
    free(codes);
    free(buckets);
}

/* A whole number parameter from min to max (def when absent); -1 when invalid. */
static long whole(const char *v, long def, long min, long max)
{
    if (!v) return def;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || end == v || n < min || n > max ? -1 : n;
}

void api_sources_stats(struct api_server *s, struct evhttp_request *req,
                       const struct mh_api_token *tok)
{
    static const char *const allowed[] = {"range", "step", NULL};
    struct api_query p = {0};
    char msg[160];
    if (api_params(s, req, &p, allowed) < 0) goto out;
    long range = whole(api_query_get(&p, "range"), DEFAULT_RANGE, MIN_STEP, MAX_RANGE);
    long step = whole(api_query_get(&p, "step"), DEFAULT_STEP, MIN_STEP, MAX_RANGE);
    if (range < 0 || step < 0 || step > range || range / step > MAX_POINTS) {
        snprintf(msg, sizeof(msg), "range and step: whole seconds, %d <= step <= range <= %d, "
                 "at most %d steps", MIN_STEP, MAX_RANGE, MAX_POINTS);
        api_reply_error(s, req, 400, msg);
        goto out;
    }
    const struct mh_config *cfg = api_server_cfg(s);
    struct stats_call *c = mh_calloc(1, sizeof(*c));
    int64_t now = (int64_t)time(NULL);
    c->step = step;
    c->points = range / step;
    c->start = now / step * step - (c->points - 1) * step;
    c->tenants = json_array();
    json_t *sources = json_array();
    struct api_scraper *sc = api_server_scraper(s);
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const struct mh_source *src = cfg->sources[i];
        if (!mh_api_token_allows(tok, src->tenant)) continue;
        json_t *o = json_pack("{ssssss}", "name", src->name, "provider", src->provider->name,
                              "tenant", src->tenant);
        if (!o) continue;
        add_metrics(c, o, scrape_source_of(sc, src->name, 0));
        json_array_append_new(sources, o);
        int have = 0;
        size_t j;
        json_t *t;
        json_array_foreach(c->tenants, j, t) have |= !strcmp(json_string_value(t), src->tenant);
        if (!have) json_array_append_new(c->tenants, json_string(src->tenant));
    }
    c->out = json_pack("{sIsIso}", "now", (json_int_t)now, "step", (json_int_t)step, "sources",
                       sources);
    c->s = s;
    c->req = req;
    c->job.run = stats_run;
    c->job.done = stats_done;
    if (api_pool_submit(api_server_pool(s), &c->job) < 0) {
        json_decref(c->out);
        json_decref(c->tenants);
        free(c);
        api_reply_unavailable(s, req, "too many requests waiting for the database");
    }
out:
    api_query_clear(&p);
}
