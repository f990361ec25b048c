/*
 * providers.c — `mailhook providers`: every provider and the options its [source.NAME]
 * sections take (type, default, bounds, help), read from the providers' own option
 * tables, so the listing is what the config loader enforces. Needs no config file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"
#include "table.h"

static const char usage_text[] =
    "usage: mailhook providers [--json] [PROVIDER...]\n\n"
    "Lists every provider (or the ones named) with the options a [source.NAME] section of\n"
    "it may set: type, default, allowed values and what the option does. Besides these,\n"
    "every source takes provider, tenant, enabled, secret, secret_env and secret_file.\n\n"
    "  --json   one JSON object: {\"providers\": [{\"name\", \"needs_secret\",\n"
    "           \"dedup_per_source\", \"options\": [...]}]}\n";

/* The default as JSON: a number for ints, true/false for bools, else the text; null. */
static json_t *default_json(const struct mh_option_def *d)
{
    struct mh_opt_value v;
    char err[256];
    if (!d->def) return json_null();
    if (mh_option_parse_value(d, d->def, &v, err, sizeof(err)) < 0) return json_string(d->def);
    if (d->type == MH_OPT_INT) return json_integer(v.num);
    if (d->type == MH_OPT_BOOL) return json_boolean(v.num);
    return json_string(d->def);
}

static json_t *option_json(const struct mh_option_def *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(d->name));
    json_object_set_new(o, "type", json_string(mh_opt_type_name(d->type)));
    json_object_set_new(o, "default", default_json(d));
    if (d->type == MH_OPT_INT) {
        json_object_set_new(o, "min", json_integer(d->min));
        json_object_set_new(o, "max", json_integer(d->max));
    }
    if (d->type == MH_OPT_CHOICE) {
        json_t *words = json_array();
        for (const char *p = d->choices; p;) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            json_array_append_new(words, json_stringn(p, n));
            p = bar ? bar + 1 : NULL;
        }
        json_object_set_new(o, "choices", words);
    }
    if (d->type == MH_OPT_BOOL)
        json_object_set_new(o, "strict", json_boolean(d->flags & MH_OPT_STRICT));
    json_object_set_new(o, "repeatable", json_boolean(d->flags & MH_OPT_REPEATABLE));
    json_object_set_new(o, "help", json_string(d->help ? d->help : ""));
    return o;
}

static json_t *provider_json(const struct mh_provider *p)
{
    json_t *o = json_object(), *opts = json_array();
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "needs_secret", json_boolean(p->needs_secret));
    json_object_set_new(o, "dedup_per_source", json_boolean(p->dedup_per_source));
    for (const struct mh_option_def *d = p->options; d && d->name; d++)
        json_array_append_new(opts, option_json(d));
    json_object_set_new(o, "options", opts);
    return o;
}

/* The "values" column: bounds, choices or the accepted words, and repeatability. */
static void values_text(const struct mh_option_def *d, char *out, size_t len)
{
    const char *rep = d->flags & MH_OPT_REPEATABLE ? "repeatable" : "";
    switch (d->type) {
    case MH_OPT_INT: snprintf(out, len, "%ld..%ld", d->min, d->max); break;
    case MH_OPT_CHOICE: snprintf(out, len, "%s", d->choices); break;
    case MH_OPT_BOOL:
        snprintf(out, len, "%s", d->flags & MH_OPT_STRICT ? "true|false"
                                                          : "true|false (yes|no, on|off, 1|0)");
        return;
    default: snprintf(out, len, "%s", *rep ? rep : "-"); return;
    }
    if (*rep) snprintf(out + strlen(out), len - strlen(out), ", %s", rep);
}

static void print_provider(FILE *out, const struct mh_provider *p)
{
    static const char *const cols[] = {"option", "type", "default", "values", "help", NULL};
    fprintf(out, "%s (secret %s%s)\n", p->name, p->needs_secret ? "required" : "not required",
            p->dedup_per_source ? "; events deduplicated per source" : "");
    if (!p->options || !p->options->name) {
        fprintf(out, "  no options\n\n");
        return;
    }
    json_t *rows = json_array();
    for (const struct mh_option_def *d = p->options; d->name; d++) {
        char values[300];
        values_text(d, values, sizeof(values));
        json_t *row = json_object();
        json_object_set_new(row, "option", json_string(d->name));
        json_object_set_new(row, "type", json_string(mh_opt_type_name(d->type)));
        if (d->def) json_object_set_new(row, "default", json_string(*d->def ? d->def : "\"\""));
        json_object_set_new(row, "values", json_string(values));
        json_object_set_new(row, "help", json_string(d->help ? d->help : ""));
        json_array_append_new(rows, row);
    }
    cli_print_table(out, rows, cols);
    fputc('\n', out);
    json_decref(rows);
}

int cmd_providers(struct mh_config *cfg, int argc, char **argv)
{
    (void)cfg;
    int as_json = 0;
    json_t *names = json_array();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            json_decref(names);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (argv[i][0] == '-' || !mh_provider_find(argv[i])) {
            fprintf(stderr, argv[i][0] == '-' ? "mailhook providers: unknown option %s\n"
                                              : "mailhook providers: no provider \"%s\"\n",
                    argv[i]);
            fputs(usage_text, stderr);
            json_decref(names);
            return 2;
        } else {
            json_array_append_new(names, json_string(argv[i]));
        }
    }
    json_t *list = json_array();
    for (const struct mh_provider *const *p = mh_providers; *p; p++) {
        int wanted = json_array_size(names) == 0;
        size_t k;
        json_t *name;
        json_array_foreach(names, k, name) wanted |= !strcmp(json_string_value(name), (*p)->name);
        if (!wanted) continue;
        if (as_json) json_array_append_new(list, provider_json(*p));
        else print_provider(stdout, *p);
    }
    if (as_json) {
        json_t *root = json_pack("{s:o}", "providers", list);
        char *txt = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) puts(txt);
        free(txt);
        json_decref(root);
    } else {
        json_decref(list);
    }
    json_decref(names);
    return 0;
}
