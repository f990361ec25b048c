/*
 * config.c — loads the INI file (see config.h).
 *
 * inih does the parsing; a line-counting reader lets every error name its line. Keys of
 * the fixed sections are rows of one table, so adding a setting is adding a row. The
 * suppression rules have a table of their own, read for [suppression] (the defaults)
 * and for every [suppression.TENANT] section (which inherits what it does not set).
 */
#include "mailhook/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/api_tokens.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"

enum key_type { KEY_STR, KEY_LONG, KEY_BOOL };

struct key_def {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    const char *def;
    long min, max; /* for KEY_LONG */
};

#define OFF(field) offsetof(struct mh_config, field)

static const struct key_def key_defs[] = {
    {"ingest", "listen", KEY_STR, OFF(ingest.listen), "127.0.0.1:8080", 0, 0},
    {"ingest", "max_body_bytes", KEY_LONG, OFF(ingest.max_body_bytes), "1048576", 1, 64L << 20},
    {"ingest", "max_header_bytes", KEY_LONG, OFF(ingest.max_header_bytes), "16384", 512, 1L << 20},
    {"ingest", "threads", KEY_LONG, OFF(ingest.threads), "0", 0, 64},
    {"ingest", "share_port", KEY_BOOL, OFF(ingest.share_port), "false", 0, 0},
    {"ingest", "read_timeout_ms", KEY_LONG, OFF(ingest.read_timeout_ms), "10000", 100, 600000},
    {"ingest", "request_deadline_ms", KEY_LONG, OFF(ingest.request_deadline_ms), "30000", 100,
     600000},
    {"ingest", "max_connections", KEY_LONG, OFF(ingest.max_connections), "10000", 1, 1000000},
    {"ingest", "ack_deadline_ms", KEY_LONG, OFF(ingest.ack_deadline_ms), "5000", 100, 300000},
    {"ingest", "retry_after_s", KEY_LONG, OFF(ingest.retry_after_s), "5", 1, 3600},
    {"ingest", "raw_topic", KEY_STR, OFF(ingest.raw_topic), "mailhook.raw", 0, 0},
    {"ingest", "log_level", KEY_STR, OFF(ingest.log_level), "info", 0, 0},
    {"ingest", "quarantine_topic", KEY_STR, OFF(ingest.quarantine_topic), "mailhook.quarantine",
     0, 0},
    {"ingest", "quarantine_max_bytes", KEY_LONG, OFF(ingest.quarantine_max_bytes), "1048576", 1,
     64L << 20},
    {"ingest", "quarantine_rate", KEY_LONG, OFF(ingest.quarantine_rate), "10", 1, 100000},
    {"ingest", "quarantine_burst", KEY_LONG, OFF(ingest.quarantine_burst), "100", 1, 1000000},
    {"ingest", "tls_cert_file", KEY_STR, OFF(ingest.tls_cert_file), NULL, 0, 0},
    {"ingest", "tls_key_file", KEY_STR, OFF(ingest.tls_key_file), NULL, 0, 0},
    {"worker", "group_id", KEY_STR, OFF(worker.group_id), "mailhook-worker", 0, 0},
    {"worker", "raw_topic", KEY_STR, OFF(worker.raw_topic), NULL, 0, 0},
    {"worker", "events_topic", KEY_STR, OFF(worker.events_topic), "mailhook.events", 0, 0},
    {"worker", "dlq_topic", KEY_STR, OFF(worker.dlq_topic), "mailhook.dlq", 0, 0},
    {"worker", "suppressions_topic", KEY_STR, OFF(worker.suppressions_topic),
     "mailhook.suppressions", 0, 0},
    {"worker", "batch_size", KEY_LONG, OFF(worker.batch_size), "1000", 1, 100000},
    {"worker", "batch_max_bytes", KEY_LONG, OFF(worker.batch_max_bytes), "4194304", 1024,
     1073741824},
    {"worker", "batch_max_events", KEY_LONG, OFF(worker.batch_max_events), "2000", 1, 10000000},
    {"worker", "commit_interval_ms", KEY_LONG, OFF(worker.commit_interval_ms), "20", 1, 60000},
    {"worker", "claim_lanes", KEY_LONG, OFF(worker.claim_lanes), "2", 1, 64},
    {"worker", "raw_partitions", KEY_LONG, OFF(worker.raw_partitions), "6", 1, 10000},
    /* -1 / 0: the broker's default.replication.factor / min.insync.replicas. */
    {"worker", "replication_factor", KEY_LONG, OFF(worker.replication_factor), "-1", -1, 32},
    {"worker", "min_insync_replicas", KEY_LONG, OFF(worker.min_insync_replicas), "0", 0, 32},
    {"worker", "log_level", KEY_STR, OFF(worker.log_level), "info", 0, 0},
    {"worker", "metrics_listen", KEY_STR, OFF(worker.metrics_listen), NULL, 0, 0},
    {"postgres", "dsn", KEY_STR, OFF(postgres.dsn), "postgresql://postgres@127.0.0.1:5433/mailhook",
     0, 0},
    {"postgres", "migrations_dir", KEY_STR, OFF(postgres.migrations_dir),
     MH_SOURCE_DIR "/migrations", 0, 0},
    {"api", "listen", KEY_STR, OFF(api.listen), "127.0.0.1:8081", 0, 0},
    /* NULL: the installed share directory, else the source tree's api/console (console.c). */
    {"api", "console_dir", KEY_STR, OFF(api.console_dir), NULL, 0, 0},
    {"api", "max_body_bytes", KEY_LONG, OFF(api.max_body_bytes), "65536", 256, 16L << 20},
    {"api", "db_connections", KEY_LONG, OFF(api.db_connections), "4", 1, 64},
    {"api", "request_timeout_ms", KEY_LONG, OFF(api.request_timeout_ms), "10000", 100, 600000},
    {"api", "default_limit", KEY_LONG, OFF(api.default_limit), "100", 1, 10000},
    {"api", "max_limit", KEY_LONG, OFF(api.max_limit), "1000", 1, 10000},
    {"api", "retention_days", KEY_LONG, OFF(api.retention_days), "30", 1, 3650},
    {"api", "partitions_ahead_days", KEY_LONG, OFF(api.partitions_ahead_days), "7", 1, 365},
    {"api", "maintenance_interval_s", KEY_LONG, OFF(api.maintenance_interval_s), "60", 0,
     86400},
    {"api", "log_level", KEY_STR, OFF(api.log_level), "info", 0, 0},
    {"api", "ingest_metrics", KEY_STR, OFF(api.ingest_metrics), NULL, 0, 0},
};

