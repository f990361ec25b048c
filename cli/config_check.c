/*
 * config_check.c — `mailhook config check`: validates a config file the way the
 * programs load it and reports every problem, not only the first.
 *
 * mh_config_check runs the loader itself (every section and key, the [api] tokens, the
 * sources' provider options, secrets and provider inits, which read secret and key
 * files) without stopping at an error. On the config as far as it could be read, this
 * file adds what the programs check once they start: the listen addresses, the log
 * levels, every [kafka] key as librdkafka takes it, the [postgres] dsn as libpq parses
 * it and the ingest's TLS certificate/key pair. Problems are printed one a line,
 * "FILE:LINE: problem", in the file's order.
 */
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/tls.h"

static const char usage_text[] =
    "usage: mailhook config check [--config FILE] [--for PROGRAM]\n\n"
    "Validates FILE (default: mailhook's --config, $MAILHOOK_CONFIG, then ./mailhook.ini)\n"
    "as mailhook-ingest, mailhook-worker and mailhook-api would load it: every section\n"
    "and key, every source's provider options, secrets and key files, the [api] tokens,\n"
    "the listen addresses, log levels, [kafka] keys, the [postgres] dsn and the ingest's\n"
    "TLS certificate and key. Prints every problem as FILE:LINE: problem and exits 1;\n"
    "exits 0 with a one-line summary when the file is valid.\n\n"
    "  --for PROGRAM   ingest, worker or api: leave out what only the others read (the\n"
    "                  TLS certificate and key are the ingest's); default: all of them\n";

struct problem {
    int line;
    size_t seq; /* the order found, for problems on one line */
    char *message;
};

struct problems {
    struct problem *v;
    size_t n;
};

static void add_problem(void *arg, int line, const char *message)
{
    struct problems *ps = arg;
    ps->v = mh_realloc(ps->v, (ps->n + 1) * sizeof(*ps->v));
    ps->v[ps->n] = (struct problem){.line = line, .seq = ps->n, .message = mh_strdup(message)};
    ps->n++;
}

static void add_problemf(struct problems *ps, const struct mh_config *cfg, int line,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add_problemf(struct problems *ps, const struct mh_config *cfg, int line,
                         const char *fmt, ...)
{
    char msg[700], full[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0) snprintf(full, sizeof(full), "%s:%d: %s", cfg->path, line, msg);
    else snprintf(full, sizeof(full), "%s: %s", cfg->path, msg);
    add_problem(ps, line, full);
}

static int by_line(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void check_listen(struct problems *ps, const struct mh_config *cfg, const char *section,
                         const char *key, const char *value)
{
    char host[256];
    int port;
    if (value && *value && mh_split_listen(value, host, sizeof(host), &port) < 0)
        add_problemf(ps, cfg, mh_config_key_line(cfg, section, key),
                     "[%s] %s: expected host:port, not \"%s\"", section, key, value);
}

static void check_log_level(struct problems *ps, const struct mh_config *cfg,
                            const char *section, const char *value)
{
    enum mh_log_level level;
    if (mh_log_level_parse(value, &level) < 0)
        add_problemf(ps, cfg, mh_config_key_line(cfg, section, "log_level"),
                     "[%s] log_level: unknown level \"%s\"", section, value);
}

/* What the programs check after loading: the keys' values as their users take them.
 * with_tls: the ingest's certificate and key too. */
static void check_programs_view(struct problems *ps, const struct mh_config *cfg, int with_tls)
{
    check_listen(ps, cfg, "ingest", "listen", cfg->ingest.listen);
    check_listen(ps, cfg, "api", "listen", cfg->api.listen);
    check_listen(ps, cfg, "worker", "metrics_listen", cfg->worker.metrics_listen);
    check_log_level(ps, cfg, "ingest", cfg->ingest.log_level);
    check_log_level(ps, cfg, "worker", cfg->worker.log_level);
    check_log_level(ps, cfg, "api", cfg->api.log_level);

    char rkerr[512];
    for (const struct mh_kv *kv = cfg->kafka; kv; kv = kv->next) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, kv->key, kv->value, rkerr, sizeof(rkerr)) !=
            RD_KAFKA_CONF_OK)
            add_problemf(ps, cfg, kv->line, "[kafka] %s", rkerr);
        rd_kafka_conf_destroy(conf);
    }

    char *pqerr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->postgres.dsn, &pqerr);
    if (!opts) {
        char *nl = pqerr ? strchr(pqerr, '\n') : NULL;
        if (nl) *nl = '\0';
        add_problemf(ps, cfg, mh_config_key_line(cfg, "postgres", "dsn"), "[postgres] dsn: %s",
                     pqerr ? pqerr : "cannot be parsed");
    }
    PQconninfoFree(opts);
    PQfreemem(pqerr);

    const char *cert = cfg->ingest.tls_cert_file, *key = cfg->ingest.tls_key_file;
    if (with_tls && cert && *cert && key && *key) {
        char err[1024];
        SSL_CTX *ctx = mh_tls_server_ctx(cert, key, err, sizeof(err));
        if (ctx) {
            SSL_CTX_free(ctx);
        } else {
            const char *which = strncmp(err, "tls_key_file", 12) ? "tls_cert_file"
                                                                 : "tls_key_file";
            add_problemf(ps, cfg, mh_config_key_line(cfg, "ingest", which), "[ingest] %s", err);
        }
    }
}

/* "FILE: ok, 2 sources (ivymail: ivymail, maildog: maildog, disabled)" */
static void print_summary(const struct mh_config *cfg)
{
    printf("%s: ok, %zu source%s", cfg->path, cfg->n_sources, cfg->n_sources == 1 ? "" : "s");
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const struct mh_source *src = cfg->sources[i];
        printf("%s%s: %s%s", i ? ", " : " (", src->name, src->provider->name,
               src->enabled ? "" : ", disabled");
    }
    printf("%s%s\n", cfg->n_sources ? ")" : "",
           cfg->ingest.tls_cert_file ? "; ingest serves HTTPS" : "");
}

static int config_check(const char *path, int with_tls)
{
    struct problems ps = {0};
    struct mh_config *cfg = NULL;
    mh_config_check(path, add_problem, &ps, &cfg);
    if (cfg) check_programs_view(&ps, cfg, with_tls);
    if (ps.n) qsort(ps.v, ps.n, sizeof(*ps.v), by_line);
    for (size_t i = 0; i < ps.n; i++) {
        fprintf(stderr, "%s\n", ps.v[i].message);
        free(ps.v[i].message);
    }
    int rc = ps.n ? 1 : 0;
    if (ps.n) fprintf(stderr, "%s: %zu problem%s\n", path, ps.n, ps.n == 1 ? "" : "s");
    else print_summary(cfg);
    free(ps.v);
    mh_config_free(cfg);
    return rc;
}

int cmd_config(struct mh_config *unused, int argc, char **argv)
{
    (void)unused;
    const char *path = mh_cli_config_path;
    int with_tls = 1;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "check")) {
        fprintf(stderr, "mailhook config: unknown subcommand \"%s\"\n\n%s", argv[1], usage_text);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        } else if (!strcmp(argv[i], "--for") && i + 1 < argc) {
            const char *prog = argv[++i];
            if (strcmp(prog, "ingest") && strcmp(prog, "worker") && strcmp(prog, "api")) {
                fprintf(stderr, "mailhook config check: --for ingest, worker or api\n");
                return 2;
            }
            with_tls = !strcmp(prog, "ingest");
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "mailhook config check: unexpected argument %s\n\n%s", argv[i],
                    usage_text);
            return 2;
        }
    }
    return config_check(path, with_tls);
}
