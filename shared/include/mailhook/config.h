/*
 * config.h — the one INI file every mailhook binary reads.
 *
 *   [ingest]         listener (HTTPS with tls_cert_file + tls_key_file), limits,
 *                    timeouts, raw topic
 *   [worker]         consumer group, topics, batching
 *   [postgres]       dsn (env MAILHOOK_PG_DSN overrides)
 *   [kafka]          every key passed straight to librdkafka
 *                    (env MAILHOOK_KAFKA_BROKERS overrides bootstrap.servers)
 *   [source.NAME]    one webhook endpoint: provider, tenant, secrets, quarantine,
 *                    provider options
 *   [suppression]    suppression rules for every tenant (docs/suppression.md)
 *   [suppression.T]  the rules of tenant T where they differ from [suppression]
 *   [api]            mailhook-api: listener, bearer tokens, pagination, retention
 *
 * Unknown sections and keys are errors; every error names file, line and problem.
 * Loading stops at the first; mh_config_check (`mailhook config check`) reports them all.
 * Secrets are read from `secret=` (repeatable, for rotation), `secret_env=` or
 * `secret_file=` and never printed; API tokens the same way from `token=`, `token_env=`
 * and `token_file=`.
 */
#ifndef MH_CONFIG_H
#define MH_CONFIG_H

#include <stddef.h>

struct mh_opt_value;
struct mh_provider;

/* An ordered key = value list with the line each came from. */
struct mh_kv {
    char *key;
    char *value;
    int line;
    struct mh_kv *next;
};

struct mh_source {
    char *name;
    const struct mh_provider *provider;
    char *tenant;
    int enabled;
    int quarantine; /* keep requests refused for a signature mismatch (docs/quarantine.md) */
    int line; /* line of the [source.NAME] header */
    int provider_line; /* line of its provider = key, 0 when there is none */
    int secret_failed; /* a secret, secret_env or secret_file could not be had */
    char **secrets; /* plain secret strings as configured; never logged */
    size_t n_secrets;
    struct mh_kv *options; /* provider-specific keys as written, in file order */
    struct mh_opt_value *opt_values; /* the same parsed, one per row of the provider's table */
    char **forward_headers; /* lower-case request headers copied onto the raw record */
    size_t n_forward;
    void *state; /* owned by the provider (init/fini) */
    int err_line; /* set by provider init to point its error at a line */
};

/*
 * The suppression rules of one tenant. Every field of a [suppression.T] section that the
 * file does not set is the [suppression] value.
 */
struct mh_suppression_policy {
    char *tenant; /* NULL for the [suppression] defaults */
    int line;     /* line of the section header, 0 for the defaults */
    int hard_bounce;  /* a hard email.bounced suppresses (reason "bounce") */
    int complaint;    /* email.complained suppresses (reason "complaint") */
    int unsubscribe;  /* email.unsubscribed suppresses (reason "unsubscribe") */
    int resubscribe;  /* email.resubscribed lifts the suppression */
    long soft_bounce_threshold;      /* distinct messages; 0 turns the rule off */
    long soft_bounce_window_hours;   /* ... soft-bounced within this many hours */
    long soft_bounce_suppress_hours; /* how long the temporary suppression lasts */
    int soft_bounce_count_delays;    /* email.delivery_delayed counts as a soft bounce */
    unsigned set_mask; /* which fields the tenant's section set (internal) */
};

/*
 * One accepted bearer token of [api]. Only its digest is kept (HMAC-SHA-256 under the
 * config's random token_key), never the token itself.
 */
struct mh_api_token {
    unsigned char digest[32];
    int operator;     /* may act for every tenant, and ask across tenants */
    char **tenants;   /* else: the tenants it may act for */
    size_t n_tenants;
};

