/*
 * log.h — one JSON object per line on stderr.
 *
 * Every line carries ts, level, component and msg; lines about a request or a Kafka
 * record also carry its request id and source. The level is checked before any
 * formatting happens. Never pass a secret, a signature or a whole body to a log call.
 */
#ifndef MH_LOG_H
#define MH_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum mh_log_level { MH_LOG_DEBUG = 0, MH_LOG_INFO, MH_LOG_WARN, MH_LOG_ERROR, MH_LOG_OFF };

extern enum mh_log_level mh_log_threshold;

/* Names the process in every line ("ingest", "worker", "mailhook"). */
void mh_log_init(const char *component);
/* Parses "debug" | "info" | "warn" | "error" | "off"; returns -1 for anything else. */
int mh_log_level_parse(const char *name, enum mh_log_level *out);

void mh_log_write(enum mh_log_level level, const char *request_id, const char *source,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define mh_log_at(lvl, rid, src, ...)                                                      \
    do {                                                                                   \
        if ((lvl) >= mh_log_threshold) mh_log_write((lvl), (rid), (src), __VA_ARGS__);     \
    } while (0)

#define mh_debug(...) mh_log_at(MH_LOG_DEBUG, NULL, NULL, __VA_ARGS__)
#define mh_info(...)  mh_log_at(MH_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define mh_warn(...)  mh_log_at(MH_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define mh_error(...) mh_log_at(MH_LOG_ERROR, NULL, NULL, __VA_ARGS__)

/* Out of memory is not recoverable in mailhook: report and abort. */
void mh_oom(void) __attribute__((noreturn));
void *mh_malloc(size_t n);
void *mh_calloc(size_t n, size_t size);
void *mh_realloc(void *p, size_t n);
char *mh_strdup(const char *s);
char *mh_strndup(const char *s, size_t n);

#endif
