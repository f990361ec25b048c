/*
 * main.c — mailhook-ingest: arguments, config, signals and the staged shutdown.
 *
 * One event loop per core ([ingest] threads; 0 = one per online CPU), each on a thread
 * with its own HTTP server on its own SO_REUSEPORT socket; the loops share one producer
 * (publish.c). The main thread only handles signals and tells the loops what to do.
 *
 * SIGTERM/SIGINT: stop listening, answer new requests on open connections with 503,
 * wait for in-flight requests to get their delivery reports, flush the producer and
 * exit — all within 10 s; what is still unacknowledged then gets no 2xx. A second
 * signal exits at once. A fatal producer error (the idempotent producer lost its
 * guarantees) takes the same way out with exit status 1, for the supervisor to restart.
 * SIGHUP reloads the config file: sources can be added, disabled or re-keyed without a
 * restart; a file that fails to load leaves the running config in place. It also reads
 * the TLS certificate and key again (tls.c): new connections get the new pair.
 */
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "mailhook/log.h"
#include "mailhook/program_args.h"
#include "mailhook/shutdown.h"

/* Draining may take this long after the signal (longer than the default ack deadline, so
 * normally every request gets its real answer); purging what is left, joining the probe
 * thread (up to its 1.5 s metadata timeout) and exiting fit in the 10 s a shutdown may take. */
#define SHUTDOWN_GRACE_MS 8000

static const char usage[] =
    "usage: mailhook-ingest --config FILE\n"
    "\n"
    "Receives email-provider webhooks on POST /v1/webhooks/<source>, verifies them and\n"
    "publishes each body to Kafka; answers 200 only once Kafka has acknowledged it.\n"
    "\n"
    "  -c, --config FILE   mailhook INI file (required)\n"
    "  -h, --help          this text\n"
    "  -V, --version       print the version\n";

struct ingest_cfg *ingest_cfg_new(struct mh_config *cfg, SSL_CTX *tls)
{
    struct ingest_cfg *ic = mh_calloc(1, sizeof(*ic));
    ic->cfg = cfg;
    ic->tls = tls_ref(tls);
    ic->sources = mh_calloc(cfg->n_sources ? cfg->n_sources : 1, sizeof(*ic->sources));
    atomic_init(&ic->refs, 1);
    return ic;
}

struct source_stats *ingest_source_stats(struct ingest_cfg *ic, const struct mh_source *src)
{
    for (size_t i = 0; i < ic->cfg->n_sources; i++)
        if (ic->cfg->sources[i] == src) return &ic->sources[i];
    return NULL;
}

struct ingest_cfg *ingest_cfg_ref(struct ingest_cfg *ic)
{
    atomic_fetch_add(&ic->refs, 1);
    return ic;
}

void ingest_cfg_unref(struct ingest_cfg *ic)
{
    if (!ic || atomic_fetch_sub(&ic->refs, 1) > 1) return;
    mh_config_free(ic->cfg);
    SSL_CTX_free(ic->tls);
    free(ic->sources);
    free(ic);
}

static long total_inflight(const struct ingest_proc *p)
{
    long n = 0;
    for (int i = 0; i < p->n_loops; i++) n += atomic_load(&p->loops[i].inflight);
    return n;
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
    struct ingest_proc *p = arg;
    const struct ingest_stats *s = &p->stats;
    (void)fd;
    (void)what;
    mh_info("stats: requests=%llu accepted=%llu unauthorized=%llu not_found=%llu "
            "unavailable=%llu inflight=%ld kafka_ready=%d",
            (unsigned long long)s->requests, (unsigned long long)s->accepted,
            (unsigned long long)s->unauthorized, (unsigned long long)s->not_found,
            (unsigned long long)s->unavailable, total_inflight(p), atomic_load(&p->kafka_ok));
}

/* ---- one loop (on its own thread) ------------------------------------------------------ */

static void stop_listening(void *arg)
{
    http_stop_listening(arg);
}

static long loop_inflight(void *arg)
{
    struct ingest *in = arg;
    return atomic_load(&in->inflight);
}

static void begin_shutdown(struct ingest *in)
{
    if (in->shutting_down) return;
    in->shutting_down = 1; /* new requests on open connections get 503 (http.c) */
    const struct mh_shutdown_spec spec = {
        .stop_listening = stop_listening,
        .unanswered = loop_inflight,
        .arg = in,
        .grace_ms = SHUTDOWN_GRACE_MS,
        .poll_ms = 50,
        .linger_ms = 0, /* then publish_drain answers or purges the rest (loop_main) */
        .what = "requests still waiting for kafka",
    };
    in->shutdown = mh_shutdown_begin(in->base, &spec);
}