struct mh_config {
    char *path;
    struct {
        char *listen; /* "host:port" */
        long threads; /* event loops; 0 = one per online CPU */
        int share_port; /* other mailhook-ingest processes may listen on the same port */
        long max_body_bytes;
        long max_header_bytes;
        long read_timeout_ms;     /* inactivity: every byte read starts it again */
        long request_deadline_ms; /* a whole request, from accept (or the previous reply) */
        long max_connections; /* open connections per process; shared out over the loops */
        long ack_deadline_ms;
        long retry_after_s;
        char *raw_topic;
        char *log_level;
        /* Requests refused for a signature mismatch, for sources with quarantine = true. */
        char *quarantine_topic;
        long quarantine_max_bytes; /* larger bodies are not kept */
        long quarantine_rate;      /* records per second per source and process ... */
        long quarantine_burst;     /* ... with bursts of this many */
        /* HTTPS when both are set (PEM: the certificate chain, the private key); NULL:
         * plain HTTP. The pair is read by mailhook-ingest (ingest/tls.c) at start and
         * on SIGHUP. */
        char *tls_cert_file;
        char *tls_key_file;
    } ingest;
    struct {
        char *group_id;
        char *raw_topic;
        char *events_topic;
        char *dlq_topic;
        char *suppressions_topic;
        long batch_size;
        /* A batch closes once its raw records' bodies reach this many bytes (at least
         * one record): what a batch holds in memory, whatever the webhooks' shape. */
        long batch_max_bytes;
        /* ...and once its records' canonical events reach this many (at least one
         * record): a parsed event takes far more memory than its part of the body. */
        long batch_max_events;
        long commit_interval_ms;
        /* A batch's claim runs in up to this many PostgreSQL transactions at once, each
         * on its own connection, over records that share no address (worker/lanes.c). */
        long claim_lanes;
        long raw_partitions; /* used by `mailhook topics` */
        /* Replication of the topics `mailhook topics` creates: -1 and 0 take the broker's
         * default.replication.factor and min.insync.replicas. */
        long replication_factor;
        long min_insync_replicas;
        char *log_level;
        char *metrics_listen; /* "host:port" of /metrics and /healthz; NULL: none */
    } worker;
    struct {
        char *dsn;
        char *migrations_dir;
    } postgres;
    struct {
        char *listen; /* "host:port", 127.0.0.1:8081 unless configured */
        char *console_dir; /* the console's static files; NULL: the built-in default */
        struct mh_api_token *tokens; /* accepted bearer tokens (api_tokens.h) */
        size_t n_tokens;
        unsigned char token_key[32]; /* random per load: keys the tokens' digests */
        long max_body_bytes;
        long request_timeout_ms;
        long db_connections; /* PostgreSQL connections (one thread each) serving requests */
        long default_limit;
        long max_limit;
        long retention_days;        /* event log and dedup claims are kept this long */
        long partitions_ahead_days; /* daily partitions created ahead of today */
        long maintenance_interval_s; /* 0: mailhook-api runs no maintenance */
        char *log_level;
        /* Comma-separated /metrics URLs of the ingest processes, scraped for
         * GET /v1/sources/stats; NULL: none. */
        char *ingest_metrics;
    } api;
    struct mh_suppression_policy suppression; /* the [suppression] defaults */
    struct mh_suppression_policy **tenant_policies;
    size_t n_tenant_policies;
    struct mh_kv *kafka;
    struct mh_source **sources;
    size_t n_sources;
    int *key_lines; /* the line each fixed-section key was set on (mh_config_key_line) */
};

/*
 * Loads and validates path. On error returns NULL and writes "FILE:LINE: problem"
 * (or "FILE: problem") into err. Calls every source's provider init.
 */
struct mh_config *mh_config_load(const char *path, char *err, size_t errlen);
void mh_config_free(struct mh_config *cfg);

/* One problem found by mh_config_check: its line (0: the file's own) and the whole
 * message, "FILE:LINE: problem". */
typedef void (*mh_config_error_fn)(void *arg, int line, const char *message);
/*
 * Validates path as mh_config_load does (the same checks, messages and provider inits)
 * but goes on past errors: each one goes to on_error, those of the file's lines in file
 * order, then those found per source (provider options, secrets, key files). Returns
 * how many there were (0: the file loads). With out, *out is the config as far as it
 * could be read (NULL when the file cannot be opened), for the caller's own checks and
 * mh_config_free.
 */
int mh_config_check(const char *path, mh_config_error_fn on_error, void *arg,
                    struct mh_config **out);
/* The line a key of [ingest], [worker], [postgres] or [api] was (last) set on; 0 when
 * the file does not set it. */
int mh_config_key_line(const struct mh_config *cfg, const char *section, const char *name);

struct mh_source *mh_config_source(const struct mh_config *cfg, const char *name);
/*
 * A provider option of the source as text: its (first) value, else its default, else
 * NULL (provider_options.h has the typed readers).
 */
const char *mh_source_opt(const struct mh_source *src, const char *key);
/* Line of a provider option (for errors from provider init), or the section's line. */
int mh_source_opt_line(const struct mh_source *src, const char *key);
/* Adds a header name to forward onto raw records (lower-cased, no duplicates). */
void mh_source_forward(struct mh_source *src, const char *header);
/*
 * The largest Kafka record mailhook writes: a raw record is the body (at most
 * [ingest] max_body_bytes) plus headers. Topics and producers allow this much.
 */
long mh_config_max_record_bytes(const struct mh_config *cfg);
/* The suppression rules of tenant (its [suppression.T] section, else the defaults). */
const struct mh_suppression_policy *mh_config_suppression(const struct mh_config *cfg,
                                                          const char *tenant);
/* 1 when [kafka] names the brokers (bootstrap.servers or metadata.broker.list). */
int mh_config_kafka_has_brokers(const struct mh_config *cfg);
/* Splits a listen address "host:port" / "[v6]:port"; -1 when it is neither. */
int mh_split_listen(const char *listen, char *host, size_t hostlen, int *port);

#endif
