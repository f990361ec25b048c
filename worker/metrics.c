/*
 * metrics.c — the worker's /metrics and /healthz (metrics.h).
 *
 * The event base is created and bound here, in the caller's thread, so a bad or taken
 * address is reported at start-up; from then on only the metrics thread touches it. A
 * 100 ms timer on that loop watches the stop flag, so stopping needs no cross-thread
 * libevent call.
 */
#include "metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/event_types.h"
#include "mailhook/log.h"
#include "mailhook/timeutil.h"

struct worker_metrics {
    struct worker *w;
    struct event_base *base;
    struct evhttp *http;
    struct event *tick;
    pthread_t thread;
    int started;
    atomic_int stop;
};

static uint64_t get(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static int64_t gauge(_Atomic int64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* Seconds since the pipeline loop last went round. */
static double loop_age_s(struct worker *w)
{
    int64_t at = gauge(&w->stats.loop_ms);
    return at ? (double)(mh_mono_ms() - at) / 1000.0 : 0.0;
}

static void counter(struct evbuffer *b, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                        (unsigned long long)v);
}

/* mailhook_worker_events_total{source,type}: every configured source with every canonical
 * type, zeros included, so a rate over it exists from the first scrape (source names are
 * [A-Za-z0-9._-], config.c: no label escaping needed). */
static void write_event_counts(struct evbuffer *b, const struct event_counts *c)
{
    evbuffer_add_printf(b, "# HELP mailhook_worker_events_total Canonical events emitted, by "
                           "source and type (committed batches; duplicates not counted).\n"
                           "# TYPE mailhook_worker_events_total counter\n");
    if (!c->n) return;
    for (size_t i = 0; i < c->cfg->n_sources; i++)
        for (size_t t = 0; t < mh_event_types_n; t++)
            evbuffer_add_printf(b, "mailhook_worker_events_total{source=\"%s\",type=\"%s\"} %llu\n",
                                c->cfg->sources[i]->name, mh_event_types[t],
                                (unsigned long long)event_counts_get(c, i, t));
}

static void handle_metrics(struct worker_metrics *m, struct evhttp_request *req)
{
    struct worker_stats *s = &m->w->stats;
    struct evbuffer *b = evbuffer_new();
    counter(b, "mailhook_worker_records_total", "Raw records processed (committed batches).",
            get(&s->records));
    counter(b, "mailhook_worker_events_emitted_total",
            "Canonical events emitted to the events topic.", get(&s->events_emitted));
    counter(b, "mailhook_worker_duplicates_total",
            "Events not emitted because another record claims them.", get(&s->duplicates));
    counter(b, "mailhook_worker_dead_letters_total", "Raw records sent to the dead-letter topic.",
            get(&s->dead_letters));
    counter(b, "mailhook_worker_store_dead_letters_total",
            "Of the dead letters, raw records PostgreSQL refused for good (stage store).",
            get(&s->store_dead_letters));
    counter(b, "mailhook_worker_batches_total", "Batches committed.", get(&s->batches));
    counter(b, "mailhook_worker_transaction_aborts_total",
            "Kafka transactions aborted (the batch is processed again).", get(&s->aborts));
    counter(b, "mailhook_worker_pg_retries_total", "Claim transactions retried after an error.",
            get(&s->pg_retries));
    counter(b, "mailhook_worker_lane_claims_total",
            "Claims split over more than one lane ([worker] claim_lanes).", get(&s->lane_claims));
    counter(b, "mailhook_worker_lane_transactions_total",
            "PostgreSQL transactions of the claims split over lanes.",
            get(&s->lane_transactions));
    evbuffer_add_printf(b,
                        "# HELP mailhook_worker_stage_seconds_total Time spent in each stage "
                        "of a batch.\n"
                        "# TYPE mailhook_worker_stage_seconds_total counter\n"
                        "mailhook_worker_stage_seconds_total{stage=\"normalize\"} %.3f\n"
                        "mailhook_worker_stage_seconds_total{stage=\"claim\"} %.3f\n"
                        "mailhook_worker_stage_seconds_total{stage=\"emit\"} %.3f\n",
                        (double)get(&s->normalize_ms) / 1000.0, (double)get(&s->claim_ms) / 1000.0,
                        (double)get(&s->emit_ms) / 1000.0);
    evbuffer_add_printf(b,
                        "# HELP mailhook_worker_assigned_partitions Raw-topic partitions "
                        "assigned to this worker.\n"
                        "# TYPE mailhook_worker_assigned_partitions gauge\n"
                        "mailhook_worker_assigned_partitions %lld\n"
                        "# HELP mailhook_worker_claim_lanes Lanes a claim is split into now: "
                        "the worker's share of [worker] claim_lanes.\n"
                        "# TYPE mailhook_worker_claim_lanes gauge\n"
                        "mailhook_worker_claim_lanes %lld\n"
                        "# HELP mailhook_worker_lag_records Records between this worker's "
                        "position and the high watermark, over its partitions.\n"
                        "# TYPE mailhook_worker_lag_records gauge\n"
                        "mailhook_worker_lag_records %lld\n"
                        "# HELP mailhook_worker_loop_age_seconds Seconds since the pipeline "
                        "loop last went round.\n"
                        "# TYPE mailhook_worker_loop_age_seconds gauge\n"
                        "mailhook_worker_loop_age_seconds %.3f\n"
                        "# HELP mailhook_worker_batch_events_max Most canonical events one "
                        "batch held once parsed, since the worker started.\n"
                        "# TYPE mailhook_worker_batch_events_max gauge\n"
                        "mailhook_worker_batch_events_max %lld\n",
                        (long long)gauge(&s->assigned_partitions),
                        (long long)gauge(&s->claim_lanes),
                        (long long)gauge(&s->lag_records), loop_age_s(m->w),
                        (long long)gauge(&s->batch_events_max));
    write_event_counts(b, &s->events);
    mh_histogram_write(&s->batch_latency, "mailhook_worker_batch_seconds",
                       "Time to parse, claim and emit one committed batch.", b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void reply_json(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s\n", body);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct worker_metrics *m = arg;
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri, "?");
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        reply_json(req, 405, "Method Not Allowed", "{\"error\":\"use GET\"}");
    } else if (plen == 8 && !strncmp(uri, "/metrics", plen)) {
        handle_metrics(m, req);
    } else if (plen == 8 && !strncmp(uri, "/healthz", plen)) {
        double age = loop_age_s(m->w);
        char body[128];
        if (age > WORKER_STALL_S) {
            snprintf(body, sizeof(body), "{\"status\":\"stalled\",\"loop_age_s\":%.0f}", age);
            reply_json(req, 503, "Service Unavailable", body);
        } else {
            reply_json(req, 200, "OK", "{\"status\":\"ok\"}");
        }
    } else {
        reply_json(req, 404, "Not Found", "{\"error\":\"not found\"}");
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker_metrics *m = arg;
    if (atomic_load(&m->stop)) event_base_loopexit(m->base, NULL);
}

static void *serve(void *arg)
{
    struct worker_metrics *m = arg;
    event_base_dispatch(m->base);
    return NULL;
}

struct worker_metrics *worker_metrics_start(const char *listen, struct worker *w, char *err,
                                            size_t errlen)
{
    char host[256];
    int port;
    if (mh_split_listen(listen, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "metrics listen: expected host:port, not \"%s\"", listen);
        return NULL;
    }
    struct worker_metrics *m = mh_calloc(1, sizeof(*m));
    m->w = w;
    m->base = event_base_new();
    if (!m->base) {
        snprintf(err, errlen, "metrics: cannot create an event loop");
        goto fail;
    }
    m->http = evhttp_new(m->base);
    evhttp_set_max_headers_size(m->http, 8192);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_timeout(m->http, 10);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(m->http, on_request, m);
    if (!evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port)) {
        snprintf(err, errlen, "metrics: cannot listen on %s: %s", listen, strerror(errno));
        goto fail;
    }
    m->tick = event_new(m->base, -1, EV_PERSIST, on_tick, m);
    struct timeval tv = {0, 100 * 1000};
    event_add(m->tick, &tv);
    if (pthread_create(&m->thread, NULL, serve, m) != 0) {
        snprintf(err, errlen, "metrics: cannot start its thread");
        goto fail;
    }
    m->started = 1;
    return m;
fail:
    worker_metrics_stop(m);
    return NULL;
}

void worker_metrics_stop(struct worker_metrics *m)
{
    if (!m) return;
    if (m->started) {
        atomic_store(&m->stop, 1);
        pthread_join(m->thread, NULL);
    }
    if (m->tick) event_free(m->tick);
    if (m->http) evhttp_free(m->http);
    if (m->base) event_base_free(m->base);
    free(m);
}