#define POFF(field) offsetof(struct mh_suppression_policy, field)

/* Offsets are into struct mh_suppression_policy; "suppression" stands for the section. */
static const struct key_def policy_defs[] = {
    {"suppression", "hard_bounce", KEY_BOOL, POFF(hard_bounce), "true", 0, 0},
    {"suppression", "complaint", KEY_BOOL, POFF(complaint), "true", 0, 0},
    {"suppression", "unsubscribe", KEY_BOOL, POFF(unsubscribe), "true", 0, 0},
    {"suppression", "resubscribe", KEY_BOOL, POFF(resubscribe), "true", 0, 0},
    {"suppression", "soft_bounce_threshold", KEY_LONG, POFF(soft_bounce_threshold), "5", 0, 1000},
    {"suppression", "soft_bounce_window_hours", KEY_LONG, POFF(soft_bounce_window_hours), "72", 1,
     8760},
    {"suppression", "soft_bounce_suppress_hours", KEY_LONG, POFF(soft_bounce_suppress_hours),
     "168", 1, 87600},
    {"suppression", "soft_bounce_count_delays", KEY_BOOL, POFF(soft_bounce_count_delays), "true",
     0, 0},
};

#define N_KEYS(t) (sizeof(t) / sizeof((t)[0]))

/*
 * Loading stops at the first error (ctx->failed, the message in err). Checking
 * (on_error set) goes on and hands every error to on_error; failed stays 0 so that
 * the rest of the file is still read, and n_errors counts them.
 */
struct load_ctx {
    struct mh_config *cfg;
    const char *path;
    FILE *fp;
    int line;
    int section_line; /* line of the latest [section] header */
    char *err;
    size_t errlen;
    int failed;
    mh_config_error_fn on_error;
    void *on_error_arg;
    int n_errors;
    char last[1200]; /* the latest error reported, so a section's keys repeat none */
};

