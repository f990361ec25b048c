/*
 * main.c — mailhook-ingest: arguments, config, signals and the staged shutdown.
 *
 * SIGTERM/SIGINT: stop listening, answer new requests on open connections with 503,
 * wait for in-flight requests to get their delivery reports, flush the producer and
 * exit — all within 10 s; what is still unacknowledged then gets no 2xx. A second
 * signal exits at once. A fatal producer error (the idempotent producer lost its
 * guarantees) takes the same way out with exit status 1, for the supervisor to restart.
 * SIGHUP reloads the config file: sources can be added, disabled or re-keyed without a
 * restart; a file that fails to load leaves the running config in place.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "mailhook/log.h"
#include "mailhook/timeutil.h"

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

struct ingest_cfg *ingest_cfg_ref(struct ingest_cfg *ic)
{
    ic->refs++;
    return ic;
}

void ingest_cfg_unref(struct ingest_cfg *ic)
{
    if (!ic || --ic->refs > 0) return;
    mh_config_free(ic->cfg);
    free(ic);
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *in = arg;
    const struct ingest_stats *s = &in->stats;
    (void)fd;
    (void)what;
    mh_info("stats: requests=%llu accepted=%llu unauthorized=%llu not_found=%llu "
            "unavailable=%llu inflight=%ld kafka_ready=%d",
            (unsigned long long)s->requests, (unsigned long long)s->accepted,
            (unsigned long long)s->unauthorized, (unsigned long long)s->not_found,
            (unsigned long long)s->unavailable, in->inflight, atomic_load(&in->kafka_ok));
}

static void check_drained(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *in = arg;
    (void)fd;
    (void)what;
    if (in->inflight <= 0 || mh_mono_ms() >= in->shutdown_deadline_ms) {
        if (in->inflight > 0) mh_warn("shutdown: %ld requests still waiting for kafka", in->inflight);
        event_base_loopbreak(in->base);
    }
}

static void begin_shutdown(struct ingest *in)
{
    in->shutting_down = 1;
    in->shutdown_deadline_ms = mh_mono_ms() + SHUTDOWN_GRACE_MS;
    http_stop_listening(in);
    struct timeval tv = {0, 50 * 1000};
    in->drain_ev = event_new(in->base, -1, EV_PERSIST, check_drained, in);
    event_add(in->drain_ev, &tv);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct ingest *in = arg;
    (void)what;
    if (in->shutting_down) {
        mh_warn("second signal %d: exiting now", (int)sig);
        _exit(1);
    }
    mh_info("signal %d: draining %ld in-flight requests", (int)sig, in->inflight);
    begin_shutdown(in);
}

void ingest_fatal(struct ingest *in)
{
    in->exit_status = 1;
    if (in->shutting_down) return;
    mh_error("the kafka producer cannot go on: draining %ld in-flight requests, then exiting "
             "for a restart", in->inflight);
    begin_shutdown(in);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct ingest *in = arg;
    char err[1024];
    (void)sig;
    (void)what;
    struct mh_config *cfg = mh_config_load(in->cur->cfg->path, err, sizeof(err));
    if (!cfg) {
        mh_error("reload failed, keeping the running config: %s", err);
        return;
    }
    struct ingest_cfg *ic = mh_calloc(1, sizeof(*ic));
    ic->cfg = cfg;
    ic->refs = 1;
    ingest_cfg_unref(in->cur);
    in->cur = ic;
    mh_info("config reloaded: %zu sources", cfg->n_sources);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("mailhook-ingest %s\n", MH_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }

    mh_log_init("ingest");
    char err[1024];
    struct ingest in = {0};
    int rc = 1;
    struct mh_config *cfg = mh_config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "mailhook-ingest: %s\n", err);
        return 1;
    }
    if (!getenv("MAILHOOK_LOG_LEVEL")) mh_log_level_parse(cfg->ingest.log_level, &mh_log_threshold);
    in.cur = mh_calloc(1, sizeof(*in.cur));
    in.cur->cfg = cfg;
    in.cur->refs = 1;

    signal(SIGPIPE, SIG_IGN);
    in.base = event_base_new();
    if (publish_init(&in, err, sizeof(err)) < 0 || http_init(&in, err, sizeof(err)) < 0) {
        mh_error("%s", err);
        goto out;
    }
    in.sig_term = evsignal_new(in.base, SIGTERM, on_term, &in);
    in.sig_int = evsignal_new(in.base, SIGINT, on_term, &in);
    in.sig_hup = evsignal_new(in.base, SIGHUP, on_hup, &in);
    event_add(in.sig_term, NULL);
    event_add(in.sig_int, NULL);
    event_add(in.sig_hup, NULL);
    struct timeval stats_tv = {60, 0};
    in.stats_ev = event_new(in.base, -1, EV_PERSIST, on_stats, &in);
    event_add(in.stats_ev, &stats_tv);

    mh_info("mailhook-ingest %s started: %zu sources, raw topic %s", MH_VERSION, cfg->n_sources,
            cfg->ingest.raw_topic);
    event_base_dispatch(in.base);
    rc = in.exit_status;
    on_stats(-1, 0, &in);
out:
    publish_fini(&in);
    http_fini(&in);
    if (in.sig_term) event_free(in.sig_term);
    if (in.sig_int) event_free(in.sig_int);
    if (in.sig_hup) event_free(in.sig_hup);
    if (in.stats_ev) event_free(in.stats_ev);
    if (in.drain_ev) event_free(in.drain_ev);
    ingest_cfg_unref(in.cur);
    event_base_free(in.base);
    mh_info("stopped");
    return rc;
}
