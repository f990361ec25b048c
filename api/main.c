/*
 * main.c — mailhook-api: the HTTP API for senders and operators (suppressions, event
 * log) and the periodic maintenance (retention, expiry of temporary suppressions,
 * publishing pending states).
 *
 * It lives beside the worker because it needs PostgreSQL, which the ingest must never
 * depend on. One thread runs the libevent loop; [api] db_connections threads, each with
 * its own PostgreSQL connection, run the requests' queries (pool.c); one more runs
 * maintenance every [api] maintenance_interval_s with connections of its own, so a slow
 * pass never holds up a request. SIGTERM/SIGINT stop listening, let every request in
 * progress be answered (up to [api] request_timeout_ms) and exit; a second signal exits
 * at once.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "server.h"
#include "mailhook/log.h"
#include "mailhook/program_args.h"
#include "mailhook/shutdown.h"

static const char usage[] =
    "usage: mailhook-api --config FILE\n"
    "\n"
    "Serves the suppression list and the event log over HTTP (bearer tokens from [api])\n"
    "and runs mailhook's maintenance: retention of the event log, expiry of temporary\n"
    "suppressions, publishing of pending suppression states.\n"
    "\n"
    "  -c, --config FILE   mailhook INI file (required)\n"
    "  -h, --help          this text\n"
    "  -V, --version       print the version\n";

struct maint_thread {
    const struct mh_config *cfg;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int started;
};

static void *maint_loop(void *arg)
{
    struct maint_thread *mt = arg;
    struct supp_store st = {0};
    char err[1024];
    int open = 0;
    pthread_mutex_lock(&mt->mu);
    while (!mt->stop) {
        pthread_mutex_unlock(&mt->mu);
        if (!open) {
            if (supp_store_open(&st, mt->cfg, "mailhook-api-maintenance", 1, err, sizeof(err)) == 0)
                open = 1;
            else
                mh_warn("maintenance: %s (will retry)", err);
        }
        if (open) {
            struct maint_report r;
            if (maintain_run(&st, mt->cfg->api.retention_days, mt->cfg->api.partitions_ahead_days,
                             &r, err, sizeof(err)) < 0)
                mh_warn("maintenance: %s (will retry)", err);
            else if (r.partitions_created || r.partitions_dropped || r.default_rows_deleted ||
                     r.claims_deleted || r.lifted_rows_deleted || r.states_published)
                mh_info("maintenance: partitions created=%ld dropped=%ld, rows deleted default=%ld "
                        "claims=%ld lifted=%ld, suppression states published=%zu",
                        r.partitions_created, r.partitions_dropped, r.default_rows_deleted,
                        r.claims_deleted, r.lifted_rows_deleted, r.states_published);
        }
        pthread_mutex_lock(&mt->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += mt->cfg->api.maintenance_interval_s;
        while (!mt->stop && pthread_cond_timedwait(&mt->cv, &mt->mu, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&mt->mu);
    supp_store_close(&st);
    return NULL;
}

struct api_main {
    struct event_base *base;
    struct api_server *srv;
    struct mh_shutdown *shutdown;
    long srv_timeout_ms;
    int stopping;
};

static void stop_listening(void *arg)
{
    api_http_stop_listening(arg);
}

static long unanswered(void *arg)
{
    return (long)api_http_in_flight(arg);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct api_main *m = arg;
    (void)what;
    if (m->stopping) {
        mh_warn("second signal %d: exiting now", (int)sig);
        exit(1);
    }
    mh_info("signal %d: stopping", (int)sig);
    m->stopping = 1;
    /* Once every request's database part is answered (or the request timeout has
     * passed), the loop runs a moment longer to write the replies out. */
    const struct mh_shutdown_spec spec = {
        .stop_listening = stop_listening,
        .unanswered = unanswered,
        .arg = m->srv,
        .grace_ms = m->srv_timeout_ms,
        .poll_ms = 20,
        .linger_ms = 200,
        .what = "requests unanswered",
    };
    m->shutdown = mh_shutdown_begin(m->base, &spec);
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
    struct api_main *m = arg;
    (void)fd;
    (void)what;
    const struct api_stats *s = api_http_stats(m->srv);
    mh_info("stats: requests=%llu ok=%llu not_found=%llu client_errors=%llu server_errors=%llu "
            "unauthorized=%llu",
            (unsigned long long)s->requests, (unsigned long long)s->ok,
            (unsigned long long)s->not_found, (unsigned long long)s->client_errors,
            (unsigned long long)s->server_errors, (unsigned long long)s->unauthorized);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int status = mh_program_args(argc, argv, "mailhook-api", usage, &path);
    if (status >= 0) return status;

    mh_log_init("api");
    char err[1024];
    int rc = 1;
    struct api_main m = {0};
    struct maint_thread mt = {0};
    struct event *sig_term = NULL, *sig_int = NULL, *stats_ev = NULL;
    struct mh_config *cfg = mh_config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "mailhook-api: %s\n", err);
        return 1;
    }
    if (!getenv("MAILHOOK_LOG_LEVEL")) mh_log_level_parse(cfg->api.log_level, &mh_log_threshold);
    if (cfg->api.n_tokens == 0) {
        fprintf(stderr, "mailhook-api: %s: [api] needs at least one token (token, token_env or "
                        "token_file)\n", path);
        mh_config_free(cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    /* PostgreSQL may be down at start: requests answer 503 until it is back. */
    m.base = event_base_new();
    m.srv = api_http_new(m.base, cfg, err, sizeof(err));
    if (!m.srv) {
        mh_error("%s", err);
        goto out;
    }
    sig_term = evsignal_new(m.base, SIGTERM, on_term, &m);
    sig_int = evsignal_new(m.base, SIGINT, on_term, &m);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);
    struct timeval stats_tv = {60, 0};
    stats_ev = event_new(m.base, -1, EV_PERSIST, on_stats, &m);
    event_add(stats_ev, &stats_tv);
    m.srv_timeout_ms = cfg->api.request_timeout_ms;

    if (cfg->api.maintenance_interval_s > 0) {
        mt.cfg = cfg;
        pthread_mutex_init(&mt.mu, NULL);
        pthread_cond_init(&mt.cv, NULL);
        if (pthread_create(&mt.tid, NULL, maint_loop, &mt) != 0) {
            mh_error("cannot start the maintenance thread");
            goto out;
        }
        mt.started = 1;
    }
    size_t operators = 0;
    for (size_t i = 0; i < cfg->api.n_tokens; i++) operators += cfg->api.tokens[i].operator != 0;
    mh_info("mailhook-api %s started: listening on %s, %zu tokens (%zu for every tenant), %ld "
            "database connections, maintenance every %ld s",
            MH_VERSION, cfg->api.listen, cfg->api.n_tokens, operators, cfg->api.db_connections,
            cfg->api.maintenance_interval_s);
    event_base_dispatch(m.base);
    on_stats(-1, 0, &m);
    rc = 0;
out:
    if (mt.started) {
        pthread_mutex_lock(&mt.mu);
        mt.stop = 1;
        pthread_cond_signal(&mt.cv);
        pthread_mutex_unlock(&mt.mu);
        pthread_join(mt.tid, NULL);
    }
    if (mt.cfg) {
        pthread_mutex_destroy(&mt.mu);
        pthread_cond_destroy(&mt.cv);
    }
    api_http_free(m.srv);
    if (sig_term) event_free(sig_term);
    if (sig_int) event_free(sig_int);
    if (stats_ev) event_free(stats_ev);
    mh_shutdown_free(m.shutdown);
    if (m.base) event_base_free(m.base);
    mh_config_free(cfg);
    mh_info("stopped");
    return rc;
}
