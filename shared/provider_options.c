/*
 * provider_options.c — parsing a source's options against its provider's table (see
 * provider_options.h).
 */
#include "mailhook/provider_options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/config.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"

size_t mh_options_count(const struct mh_option_def *defs)
{
    size_t n = 0;
    while (defs && defs[n].name) n++;
    return n;
}

const struct mh_option_def *mh_options_find(const struct mh_option_def *defs, const char *name)
{
    for (; defs && defs->name; defs++)
        if (!strcmp(defs->name, name)) return defs;
    return NULL;
}

const char *mh_opt_type_name(enum mh_opt_type type)
{
    switch (type) {
    case MH_OPT_STRING: return "string";
    case MH_OPT_BOOL: return "bool";
    case MH_OPT_INT: return "int";
    case MH_OPT_CHOICE: return "choice";
    case MH_OPT_FILE: return "file";
    case MH_OPT_DIR: return "dir";
    }
    return "?";
}

/* The words config.c accepts for its own true/false keys; strict: true and false only. */
static int parse_bool(const char *v, int strict, long *out)
{
    if (!strcmp(v, "true") ||
        (!strict && (!strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1")))) {
        *out = 1;
        return 0;
    }
    if (!strcmp(v, "false") ||
        (!strict && (!strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0")))) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* The index of value among choices ("a|b|c"), or -1. */
static long choice_index(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    long i = 0;
    for (const char *p = choices; p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vlen && !strncmp(p, value, n)) return i;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* "a, b or c" from "a|b|c". */
static void choice_list(const char *choices, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = choices; p && n < outlen;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        const char *sep = p == choices ? "" : bar ? ", " : " or ";
        int w = snprintf(out + n, outlen - n, "%s%.*s", sep, (int)len, p);
        if (w < 0) break;
        n += (size_t)w;
        p = bar ? bar + 1 : NULL;
    }
}

int mh_option_parse_value(const struct mh_option_def *def, const char *value,
                          struct mh_opt_value *out, char *err, size_t errlen)
{
    out->str = value;
    out->num = 0;
    if (!*value &&
        (def->flags & MH_OPT_NONEMPTY || def->type == MH_OPT_FILE || def->type == MH_OPT_DIR)) {
        snprintf(err, errlen, "%s: empty", def->name);
        return -1;
    }
    switch (def->type) {
    case MH_OPT_STRING:
    case MH_OPT_FILE:
    case MH_OPT_DIR: return 0;
    case MH_OPT_BOOL:
        if (parse_bool(value, (def->flags & MH_OPT_STRICT) != 0, &out->num) == 0) return 0;
        snprintf(err, errlen, "%s: expected true or false, not \"%s\"", def->name, value);
        return -1;
    case MH_OPT_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno == ERANGE || end == value || *end) {
            snprintf(err, errlen, "%s: \"%s\" is not a whole number", def->name, value);
            return -1;
        }
        if (v < def->min || v > def->max) {
            snprintf(err, errlen, "%s: %ld is outside %ld..%ld", def->name, v, def->min,
                     def->max);
            return -1;
        }
        out->num = v;
        return 0;
    }
    case MH_OPT_CHOICE: {
        out->num = choice_index(def->choices, value);
        if (out->num >= 0) return 0;
        char words[256];
        choice_list(def->choices, words, sizeof(words));
        snprintf(err, errlen, "%s: expected %s, not \"%s\"", def->name, words, value);
        return -1;
    }
    }
    snprintf(err, errlen, "%s: unknown option type", def->name);
    return -1;
}

int mh_options_parse_from(const struct mh_option_def *defs, const char *provider,
                          const struct mh_kv *options, const struct mh_kv *from,
                          struct mh_opt_value *values, int *line, const struct mh_kv **next,
                          char *err, size_t errlen)
{
    size_t n = mh_options_count(defs);
    *next = NULL;
    for (size_t i = 0; from == options && i < n; i++) {
        values[i] = (struct mh_opt_value){0};
        /* A default that does not parse is a bug in the table; tests parse them all. */
        if (defs[i].def && mh_option_parse_value(&defs[i], defs[i].def, &values[i], err,
                                                 errlen) < 0) {
            *line = 0;
            return -1;
        }
    }
    for (const struct mh_kv *kv = from; kv; kv = kv->next) {
        const struct mh_option_def *def = mh_options_find(defs, kv->key);
        *line = kv->line;
        *next = kv->next;
        if (!def) {
            snprintf(err, errlen, "unknown key \"%s\" for provider %s", kv->key, provider);
            return -1;
        }
        struct mh_opt_value *v = &values[def - defs];
        if (v->line && !(def->flags & MH_OPT_REPEATABLE)) {
            snprintf(err, errlen, "%s: set twice (first on line %d)", kv->key, v->line);
            return -1;
        }
        struct mh_opt_value parsed = {0};
        if (mh_option_parse_value(def, kv->value, &parsed, err, errlen) < 0) return -1;
        if (!v->line) { /* the first occurrence is the value; later ones are checked */
            *v = parsed;
            v->line = kv->line;
        }
    }
    *line = 0;
    *next = NULL;
    return 0;
}

int mh_options_parse(const struct mh_option_def *defs, const char *provider,
                     const struct mh_kv *options, struct mh_opt_value *values, int *line,
                     char *err, size_t errlen)
{
    const struct mh_kv *next;
    return mh_options_parse_from(defs, provider, options, options, values, line, &next, err,
                                 errlen);
}

/* The parsed value of key, aborting when the provider has no such option. */
static const struct mh_opt_value *value_of(const struct mh_source *src, const char *key,
                                           const struct mh_option_def **def)
{
    const struct mh_option_def *defs = src->provider ? src->provider->options : NULL;
    *def = mh_options_find(defs, key);
    if (!*def || !src->opt_values) {
        fprintf(stderr, "mailhook: bug: option %s read but not parsed for provider %s\n", key,
                src->provider ? src->provider->name : "?");
        abort();
    }
    return &src->opt_values[*def - defs];
}

long mh_source_opt_int(const struct mh_source *src, const char *key)
{
    const struct mh_option_def *def;
    const struct mh_opt_value *v = value_of(src, key, &def);
    if (def->type != MH_OPT_INT && def->type != MH_OPT_BOOL && def->type != MH_OPT_CHOICE) {
        fprintf(stderr, "mailhook: bug: option %s is no number\n", key);
        abort();
    }
    return v->num;
}

int mh_source_opt_bool(const struct mh_source *src, const char *key)
{
    const struct mh_option_def *def;
    const struct mh_opt_value *v = value_of(src, key, &def);
    if (def->type != MH_OPT_BOOL) {
        fprintf(stderr, "mailhook: bug: option %s is no bool\n", key);
        abort();
    }
    return v->num != 0;
}

int mh_source_takes(const struct mh_source *src, const char *key)
{
    return src->provider && mh_options_find(src->provider->options, key) != NULL;
}

const char *mh_source_opt(const struct mh_source *src, const char *key)
{
    const struct mh_option_def *defs = src->provider ? src->provider->options : NULL;
    const struct mh_option_def *def = mh_options_find(defs, key);
    if (def && src->opt_values) return src->opt_values[def - defs].str;
    /* Not parsed (yet): the first value as written, as before parsing existed. */
    for (const struct mh_kv *kv = src->options; kv; kv = kv->next)
        if (!strcmp(kv->key, key)) return kv->value;
    return def ? def->def : NULL;
}