static int fail_at(struct load_ctx *ctx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Loading records the first error only; later ones are usually consequences of it. */
static int fail_at(struct load_ctx *ctx, int line, const char *fmt, ...)
{
    if (ctx->failed) return 0;
    char msg[512], full[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0) snprintf(full, sizeof(full), "%s:%d: %s", ctx->path, line, msg);
    else snprintf(full, sizeof(full), "%s: %s", ctx->path, msg);
    if (!ctx->on_error) {
        snprintf(ctx->err, ctx->errlen, "%s", full);
        ctx->failed = 1;
        return 0;
    }
    if (!strcmp(full, ctx->last)) return 0;
    snprintf(ctx->last, sizeof(ctx->last), "%s", full);
    ctx->n_errors++;
    ctx->on_error(ctx->on_error_arg, line, full);
    return 0;
}

static char *counting_reader(char *str, int num, void *stream)
{
    struct load_ctx *ctx = stream;
    char *r = fgets(str, num, ctx->fp);
    if (r) {
        ctx->line++;
        const char *p = r;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '[') ctx->section_line = ctx->line;
    }
    return r;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* Sets kd's field of obj (the config, or a suppression policy) from value. */
static int set_key(struct load_ctx *ctx, const struct key_def *kd, void *obj, const char *section,
                   const char *value)
{
    char *base = (char *)obj + kd->offset;
    switch (kd->type) {
    case KEY_STR: {
        char **slot = (char **)base;
        free(*slot);
        *slot = mh_strdup(value);
        return 1;
    }
    case KEY_LONG: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end != '\0')
            return fail_at(ctx, ctx->line, "[%s] %s: \"%s\" is not a whole number", section,
                           kd->name, value);
        if (v < kd->min || v > kd->max)
            return fail_at(ctx, ctx->line, "[%s] %s: %ld is outside %ld..%ld", section, kd->name,
                           v, kd->min, kd->max);
        *(long *)base = v;
        return 1;
    }
    case KEY_BOOL:
        if (parse_bool(value, (int *)base) < 0)
            return fail_at(ctx, ctx->line, "[%s] %s: expected true or false, not \"%s\"", section,
                           kd->name, value);
        return 1;
    }
    return 0;
}

static void kv_append(struct mh_kv **head, const char *key, const char *value, int line)
{
    struct mh_kv *kv = mh_calloc(1, sizeof(*kv));
    kv->key = mh_strdup(key);
    kv->value = mh_strdup(value);
    kv->line = line;
    while (*head) head = &(*head)->next;
    *head = kv;
}

static void kv_free(struct mh_kv *kv)
{
    while (kv) {
        struct mh_kv *next = kv->next;
        free(kv->key);
        /* Values may be secrets: wipe before freeing. */
        memset(kv->value, 0, strlen(kv->value));
        free(kv->value);
        free(kv);
        kv = next;
    }
}

static int valid_source_name(const char *name)
{
    if (!*name || strlen(name) > 64) return 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') return 0;
    return 1;
}

static struct mh_source *source_for_section(struct load_ctx *ctx, const char *name)
{
    struct mh_config *cfg = ctx->cfg;
    for (size_t i = 0; i < cfg->n_sources; i++)
        if (strcmp(cfg->sources[i]->name, name) == 0) return cfg->sources[i];
    struct mh_source *src = mh_calloc(1, sizeof(*src));
    src->name = mh_strdup(name);
    src->enabled = 1;
    src->line = ctx->section_line;
    cfg->sources = mh_realloc(cfg->sources, (cfg->n_sources + 1) * sizeof(*cfg->sources));
    cfg->sources[cfg->n_sources++] = src;
    return src;
}

static void add_secret(struct mh_source *src, const char *secret)
{
    src->secrets = mh_realloc(src->secrets, (src->n_secrets + 1) * sizeof(char *));
    src->secrets[src->n_secrets++] = mh_strdup(secret);
}

static char *read_secret_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return NULL;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
    char *s = mh_strdup(buf);
    memset(buf, 0, sizeof(buf));
    return s;
}

