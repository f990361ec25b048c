/*
 * provider_options.h — the typed options of a provider's [source.NAME] sections.
 *
 * Every provider describes its options in one table (name, type, default, bounds, help),
 * as config.c describes the keys of the fixed sections. mh_config_load parses each
 * source's options against its provider's table once, before the provider's init runs:
 * unknown keys, values of the wrong type, numbers out of bounds and repeated options
 * that may not repeat are config errors naming file and line. Providers then read typed
 * values (mh_source_opt_int, mh_source_opt_bool, mh_source_opt) and check only what a
 * type cannot say (a header other than Authorization, a key that loads, ...).
 * `mailhook providers` prints the tables.
 */
#ifndef MH_PROVIDER_OPTIONS_H
#define MH_PROVIDER_OPTIONS_H

#include <stddef.h>

struct mh_kv;
struct mh_source;

enum mh_opt_type {
    MH_OPT_STRING, /* any text */
    MH_OPT_BOOL,   /* true / false (also yes / no, on / off, 1 / 0 unless MH_OPT_STRICT) */
    MH_OPT_INT,    /* a whole number within min..max */
    MH_OPT_CHOICE, /* one of the words in choices */
    MH_OPT_FILE,   /* the path of a file read at start-up */
    MH_OPT_DIR,    /* the path of a directory read at start-up */
};

enum mh_opt_flags {
    MH_OPT_REPEATABLE = 1 << 0, /* may be given more than once (e.g. keys during a rotation) */
    MH_OPT_NONEMPTY = 1 << 1,   /* "" is refused (FILE and DIR are never empty) */
    MH_OPT_STRICT = 1 << 2,     /* MH_OPT_BOOL: only the words true and false */
};

struct mh_option_def {
    const char *name;
    enum mh_opt_type type;
    const char *def;     /* the default as written in a config file; NULL: unset */
    long min, max;       /* MH_OPT_INT */
    const char *choices; /* MH_OPT_CHOICE: the words, separated by '|' */
    unsigned flags;
    const char *help;
};

/* The longest timestamp tolerance a provider accepts: 31 days. */
#define MH_OPT_MAX_TOLERANCE_S (31L * 86400)

/* The freshness window of providers whose requests carry a signed timestamp. */
#define MH_OPT_TIMESTAMP_TOLERANCE(default_s)                                                 \
    {.name = "timestamp_tolerance_s", .type = MH_OPT_INT, .def = default_s, .min = 0,         \
     .max = MH_OPT_MAX_TOLERANCE_S,                                                           \
     .help = "seconds the signed timestamp may lie from now, either way; 0 turns the check off"}

/* The parsed value of one option of a source (one per row of its provider's table). */
struct mh_opt_value {
    int line;        /* line of the first occurrence; 0 when the option is not set */
    long num;        /* MH_OPT_INT: the number; MH_OPT_BOOL: 0 / 1; MH_OPT_CHOICE: index */
    const char *str; /* the text (of the first occurrence), else the default, else NULL */
};

/* Number of rows of a table (it ends with a row whose name is NULL); 0 for NULL. */
size_t mh_options_count(const struct mh_option_def *defs);

/* The row of defs named name, or NULL. */
const struct mh_option_def *mh_options_find(const struct mh_option_def *defs, const char *name);

/* "string", "bool", "int", "choice", "file", "dir". */
const char *mh_opt_type_name(enum mh_opt_type type);

/*
 * Parses one value as def says into *out (num and str, line left alone). 0, or -1
 * with "name: problem" in err.
 */
int mh_option_parse_value(const struct mh_option_def *def, const char *value,
                          struct mh_opt_value *out, char *err, size_t errlen);

/*
 * Parses a section's key = value list against defs into values (one per row, defaults
 * for what is unset). 0, or -1 with *line set to the offending line and err to the
 * problem ("unknown key ...", "name: problem"). provider names the table in errors.
 */
int mh_options_parse(const struct mh_option_def *defs, const char *provider,
                     const struct mh_kv *options, struct mh_opt_value *values, int *line,
                     char *err, size_t errlen);
/*
 * mh_options_parse from the entry `from` of options on (options itself: from the start,
 * defaults first). On an error *next is the entry after the bad one, for a caller that
 * reports every error to go on from (`mailhook config check`).
 */
int mh_options_parse_from(const struct mh_option_def *defs, const char *provider,
                          const struct mh_kv *options, const struct mh_kv *from,
                          struct mh_opt_value *values, int *line, const struct mh_kv **next,
                          char *err, size_t errlen);

/*
 * The parsed options of a source, by name. The name must be in the source provider's
 * table with a fitting type (anything else is a bug in the provider: it aborts).
 */
long mh_source_opt_int(const struct mh_source *src, const char *key);
int mh_source_opt_bool(const struct mh_source *src, const char *key);
/* 1 when the source's provider has an option named key. */
int mh_source_takes(const struct mh_source *src, const char *key);

#endif
