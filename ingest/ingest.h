/*
 * ingest.h — state shared by the parts of mailhook-ingest.
 *
 * mailhook-ingest runs one libevent loop per core ([ingest] threads). It never parses
 * event semantics and never talks to PostgreSQL: it verifies a request with its
 * source's provider, publishes the body byte for byte to the raw topic, and answers 200
 * only from the delivery report of an acks=all, idempotent producer. Anything that cannot be acknowledged in time
 * gets 503 + Retry-After, so nothing acknowledged is ever lost. A signature mismatch of
 * a source with quarantine = true is still 401, and the request is also kept on the
 * quarantine topic (quarantine.c).
 */
#ifndef MH_INGEST_H
#define MH_INGEST_H

#include <event2/event.h>
#include <event2/http.h>
#include <librdkafka/rdkafka.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mailhook/config.h"
#include "mailhook/histogram.h"
#include "mailhook/quarantine.h"
#include "mailhook/timeutil.h"

/* A loaded config plus the requests and loops still using it (SIGHUP swaps configs
 * under load). */
/* How one source's webhooks were answered, for /metrics. Per config generation: a
 * reload starts them again from 0 (a counter reset, as Prometheus expects it). */
struct source_stats {
    _Atomic uint64_t accepted, unauthorized, bad_request, unavailable;
    struct mh_histogram ack_latency;    /* request complete -> 200 sent, this source's */
    struct mh_rate_limit quarantine_rl; /* [ingest] quarantine_rate (quarantine.c) */
};

struct ingest_cfg {
    struct mh_config *cfg;
    struct source_stats *sources; /* sources[i] counts cfg->sources[i] */
    SSL_CTX *tls; /* new connections' TLS context (a reference), NULL: plain HTTP */
    atomic_int refs;
};

/* Process-wide counters, bumped by every loop. */
struct ingest_stats {
    _Atomic uint64_t requests, accepted, unauthorized, not_found, too_large, bad_request,
        unavailable, client_gone;
    _Atomic uint64_t accept_pauses; /* accept() failed: the loop paused accepting (accept.c) */
    _Atomic uint64_t deadline_closes; /* no whole request within the deadline (deadline.c) */
    struct mh_histogram ack_latency; /* request complete -> 200 sent */
    /* quarantine.c: signature mismatches kept, and those not kept, by why */
    _Atomic uint64_t quarantined, quarantine_dropped_rate, quarantine_dropped_size,
        quarantine_failed;
};

struct ingest;

/* What the loops share: one per process (main.c). */
struct ingest_proc {
    struct ingest *loops;
    int n_loops;
    atomic_int kafka_ok;       /* set by the readiness probe thread */
    atomic_int stopping;       /* probe thread exit flag */
    atomic_int exit_status;    /* 1 after a fatal producer error */
    struct ingest_stats stats;
    rd_kafka_t *rk;            /* the producer every loop publishes with (publish.c) */
    struct event_base *base;   /* the main thread's: signals, stats */
    struct event *fatal_ev;    /* a loop's producer failed for good */
    SSL_CTX *tls;              /* the latest TLS context (tls.c; main thread), or NULL */
};

/*
 * One event loop, on a thread of its own, with its own HTTP server on its own
 * SO_REUSEPORT socket: a request is verified, published and answered on the loop that
 * accepted it. The loops share the process's producer (publish.c), whose delivery
 * reports come back to each request's own loop, and the counters.
 */
struct ingest {
    struct ingest_proc *proc;
    int id;
    pthread_t tid;
    int started;
    struct event_base *base;
    struct evhttp *http;
    evutil_socket_t listen_fd; /* this loop's SO_REUSEPORT socket, until the listener owns it */
    struct evhttp_bound_socket *bound;
    struct ingest_cfg *cur; /* the config new requests use; swapped on this loop only */
    rd_kafka_t *rk;       /* the process's producer (proc->rk) */
    /* publish.c: delivery reports for this loop's requests, filled by the reports thread */
    pthread_mutex_t inbox_mu;
    struct report *inbox, *inbox_spare;
    size_t inbox_n, inbox_cap, inbox_spare_cap;
    struct event *inbox_ev; /* activated when the inbox gets its first report */
    struct event *ctl_ev; /* activated by the main thread: reload or stop */
    pthread_mutex_t ctl_mu;
    struct ingest_cfg *next_cfg; /* a reload waiting for this loop (under ctl_mu) */
    int stop_requested;          /* under ctl_mu */
    int shutting_down;    /* refuse new work, drain */
    struct mh_shutdown *shutdown; /* the drain, once shutting down */
    atomic_long inflight; /* requests waiting for a delivery report */
    _Atomic uint64_t requests; /* this loop's share of stats.requests */
    /* accept.c: the connection cap and the pause after a failed accept() (loop thread) */
    long conns, max_conns;
    atomic_long conns_gauge; /* conns, for /metrics on any loop */
    int accepting, accept_paused;
    int64_t accept_warned_ms;
    struct bufferevent **fresh; /* accepted since on_fresh last ran (a reference each) */
    size_t n_fresh, cap_fresh;
    struct event *fresh_ev, *resume_ev;
    /* http.c: random bytes for request ids, drawn from OpenSSL a pool at a time */
    unsigned char rid_pool[1024];
    size_t rid_left;
    /* http.c: the second of the last mh-received-at, formatted (received_at) */
    int64_t received_sec;
    char received_fmt[MH_TIME_BUFSZ];
    /* http.c: evhttp's inactivity timeout of every connection ([ingest] read_timeout_ms) */
    struct timeval http_timeout;
    /* http.c: the common timeout of the ack deadline (its length in ms, for a reload) */
    long ack_tv_ms;
    const struct timeval *ack_tv;
    /* deadline.c: each open connection's whole-request timer, by file descriptor */
    struct conn_deadline **deadlines;
    size_t n_deadlines;
    long deadline_ms;
    const struct timeval *deadline_tv; /* the loop's common timeout of deadline_ms */
};