/* The main thread's commands: a reloaded config to use from now on, or stop. */
static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *in = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&in->ctl_mu);
    struct ingest_cfg *next = in->next_cfg;
    int stop = in->stop_requested;
    in->next_cfg = NULL;
    pthread_mutex_unlock(&in->ctl_mu);
    if (next) {
        ingest_cfg_unref(in->cur);
        in->cur = next;
    }
    if (stop) begin_shutdown(in);
}

static void *loop_main(void *arg)
{
    struct ingest *in = arg;
    event_base_dispatch(in->base);
    publish_drain(in);
    return NULL;
}

void ingest_fatal(struct ingest_proc *p)
{
    if (atomic_exchange(&p->exit_status, 1)) return;
    mh_error("the kafka producer cannot go on: draining in-flight requests, then exiting "
             "for a restart");
    event_active(p->fatal_ev, EV_READ, 0);
}

/* ---- the main thread: signals, reloads, the staged shutdown -------------------------- */

static void send_ctl(struct ingest_proc *p, struct ingest_cfg *ic, int stop)
{
    for (int i = 0; i < p->n_loops; i++) {
        struct ingest *in = &p->loops[i];
        pthread_mutex_lock(&in->ctl_mu);
        if (ic) {
            if (in->next_cfg) ingest_cfg_unref(in->next_cfg);
            in->next_cfg = ingest_cfg_ref(ic);
        }
        if (stop) in->stop_requested = 1;
        pthread_mutex_unlock(&in->ctl_mu);
        event_active(in->ctl_ev, EV_READ, 0);
    }
}

static int stopping_all;

static void stop_all(struct ingest_proc *p)
{
    stopping_all = 1;
    send_ctl(p, NULL, 1);
    event_base_loopbreak(p->base);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct ingest_proc *p = arg;
    (void)what;
    if (stopping_all) {
        mh_warn("second signal %d: exiting now", (int)sig);
        _exit(1);
    }
    mh_info("signal %d: draining %ld in-flight requests", (int)sig, total_inflight(p));
    stop_all(p);
}

static void on_fatal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (!stopping_all) stop_all(arg);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct ingest_proc *p = arg;
    char err[1024];
    (void)sig;
    (void)what;
    struct mh_config *cfg = mh_config_load(p->loops[0].cur->cfg->path, err, sizeof(err));
    if (!cfg) {
        mh_error("reload failed, keeping the running config: %s", err);
        return;
    }
    tls_reload(p, cfg);
    struct ingest_cfg *ic = ingest_cfg_new(cfg, p->tls);
    send_ctl(p, ic, 0);
    ingest_cfg_unref(ic);
    mh_info("config reloaded: %zu sources", cfg->n_sources);
}

static int loop_init(struct ingest_proc *p, int id, struct ingest_cfg *ic, char *err,
                     size_t errlen)
{
    struct ingest *in = &p->loops[id];
    in->proc = p;
    in->id = id;
    in->cur = ingest_cfg_ref(ic);
    pthread_mutex_init(&in->ctl_mu, NULL);
    /* The changelist folds the enable/disable pairs a request makes on its socket within
     * one loop iteration into one epoll_ctl, or none. (It is unsafe only for descriptors
     * made by dup(), which the loops never watch.) */
    struct event_config *ec = event_config_new();
    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        in->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (!in->base) {
        snprintf(err, errlen, "cannot create an event loop");
        return -1;
    }
    in->ctl_ev = event_new(in->base, -1, 0, on_ctl, in);
    if (publish_init(in, err, errlen) < 0 || http_init(in, err, errlen) < 0) return -1;
    return 0;
}

static void loop_free(struct ingest *in)
{
    if (in->listen_fd >= 0) close(in->listen_fd);
    if (!in->proc) return; /* never initialized */
    publish_fini(in);
    http_fini(in);
    mh_shutdown_free(in->shutdown);
    if (in->ctl_ev) event_free(in->ctl_ev);
    if (in->base) event_base_free(in->base);
    pthread_mutex_lock(&in->ctl_mu);
    ingest_cfg_unref(in->next_cfg);
    pthread_mutex_unlock(&in->ctl_mu);
    pthread_mutex_destroy(&in->ctl_mu);
    ingest_cfg_unref(in->cur);
}