static int handle_source_key(struct load_ctx *ctx, struct mh_source *src, const char *name,
                             const char *value)
{
    if (!strcmp(name, "provider")) {
        src->provider_line = ctx->line;
        src->provider = mh_provider_find(value);
        if (!src->provider)
            return fail_at(ctx, ctx->line, "[source.%s] provider: unknown provider \"%s\"",
                           src->name, value);
        return 1;
    }
    if (!strcmp(name, "tenant")) {
        free(src->tenant);
        src->tenant = mh_strdup(value);
        return 1;
    }
    if (!strcmp(name, "enabled")) {
        if (parse_bool(value, &src->enabled) < 0)
            return fail_at(ctx, ctx->line, "[source.%s] enabled: expected true or false",
                           src->name);
        return 1;
    }
    if (!strcmp(name, "quarantine")) {
        if (parse_bool(value, &src->quarantine) < 0)
            return fail_at(ctx, ctx->line, "[source.%s] quarantine: expected true or false",
                           src->name);
        return 1;
    }
    if (!strcmp(name, "secret")) {
        if (!*value) {
            src->secret_failed = 1;
            return fail_at(ctx, ctx->line, "[source.%s] secret: empty", src->name);
        }
        add_secret(src, value);
        return 1;
    }
    if (!strcmp(name, "secret_env")) {
        const char *v = getenv(value);
        if (!v || !*v) {
            src->secret_failed = 1;
            return fail_at(ctx, ctx->line,
                           "[source.%s] secret_env: environment variable %s is not set",
                           src->name, value);
        }
        add_secret(src, v);
        return 1;
    }
    if (!strcmp(name, "secret_file")) {
        char *s = read_secret_file(value);
        if (!s) {
            src->secret_failed = 1;
            return fail_at(ctx, ctx->line, "[source.%s] secret_file: cannot read %s: %s",
                           src->name, value, strerror(errno));
        }
        if (!*s) {
            free(s);
            src->secret_failed = 1;
            return fail_at(ctx, ctx->line, "[source.%s] secret_file: %s is empty", src->name,
                           value);
        }
        add_secret(src, s);
        memset(s, 0, strlen(s));
        free(s);
        return 1;
    }
    /* Provider keys are checked once the provider is known (it may come later). */
    kv_append(&src->options, name, value, ctx->line);
    return 1;
}

/*
 * token, token_env, token_file of [api]: each adds accepted bearer tokens with the
 * tenants they may act for (api_tokens.h). Errors name the problem, never the token.
 */
static int handle_token_key(struct load_ctx *ctx, const char *name, const char *value)
{
    char problem[384];
    if (!strcmp(name, "token")) {
        if (mh_api_token_add_entry(ctx->cfg, value, problem, sizeof(problem)) < 0)
            return fail_at(ctx, ctx->line, "[api] token: %s", problem);
        return 1;
    }
    if (!strcmp(name, "token_env")) {
        /* VAR [TENANTS]: an environment variable's name holds no space. */
        size_t n = strcspn(value, " \t");
        char *var = mh_strndup(value, n);
        const char *scope = value + n + strspn(value + n, " \t");
        const char *v = getenv(var);
        int rc = 1;
        if (!v || !*v)
            rc = fail_at(ctx, ctx->line, "[api] token_env: environment variable %s is not set",
                         var);
        else if (strpbrk(scope, " \t"))
            rc = fail_at(ctx, ctx->line, "[api] token_env: expected VARIABLE [TENANTS]");
        else {
            /* White space around the token (a newline from a file, say) is not part of it. */
            v += strspn(v, " \t\r\n");
            char *token = mh_strdup(v);
            size_t len = strlen(token);
            while (len && strchr(" \t\r\n", token[len - 1])) token[--len] = '\0';
            if (mh_api_token_add(ctx->cfg, token, scope, problem, sizeof(problem)) < 0)
                rc = fail_at(ctx, ctx->line, "[api] token_env: %s: %s", var, problem);
            memset(token, 0, len);
            free(token);
        }
        free(var);
        return rc;
    }
    if (mh_api_token_add_file(ctx->cfg, value, problem, sizeof(problem)) < 0)
        return fail_at(ctx, ctx->line, "[api] token_file: %s", problem);
    return 1;
}