/* Takes cfg; one reference. Holds a reference of tls (NULL: plain HTTP). */
struct ingest_cfg *ingest_cfg_new(struct mh_config *cfg, SSL_CTX *tls);
struct ingest_cfg *ingest_cfg_ref(struct ingest_cfg *ic);
/* The counters of src, one of ic's sources. */
struct source_stats *ingest_source_stats(struct ingest_cfg *ic, const struct mh_source *src);
/* The producer failed for good: every loop drains what can be answered, and the
 * process exits with status 1 so the supervisor starts a fresh one (main.c). Called on
 * one of librdkafka's threads. */
void ingest_fatal(struct ingest_proc *p);
void ingest_cfg_unref(struct ingest_cfg *ic);

/* publish.c */
/* The producer's linger.ms when [kafka] sets neither linger.ms nor queue.buffering.max.ms. */
#define INGEST_LINGER_MS "0.3"
/* Makes the process's producer and starts its delivery report thread (p->loops exist). */
int publish_start(struct ingest_proc *p, const struct mh_config *cfg, char *err, size_t errlen);
/* A loop's share: its inbox of delivery reports. */
int publish_init(struct ingest *in, char *err, size_t errlen);
/* On the loop's thread once its loop has ended: answers or purges what is in flight. */
void publish_drain(struct ingest *in);
/* Once every loop has ended and the probe stopped: flushes what is left, stops the
 * report thread. */
void publish_stop(struct ingest_proc *p);
/* Frees the loop's inbox, answering what is still in it. */
void publish_fini(struct ingest *in);
/* Destroys the producer, after every loop's publish_fini. */
void publish_destroy(struct ingest_proc *p);
/* The readiness probe thread, on the process's producer. */
int probe_start(struct ingest_proc *p, char *err, size_t errlen);
void probe_stop(struct ingest_proc *p);

/* Called when the record is acknowledged (err == 0) or has failed, on the loop that
 * published it. */
typedef void (*publish_done_cb)(rd_kafka_resp_err_t err, void *opaque);

/*
 * Produces one record to topic. opaque is NULL (nobody waits for the report) or points
 * to a struct whose first member is the struct ingest * of the publishing loop. Returns
 * 0 when queued (done is called exactly once later, on that loop), or the librdkafka
 * error when it could not be queued (done is not called).
 */
rd_kafka_resp_err_t publish_record(struct ingest *in, const char *topic, const char *key,
                                   const void *value, size_t len, rd_kafka_headers_t *hdrs,
                                   void *opaque);
void publish_set_done_cb(publish_done_cb cb);

/*
 * quarantine.c: called on a signature mismatch (MH_VERIFY_REJECT), before the 401 goes
 * out. When src has quarantine on, the body is within [ingest] quarantine_max_bytes and
 * the source's rate limit has a token, queues the request (quarantine.h) for the
 * quarantine topic and returns at once: nothing waits for its delivery report, and
 * whatever happens to it, the answer stays 401.
 */
void quarantine_request(struct ingest *in, const struct mh_config *cfg,
                        const struct mh_source *src, struct source_stats *sst, const char *rid,
                        const char *received, const char *uri, const struct mh_headers *headers,
                        const void *body, size_t len, const char *reason);

/* accept.c: after the loop's listener is bound. */
int accept_guard_init(struct ingest *in, long max_connections);
/* Before the loop's evhttp is freed. */
void accept_guard_fini(struct ingest *in);

/* deadline.c: [ingest] request_deadline_ms; before the first connection is accepted. */
int deadline_init(struct ingest *in, long ms);
/* After the loop's evhttp is freed. */
void deadline_fini(struct ingest *in);
/* accept.c: a connection was accepted (its time starts) or is closing. */
void deadline_conn_open(struct ingest *in, struct evhttp_connection *evcon);
void deadline_conn_closed(struct ingest *in, struct evhttp_connection *evcon);
/* http.c: evhttp has read req whole; its connection's time starts again once the reply
 * is written. */
void deadline_request_read(struct ingest *in, struct evhttp_request *req);

/* tls.c: [ingest] tls_cert_file and tls_key_file. */
/* Loads the pair into p->tls when both are set; -1 with "FILE:LINE: problem" in err. */
int tls_init(struct ingest_proc *p, const struct mh_config *cfg, char *err, size_t errlen);
/* SIGHUP: the pair of the reloaded cfg replaces p->tls; a broken one leaves it (logged). */
void tls_reload(struct ingest_proc *p, const struct mh_config *cfg);
void tls_fini(struct ingest_proc *p);
SSL_CTX *tls_ref(SSL_CTX *ctx);
/* accept.c: a server-side TLS bufferevent for a connection evhttp is accepting. */
struct bufferevent *tls_conn_new(struct event_base *base, SSL_CTX *ctx);

/* http.c */
/* Binds [ingest] listen: one SO_REUSEPORT socket per loop (loops[i].listen_fd). */
int http_listen(struct ingest_proc *p, const struct mh_config *cfg, char *err, size_t errlen);
int http_init(struct ingest *in, char *err, size_t errlen);
void http_fini(struct ingest *in);
/* Stop accepting new connections (shutdown). */
void http_stop_listening(struct ingest *in);

#endif
