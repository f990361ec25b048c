/*
 * log.c — JSON-lines logging and the allocation wrappers that abort on OOM.
 */
#include "mailhook/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/timeutil.h"

enum mh_log_level mh_log_threshold = MH_LOG_INFO;
static const char *log_component = "mailhook";

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void mh_log_init(const char *component)
{
    log_component = component;
    const char *env = getenv("MAILHOOK_LOG_LEVEL");
    if (env) mh_log_level_parse(env, &mh_log_threshold);
}

int mh_log_level_parse(const char *name, enum mh_log_level *out)
{
    for (int i = 0; i <= MH_LOG_OFF; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum mh_log_level)i;
            return 0;
        }
    }
    return -1;
}

void mh_log_write(enum mh_log_level level, const char *request_id, const char *source,
                  const char *fmt, ...)
{
    char msg[2048];
    char ts[32];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mh_time_format(mh_now_ms(), ts);

    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "component", json_string(log_component));
    json_object_set_new(line, "msg", json_stringn_nocheck(msg, strlen(msg)));
    if (request_id) json_object_set_new(line, "request_id", json_string(request_id));
    if (source) json_object_set_new(line, "source", json_string(source));
    char *out = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (out) {
        fprintf(stderr, "%s\n", out);
        free(out);
    }
    json_decref(line);
}

void mh_oom(void)
{
    fputs("{\"level\":\"error\",\"msg\":\"out of memory\"}\n", stderr);
    abort();
}

void *mh_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) mh_oom();
    return p;
}

void *mh_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) mh_oom();
    return p;
}

void *mh_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) mh_oom();
    return q;
}

char *mh_strdup(const char *s)
{
    char *p = strdup(s);
    if (!p) mh_oom();
    return p;
}

char *mh_strndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p) mh_oom();
    return p;
}
