/*
 * ingest.h — state shared by the parts of mailhook-ingest.
 *
 * mailhook-ingest is one libevent loop. It never parses event semantics and never
 * talks to PostgreSQL: it verifies a request with its source's provider, publishes the
 * body byte for byte to the raw topic, and answers 200 only from the delivery report
 * of an acks=all, idempotent producer. Anything that cannot be acknowledged in time
 * gets 503 + Retry-After, so nothing acknowledged is ever lost.
 */
#ifndef MH_INGEST_H
#define MH_INGEST_H

#include <event2/event.h>
#include <event2/http.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mailhook/config.h"

/* A loaded config plus the requests still using it (SIGHUP swaps configs under load). */
struct ingest_cfg {
    struct mh_config *cfg;
    int refs;
};

struct ingest_stats {
    uint64_t requests, accepted, unauthorized, not_found, too_large, bad_request, unavailable,
        client_gone;
};

struct ingest {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct ingest_cfg *cur; /* the config new requests use */
    rd_kafka_t *rk;
    int wake_fds[2];     /* librdkafka writes here when delivery reports are queued */
    struct event *wake_ev;
    struct event *poll_ev;
    struct event *stats_ev;
    struct event *sig_term, *sig_int, *sig_hup;
    atomic_int kafka_ok;  /* set by the readiness probe thread */
    atomic_int stopping;  /* probe thread exit flag */
    int shutting_down;    /* first SIGTERM: refuse new work, drain */
    int64_t shutdown_deadline_ms;
    struct event *drain_ev; /* checks whether the drain is over */
    int exit_status;      /* 1 after a fatal producer error */
    long inflight;        /* requests waiting for a delivery report */
    struct ingest_stats stats;
};

struct ingest_cfg *ingest_cfg_ref(struct ingest_cfg *ic);
/* The producer failed for good: drain what can be answered, exit with status 1 so the
 * supervisor starts a fresh process (main.c). Called on the loop thread. */
void ingest_fatal(struct ingest *in);
void ingest_cfg_unref(struct ingest_cfg *ic);

/* publish.c */
int publish_init(struct ingest *in, char *err, size_t errlen);
void publish_fini(struct ingest *in);
/* Serves librdkafka's queue (delivery reports) from the event loop. */
void publish_poll(struct ingest *in);

struct publish_req;
/* Called when the record is acknowledged (err == 0) or has failed. */
typedef void (*publish_done_cb)(rd_kafka_resp_err_t err, void *opaque);

/*
 * Produces one record to the raw topic. Returns 0 when queued (done is called exactly
 * once later, from the event loop), or the librdkafka error when it could not be queued
 * (done is not called).
 */
rd_kafka_resp_err_t publish_record(struct ingest *in, const char *topic, const char *key,
                                   const void *value, size_t len, rd_kafka_headers_t *hdrs,
                                   void *opaque);
void publish_set_done_cb(publish_done_cb cb);

/* http.c */
int http_init(struct ingest *in, char *err, size_t errlen);
void http_fini(struct ingest *in);
/* Stop accepting new connections (shutdown). */
void http_stop_listening(struct ingest *in);

#endif