static struct mh_suppression_policy *policy_for_section(struct load_ctx *ctx, const char *tenant)
{
    struct mh_config *cfg = ctx->cfg;
    for (size_t i = 0; i < cfg->n_tenant_policies; i++)
        if (!strcmp(cfg->tenant_policies[i]->tenant, tenant)) return cfg->tenant_policies[i];
    struct mh_suppression_policy *pol = mh_calloc(1, sizeof(*pol));
    pol->tenant = mh_strdup(tenant);
    pol->line = ctx->section_line;
    cfg->tenant_policies = mh_realloc(cfg->tenant_policies,
                                      (cfg->n_tenant_policies + 1) * sizeof(*cfg->tenant_policies));
    cfg->tenant_policies[cfg->n_tenant_policies++] = pol;
    return pol;
}

/* A key of [suppression] (pol is the defaults) or of [suppression.T]. */
static int handle_policy_key(struct load_ctx *ctx, struct mh_suppression_policy *pol,
                             const char *section, const char *name, const char *value)
{
    for (size_t i = 0; i < N_KEYS(policy_defs); i++) {
        if (strcmp(policy_defs[i].name, name)) continue;
        pol->set_mask |= 1u << i;
        return set_key(ctx, &policy_defs[i], pol, section, value);
    }
    return fail_at(ctx, ctx->line, "[%s]: unknown key \"%s\"", section, name);
}

static int ini_entry(struct load_ctx *ctx, const char *section, const char *name,
                     const char *value)
{
    /* inih calls with name == NULL for a section header that has no keys yet. */
    if (!name) {
        if (!strncmp(section, "source.", 7)) {
            if (!valid_source_name(section + 7))
                return fail_at(ctx, ctx->line, "[%s]: source names use letters, digits, - _ .",
                               section);
            source_for_section(ctx, section + 7);
            return 1;
        }
        if (!strncmp(section, "suppression.", 12)) {
            if (!valid_source_name(section + 12))
                return fail_at(ctx, ctx->line, "[%s]: tenant names use letters, digits, - _ .",
                               section);
            policy_for_section(ctx, section + 12);
            return 1;
        }
        if (strcmp(section, "ingest") && strcmp(section, "worker") &&
            strcmp(section, "postgres") && strcmp(section, "kafka") &&
            strcmp(section, "api") && strcmp(section, "suppression"))
            return fail_at(ctx, ctx->line, "unknown section [%s]", section);
        return 1;
    }
    if (!strcmp(section, "kafka")) {
        kv_append(&ctx->cfg->kafka, name, value, ctx->line);
        return 1;
    }
    if (!strncmp(section, "source.", 7)) {
        if (!valid_source_name(section + 7))
            return fail_at(ctx, ctx->section_line,
                           "[%s]: source names use letters, digits, - _ .", section);
        return handle_source_key(ctx, source_for_section(ctx, section + 7), name, value);
    }
    if (!strcmp(section, "suppression"))
        return handle_policy_key(ctx, &ctx->cfg->suppression, section, name, value);
    if (!strncmp(section, "suppression.", 12)) {
        if (!valid_source_name(section + 12))
            return fail_at(ctx, ctx->section_line,
                           "[%s]: tenant names use letters, digits, - _ .", section);
        return handle_policy_key(ctx, policy_for_section(ctx, section + 12), section, name,
                                 value);
    }
    if (!strcmp(section, "api") &&
        (!strcmp(name, "token") || !strcmp(name, "token_env") || !strcmp(name, "token_file")))
        return handle_token_key(ctx, name, value);
    int known_section = 0;
    for (size_t i = 0; i < sizeof(key_defs) / sizeof(key_defs[0]); i++) {
        const struct key_def *kd = &key_defs[i];
        if (strcmp(kd->section, section)) continue;
        known_section = 1;
        if (!strcmp(kd->name, name)) {
            ctx->cfg->key_lines[i] = ctx->line;
            return set_key(ctx, kd, ctx->cfg, section, value);
        }
    }
    if (!known_section) return fail_at(ctx, ctx->section_line, "unknown section [%s]", section);
    return fail_at(ctx, ctx->line, "[%s]: unknown key \"%s\"", section, name);
}