static int loops_wanted(const struct mh_config *cfg)
{
    if (cfg->ingest.threads > 0) return (int)cfg->ingest.threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int status = mh_program_args(argc, argv, "mailhook-ingest", usage, &path);
    if (status >= 0) return status;

    mh_log_init("ingest");
    char err[1024];
    struct ingest_proc p = {0};
    struct event *sig_term = NULL, *sig_int = NULL, *sig_hup = NULL, *stats_ev = NULL;
    int rc = 1;
    struct mh_config *cfg = mh_config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "mailhook-ingest: %s\n", err);
        return 1;
    }
    if (!getenv("MAILHOOK_LOG_LEVEL")) mh_log_level_parse(cfg->ingest.log_level, &mh_log_threshold);
    if (tls_init(&p, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "mailhook-ingest: %s\n", err);
        mh_config_free(cfg);
        return 1;
    }
    struct ingest_cfg *ic = ingest_cfg_new(cfg, p.tls);

    signal(SIGPIPE, SIG_IGN);
    /* The loops' bases are driven from the main thread too (event_active). */
    evthread_use_pthreads();
    p.base = event_base_new();
    p.n_loops = loops_wanted(cfg);
    p.loops = mh_calloc((size_t)p.n_loops, sizeof(*p.loops));
    for (int i = 0; i < p.n_loops; i++) p.loops[i].listen_fd = -1;
    if (http_listen(&p, cfg, err, sizeof(err)) < 0) {
        mh_error("%s", err);
        goto out;
    }
    p.fatal_ev = event_new(p.base, -1, 0, on_fatal, &p);
    if (publish_start(&p, cfg, err, sizeof(err)) < 0) {
        mh_error("%s", err);
        goto out;
    }
    for (int i = 0; i < p.n_loops; i++) {
        if (loop_init(&p, i, ic, err, sizeof(err)) < 0) {
            mh_error("%s", err);
            goto out;
        }
    }
    if (probe_start(&p, err, sizeof(err)) < 0) {
        mh_error("%s", err);
        goto out;
    }
    sig_term = evsignal_new(p.base, SIGTERM, on_term, &p);
    sig_int = evsignal_new(p.base, SIGINT, on_term, &p);
    sig_hup = evsignal_new(p.base, SIGHUP, on_hup, &p);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);
    event_add(sig_hup, NULL);
    struct timeval stats_tv = {60, 0};
    stats_ev = event_new(p.base, -1, EV_PERSIST, on_stats, &p);
    event_add(stats_ev, &stats_tv);

    /* Signals are the main thread's: the loops' threads block them. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (int i = 0; i < p.n_loops; i++) {
        if (pthread_create(&p.loops[i].tid, NULL, loop_main, &p.loops[i]) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            mh_error("cannot start event loop thread %d", i);
            stop_all(&p);
            goto join;
        }
        p.loops[i].started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    mh_info("mailhook-ingest %s started: %zu sources, raw topic %s, %d event loops", MH_VERSION,
            cfg->n_sources, cfg->ingest.raw_topic, p.n_loops);
    /* Runs until a signal or a fatal producer error has told the loops to stop; a
     * second signal during the drain still exits at once. */
    event_base_dispatch(p.base);
join:
    for (int i = 0; i < p.n_loops; i++) {
        /* Keep serving a second signal while the loops drain. */
        while (p.loops[i].started && pthread_tryjoin_np(p.loops[i].tid, NULL) != 0) {
            event_base_loop(p.base, EVLOOP_NONBLOCK);
            usleep(20 * 1000);
        }
        p.loops[i].started = 0;
    }
    rc = atomic_load(&p.exit_status);
    on_stats(-1, 0, &p);
out:
    probe_stop(&p);
    publish_stop(&p);
    for (int i = 0; p.loops && i < p.n_loops; i++) loop_free(&p.loops[i]);
    publish_destroy(&p);
    if (sig_term) event_free(sig_term);
    if (sig_int) event_free(sig_int);
    if (sig_hup) event_free(sig_hup);
    if (stats_ev) event_free(stats_ev);
    if (p.fatal_ev) event_free(p.fatal_ev);
    free(p.loops);
    ingest_cfg_unref(ic);
    tls_fini(&p);
    if (p.base) event_base_free(p.base);
    mh_info("stopped");
    return rc;
}