/* inih's result then names the first syntax error only (errors are fail_at's). */
static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = user;
    if (!ctx->failed) ini_entry(ctx, section, name, value);
    return 1;
}

int mh_config_key_line(const struct mh_config *cfg, const char *section, const char *name)
{
    for (size_t i = 0; cfg->key_lines && i < N_KEYS(key_defs); i++)
        if (!strcmp(key_defs[i].section, section) && !strcmp(key_defs[i].name, name))
            return cfg->key_lines[i];
    return 0;
}

/* [ingest] checks across keys. */
static void validate_ingest(struct load_ctx *ctx)
{
    const struct mh_config *cfg = ctx->cfg;
    const char *cert = cfg->ingest.tls_cert_file, *key = cfg->ingest.tls_key_file;
    if (cert && !*cert)
        fail_at(ctx, mh_config_key_line(cfg, "ingest", "tls_cert_file"),
                "[ingest] tls_cert_file: empty");
    else if (key && !*key)
        fail_at(ctx, mh_config_key_line(cfg, "ingest", "tls_key_file"),
                "[ingest] tls_key_file: empty");
    else if (cert && !key)
        fail_at(ctx, mh_config_key_line(cfg, "ingest", "tls_cert_file"),
                "[ingest] tls_cert_file is set but tls_key_file is not (set both, or neither "
                "for plain HTTP)");
    else if (key && !cert)
        fail_at(ctx, mh_config_key_line(cfg, "ingest", "tls_key_file"),
                "[ingest] tls_key_file is set but tls_cert_file is not (set both, or neither "
                "for plain HTTP)");
}

/* [worker] checks across keys: a topic whose min.insync.replicas exceeds its replica
 * count could never take a write. */
static void validate_worker(struct load_ctx *ctx)
{
    const struct mh_config *cfg = ctx->cfg;
    long rf = cfg->worker.replication_factor, isr = cfg->worker.min_insync_replicas;
    if (rf == 0)
        fail_at(ctx, mh_config_key_line(cfg, "worker", "replication_factor"),
                "[worker] replication_factor: 0 replicas (-1 takes the broker's default)");
    else if (rf > 0 && isr > rf)
        fail_at(ctx, mh_config_key_line(cfg, "worker", "min_insync_replicas"),
                "[worker] min_insync_replicas %ld is more than replication_factor %ld: no "
                "write could ever succeed",
                isr, rf);
}

/* One source's provider, options, secrets and provider init; 0 on an error. */
static int validate_source(struct load_ctx *ctx, struct mh_source *src)
{
    const struct mh_provider *p = src->provider;
    if (!p) {
        /* An unknown provider was reported where it was named. */
        if (src->provider_line) return 0;
        return fail_at(ctx, src->line, "[source.%s]: missing \"provider\"", src->name);
    }
    if (!src->tenant) src->tenant = mh_strdup("default");
    src->opt_values = mh_calloc(mh_options_count(p->options) + 1, sizeof(*src->opt_values));
    int options_ok = 1;
    for (const struct mh_kv *from = src->options;;) {
        char oerr[400] = "";
        int oline = 0;
        const struct mh_kv *next = NULL;
        if (mh_options_parse_from(p->options, p->name, src->options, from, src->opt_values,
                                  &oline, &next, oerr, sizeof(oerr)) == 0)
            break;
        options_ok = 0;
        fail_at(ctx, oline ? oline : src->line, "[source.%s]: %s", src->name, oerr);
        /* Loading stops here; checking reads on from the option after the bad one. */
        if (ctx->failed || !next) break;
        from = next;
    }
    if (!options_ok) return 0;
    if (p->needs_secret && src->n_secrets == 0 && !src->secret_failed)
        return fail_at(ctx, src->line,
                       "[source.%s]: provider %s needs a secret (secret, secret_env or "
                       "secret_file)",
                       src->name, p->name);
    for (const char *const *h = p->forward_headers; h && *h; h++) mh_source_forward(src, *h);
    if (p->init) {
        char perr[400] = "";
        if (p->init(src, perr, sizeof(perr)) < 0)
            return fail_at(ctx, src->err_line ? src->err_line : src->line, "[source.%s]: %s",
                           src->name, perr);
    }
    return 1;
}

static void validate_sources(struct load_ctx *ctx)
{
    struct mh_config *cfg = ctx->cfg;
    for (size_t i = 0; i < cfg->n_sources && !ctx->failed; i++)
        validate_source(ctx, cfg->sources[i]);
}

static void defaults_into(void *obj, const struct key_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct key_def *kd = &defs[i];
        char *base = (char *)obj + kd->offset;
        if (kd->type == KEY_STR && kd->def) *(char **)base = mh_strdup(kd->def);
        else if (kd->type == KEY_LONG) *(long *)base = strtol(kd->def, NULL, 10);
        else if (kd->type == KEY_BOOL) parse_bool(kd->def, (int *)base);
    }
}

static void apply_defaults(struct mh_config *cfg)
{
    defaults_into(cfg, key_defs, N_KEYS(key_defs));
    defaults_into(&cfg->suppression, policy_defs, N_KEYS(policy_defs));
}

/* A tenant's section inherits every rule it does not set from [suppression]. */
static void inherit_policies(struct mh_config *cfg)
{
    for (size_t t = 0; t < cfg->n_tenant_policies; t++) {
        struct mh_suppression_policy *pol = cfg->tenant_policies[t];
        for (size_t i = 0; i < N_KEYS(policy_defs); i++) {
            if (pol->set_mask & (1u << i)) continue;
            const struct key_def *kd = &policy_defs[i];
            const char *from = (const char *)&cfg->suppression + kd->offset;
            char *to = (char *)pol + kd->offset;
            if (kd->type == KEY_LONG) *(long *)to = *(const long *)from;
            else if (kd->type == KEY_BOOL) *(int *)to = *(const int *)from;
        }
    }
}

const struct mh_suppression_policy *mh_config_suppression(const struct mh_config *cfg,
                                                          const char *tenant)
{
    for (size_t i = 0; tenant && i < cfg->n_tenant_policies; i++)
        if (!strcmp(cfg->tenant_policies[i]->tenant, tenant)) return cfg->tenant_policies[i];
    return &cfg->suppression;
}

/* Environment overrides: the same binary runs against any broker or database. */
static void apply_env(struct mh_config *cfg)
{
    const char *brokers = getenv("MAILHOOK_KAFKA_BROKERS");
    const char *dsn = getenv("MAILHOOK_PG_DSN");
    if (brokers && *brokers) {
        struct mh_kv *kv;
        for (kv = cfg->kafka; kv; kv = kv->next)
            if (!strcmp(kv->key, "bootstrap.servers")) break;
        if (kv) {
            free(kv->value);
            kv->value = mh_strdup(brokers);
        } else {
            kv_append(&cfg->kafka, "bootstrap.servers", brokers, 0);
        }
    }
    if (dsn && *dsn) {
        free(cfg->postgres.dsn);
        cfg->postgres.dsn = mh_strdup(dsn);
    }
    if (!cfg->worker.raw_topic) cfg->worker.raw_topic = mh_strdup(cfg->ingest.raw_topic);
}

/* Reads and validates ctx->path into a new config; the errors go where ctx says. */
static struct mh_config *load(struct load_ctx *ctx)
{
    struct mh_config *cfg = mh_calloc(1, sizeof(*cfg));
    cfg->path = mh_strdup(ctx->path);
    cfg->key_lines = mh_calloc(N_KEYS(key_defs), sizeof(*cfg->key_lines));
    apply_defaults(cfg);
    ctx->cfg = cfg;
    ctx->fp = fopen(ctx->path, "r");
    if (!ctx->fp) {
        fail_at(ctx, 0, "cannot open: %s", strerror(errno));
        mh_config_free(cfg);
        return NULL;
    }
    int rc = ini_parse_stream(counting_reader, ctx, on_ini_entry, ctx);
    fclose(ctx->fp);
    ctx->fp = NULL;
    if (rc > 0) fail_at(ctx, rc, "syntax error (expected [section] or key = value)");
    if (rc < 0) fail_at(ctx, 0, "cannot read");
    if (ctx->failed) return cfg;

    validate_ingest(ctx);
    validate_worker(ctx);
    if (ctx->failed) return cfg;
    apply_env(cfg);
    inherit_policies(cfg);
    if (!cfg->kafka || !mh_config_kafka_has_brokers(cfg)) {
        kv_append(&cfg->kafka, "bootstrap.servers", "127.0.0.1:9092", 0);
    }
    validate_sources(ctx);
    return cfg;
}

struct mh_config *mh_config_load(const char *path, char *err, size_t errlen)
{
    struct load_ctx ctx = {.path = path, .err = err, .errlen = errlen};
    struct mh_config *cfg = load(&ctx);
    if (cfg && ctx.failed) {
        mh_config_free(cfg);
        return NULL;
    }
    return cfg;
}

int mh_config_check(const char *path, mh_config_error_fn on_error, void *arg,
                    struct mh_config **out)
{
    struct load_ctx ctx = {.path = path, .on_error = on_error, .on_error_arg = arg};
    struct mh_config *cfg = load(&ctx);
    if (out) *out = cfg;
    else mh_config_free(cfg);
    return ctx.n_errors;
}

long mh_config_max_record_bytes(const struct mh_config *cfg)
{
    /* Headers (source, tenant, signature, ...) and record overhead fit in 256 KiB. */
    long n = cfg->ingest.max_body_bytes + 256 * 1024;
    return n < 1000000 ? 1000000 : n;
}

int mh_config_kafka_has_brokers(const struct mh_config *cfg)
{
    for (struct mh_kv *kv = cfg->kafka; kv; kv = kv->next)
        if (!strcmp(kv->key, "bootstrap.servers") || !strcmp(kv->key, "metadata.broker.list"))
            return 1;
    return 0;
}

static void source_free(struct mh_source *src)
{
    if (!src) return;
    if (src->provider && src->provider->fini) src->provider->fini(src);
    for (size_t i = 0; i < src->n_secrets; i++) {
        memset(src->secrets[i], 0, strlen(src->secrets[i]));
        free(src->secrets[i]);
    }
    free(src->secrets);
    for (size_t i = 0; i < src->n_forward; i++) free(src->forward_headers[i]);
    free(src->forward_headers);
    kv_free(src->options);
    free(src->opt_values);
    free(src->tenant);
    free(src->name);
    free(src);
}

void mh_config_free(struct mh_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < sizeof(key_defs) / sizeof(key_defs[0]); i++)
        if (key_defs[i].type == KEY_STR) free(*(char **)((char *)cfg + key_defs[i].offset));
    kv_free(cfg->kafka);
    mh_api_tokens_free(cfg);
    for (size_t i = 0; i < cfg->n_tenant_policies; i++) {
        free(cfg->tenant_policies[i]->tenant);
        free(cfg->tenant_policies[i]);
    }
    free(cfg->tenant_policies);
    for (size_t i = 0; i < cfg->n_sources; i++) source_free(cfg->sources[i]);
    free(cfg->sources);
    free(cfg->key_lines);
    free(cfg->path);
    free(cfg);
}

struct mh_source *mh_config_source(const struct mh_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_sources; i++)
        if (!strcmp(cfg->sources[i]->name, name)) return cfg->sources[i];
    return NULL;
}

int mh_source_opt_line(const struct mh_source *src, const char *key)
{
    for (struct mh_kv *kv = src->options; kv; kv = kv->next)
        if (!strcmp(kv->key, key)) return kv->line;
    return src->line;
}

void mh_source_forward(struct mh_source *src, const char *header)
{
    char *lower = mh_strdup(header);
    for (char *p = lower; *p; p++) *p = (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < src->n_forward; i++) {
        if (!strcmp(src->forward_headers[i], lower)) {
            free(lower);
            return;
        }
    }
    src->forward_headers = mh_realloc(src->forward_headers, (src->n_forward + 1) * sizeof(char *));
    src->forward_headers[src->n_forward++] = lower;
}

int mh_split_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen) return -1;
    size_t n = (size_t)(colon - listen);
    if (listen[0] == '[' && n >= 2 && listen[n - 1] == ']') {
        listen++;
        n -= 2;
    }
    if (n + 1 > hostlen) return -1;
    memcpy(host, listen, n);
    host[n] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}
