/*
 * suppressions.c — `mailhook suppressions`: check, list, add, remove, import and export
 * the suppression list, straight against PostgreSQL and the suppressions topic (the
 * same store mailhook-api uses, so a change here is published exactly like one made
 * through the API). Output is a table, or JSON with --json; import and export are CSV.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/cursor.h"
#include "mailhook/log.h"
#include "suppressions.h"
#include "table.h"

#define IMPORT_BATCH 500

static const char usage[] =
    "usage: mailhook [--config FILE] suppressions SUBCOMMAND [OPTIONS]\n"
    "\n"
    "  check  --tenant T ADDRESS        may I send? exit 0: yes; exit 3: suppressed\n"
    "  list   --tenant T [--reason R] [--limit N] [--cursor C]\n"
    "  add    --tenant T [--reason R] ADDRESS...   suppress (reason: manual unless given)\n"
    "  remove --tenant T ADDRESS...     lift the suppression\n"
    "  import --tenant T [--reason R] FILE|-\n"
    "         CSV: address[,reason] per line, or with a header naming the columns\n"
    "         (tenant, address, reason; `export` output is accepted as it is)\n"
    "  export [--tenant T] [FILE|-]     CSV of every current suppression\n"
    "\n"
    "  --json   JSON output instead of a table\n"
    "  --tenant defaults to the config's tenant when all its sources share one.\n"
    "Reasons: bounce, complaint, unsubscribe, manual (soft_bounce is set by the soft-bounce\n"
    "rule only). Exit status 1 on errors, 2 on bad usage.\n";

struct opts {
    const char *tenant, *reason, *cursor;
    long limit;
    int json;
};

/* ---- output -------------------------------------------------------------------------------- */

static const char *const columns[] = {"address", "reason", "since", "expires_at", "source", NULL};

static void print_json(json_t *v)
{
    char *txt = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (txt) puts(txt);
    free(txt);
}

/* ---- CSV ----------------------------------------------------------------------------------- */

/* Splits one CSV line (RFC 4180 quotes) into at most max fields, in place. */
static size_t csv_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    while (n < max) {
        char *out = p;
        fields[n++] = p;
        if (*p == '"') {
            char *r = p + 1;
            for (;;) {
                if (!*r) break;
                if (*r == '"') {
                    if (r[1] == '"') {
                        *out++ = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                *out++ = *r++;
            }
            while (*r && *r != ',') r++;
            int more = *r == ',';
            *out = '\0';
            if (!more) break;
            p = r + 1;
        } else {
            char *comma = strchr(p, ',');
            if (!comma) break;
            *comma = '\0';
            p = comma + 1;
        }
    }
    return n;
}

static void csv_field(FILE *out, const char *v, int last)
{
    if (!v) v = "";
    if (strpbrk(v, ",\"\n\r")) {
        fputc('"', out);
        for (; *v; v++) {
            if (*v == '"') fputc('"', out);
            fputc(*v, out);
        }
        fputc('"', out);
    } else {
        fputs(v, out);
    }
    fputc(last ? '\n' : ',', out);
}

/* ---- subcommands ----------------------------------------------------------------------------- */

static int need_tenant(const struct opts *o, const char *sub)
{
    if (!o->tenant) {
        fprintf(stderr, "mailhook suppressions %s: --tenant is required (the config has "
                        "more than one tenant)\n", sub);
        return -1;
    }
    if (strlen(o->tenant) > MH_TENANT_MAX) {
        fprintf(stderr, "mailhook suppressions %s: --tenant: longer than %d bytes\n", sub,
                MH_TENANT_MAX);
        return -1;
    }
    return 0;
}

static int do_check(struct supp_store *st, const struct opts *o, int argc, char **argv)
{
    char addr[SUPP_ADDRESS_MAX + 1], err[1024];
    if (need_tenant(o, "check") < 0 || argc != 1) return 2;
    if (supp_address_normalize(argv[0], addr, sizeof(addr)) < 0) {
        fprintf(stderr, "mailhook suppressions check: \"%s\" is not an email address\n", argv[0]);
        return 2;
    }
    json_t *state = NULL;
    int rc = supp_lookup(st, o->tenant, addr, &state, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "mailhook suppressions check: %s\n", err);
        return 1;
    }
    if (o->json) {
        json_t *v = state ? json_incref(state) : json_pack("{ssss}", "tenant", o->tenant, "address", addr);
        json_object_set_new(v, "suppressed", json_boolean(rc == 1));
        print_json(v);
        json_decref(v);
    } else if (rc == 1) {
        json_t *rows = json_pack("[O]", state);
        cli_print_table(stdout, rows, columns);
        json_decref(rows);
    } else {
        printf("%s: not suppressed (may send)\n", addr);
    }
    json_decref(state);
    return rc == 1 ? 3 : 0;
}

static int do_list(struct supp_store *st, const struct opts *o, int argc)
{
    char err[1024];
    if (need_tenant(o, "list") < 0 || argc != 0) return 2;
    /* The cursor is the API's: the (tenant, address) of the previous page's last row. */
    json_t *after = o->cursor ? mh_cursor_decode(o->cursor, 2) : NULL;
    if (o->cursor && (!after || strcmp(json_string_value(json_array_get(after, 0)), o->tenant))) {
        fprintf(stderr, "mailhook suppressions list: --cursor: not a cursor of this list\n");
        json_decref(after);
        return 2;
    }
    json_t *items = NULL;
    int rc = supp_list(st, o->tenant, o->reason, json_string_value(json_array_get(after, 1)),
                       o->tenant, o->limit + 1, &items, err, sizeof(err));
    json_decref(after);
    if (rc < 0) {
        fprintf(stderr, "mailhook suppressions list: %s\n", err);
        return 1;
    }
    char *next = NULL;
    if ((long)json_array_size(items) > o->limit) {
        json_array_remove(items, (size_t)o->limit);
        json_t *last = json_array_get(items, (size_t)o->limit - 1);
        const char *parts[2] = {json_string_value(json_object_get(last, "tenant")),
                                json_string_value(json_object_get(last, "address"))};
        next = mh_cursor_encode(parts, 2);
    }
    if (o->json) {
        json_t *v = json_pack("{sOss?}", "items", items, "next_cursor", next);
        print_json(v);
        json_decref(v);
    } else {
        cli_print_table(stdout, items, columns);
        if (next) fprintf(stderr, "more: --cursor '%s'\n", next);
    }
    free(next);
    json_decref(items);
    return 0;
}

/* Applies ops in one batch and reports; 0 or 1. */
static int write_ops(struct supp_store *st, json_t *ops, const char *source, const char *what,
                     const struct opts *o, int quiet)
{
    char err[1024];
    json_t *states = NULL;
    if (supp_write(st, ops, source, &states, err, sizeof(err)) < 0) {
        fprintf(stderr, "mailhook suppressions %s: %s\n", what, err);
        return 1;
    }
    if (!quiet) {
        if (o->json) {
            print_json(states);
        } else {
            size_t i;
            json_t *s;
            json_array_foreach(states, i, s) {
                json_t *v = json_object_get(s, "value");
                printf("%s: %s\n", json_string_value(json_object_get(s, "key")),
                       json_is_object(v) ? json_string_value(json_object_get(v, "reason"))
                                         : "not suppressed");
            }
        }
    }
    json_decref(states);
    return 0;
}

static int do_add_remove(struct supp_store *st, const struct opts *o, int lift, int argc,
                         char **argv)
{
    const char *what = lift ? "remove" : "add";
    if (need_tenant(o, what) < 0 || argc < 1) return 2;
    const char *reason = lift ? "manual" : o->reason ? o->reason : "manual";
    if (!supp_reason_valid(reason)) {
        fprintf(stderr, "mailhook suppressions %s: reason must be bounce, complaint, unsubscribe "
                        "or manual\n", what);
        return 2;
    }
    json_t *ops = json_array();
    for (int i = 0; i < argc; i++) {
        char addr[SUPP_ADDRESS_MAX + 1];
        if (supp_address_normalize(argv[i], addr, sizeof(addr)) < 0) {
            fprintf(stderr, "mailhook suppressions %s: \"%s\" is not an email address\n", what,
                    argv[i]);
            json_decref(ops);
            return 2;
        }
        json_array_append_new(ops, json_pack("{ssssssss}", "tenant", o->tenant, "address", addr,
                                             "op", lift ? "lift" : "suppress", "reason", reason));
    }
    int rc = write_ops(st, ops, "cli", what, o, 0);
    json_decref(ops);
    return rc;
}

static int do_import(struct supp_store *st, const struct opts *o, int argc, char **argv)
{
    if (argc != 1) return 2;
    FILE *in = strcmp(argv[0], "-") ? fopen(argv[0], "r") : stdin;
    if (!in) {
        fprintf(stderr, "mailhook suppressions import: cannot open %s: %s\n", argv[0],
                strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0, imported = 0, skipped = 0;
    int col_tenant = -1, col_address = 0, col_reason = 1, rc = 0;
    json_t *ops = json_array();
    while (getline(&line, &cap, in) > 0) {
        char *f[16];
        lineno++;
        size_t n = csv_split(line, f, 16);
        if (n == 0 || (n == 1 && !*f[0])) continue;
        if (lineno == 1 && (!strcmp(f[0], "address") || !strcmp(f[0], "tenant"))) {
            col_address = col_reason = -1;
            for (size_t c = 0; c < n; c++) {
                if (!strcmp(f[c], "tenant")) col_tenant = (int)c;
                else if (!strcmp(f[c], "address")) col_address = (int)c;
                else if (!strcmp(f[c], "reason")) col_reason = (int)c;
            }
            if (col_address < 0) {
                fprintf(stderr, "mailhook suppressions import: %s:1: no \"address\" column\n",
                        argv[0]);
                rc = 1;
                break;
            }
            continue;
        }
        const char *tenant = col_tenant >= 0 && (size_t)col_tenant < n ? f[col_tenant] : o->tenant;
        const char *address = (size_t)col_address < n ? f[col_address] : "";
        const char *reason = col_reason >= 0 && (size_t)col_reason < n && *f[col_reason]
                                 ? f[col_reason]
                                 : o->reason ? o->reason : "manual";
        char addr[SUPP_ADDRESS_MAX + 1];
        if (!tenant || !*tenant || strlen(tenant) > MH_TENANT_MAX) {
            fprintf(stderr, "mailhook suppressions import: %s:%ld: %s\n", argv[0], lineno,
                    tenant && *tenant ? "tenant longer than 1024 bytes"
                                      : "no tenant (add a tenant column or --tenant)");
            rc = 1;
            break;
        }
        if (!strcmp(reason, "soft_bounce")) { /* temporary: the rule's own, not imported */
            skipped++;
            continue;
        }
        if (supp_address_normalize(address, addr, sizeof(addr)) < 0 || !supp_reason_valid(reason)) {
            fprintf(stderr, "mailhook suppressions import: %s:%ld: %s\n", argv[0], lineno,
                    supp_reason_valid(reason) ? "not an email address" : "unknown reason");
            rc = 1;
            break;
        }
        json_array_append_new(ops, json_pack("{ssssssss}", "tenant", tenant, "address", addr, "op",
                                             "suppress", "reason", reason));
        if (json_array_size(ops) == IMPORT_BATCH) {
            if ((rc = write_ops(st, ops, "import", "import", o, 1))) break;
            imported += IMPORT_BATCH;
            json_array_clear(ops);
        }
    }
    if (rc == 0 && json_array_size(ops)) {
        rc = write_ops(st, ops, "import", "import", o, 1);
        if (rc == 0) imported += (long)json_array_size(ops);
    }
    json_decref(ops);
    free(line);
    if (in != stdin) fclose(in);
    printf("imported %ld addresses%s", imported, skipped ? "" : "\n");
    if (skipped) printf(", skipped %ld temporary (soft_bounce) rows\n", skipped);
    return rc;
}

static int do_export(struct supp_store *st, const struct opts *o, int argc, char **argv)
{
    static const char *const cols[] = {"tenant", "address", "reason", "since", "expires_at",
                                       "source_event_id", "source", NULL};
    char err[1024];
    if (argc > 1) return 2;
    FILE *out = argc == 1 && strcmp(argv[0], "-") ? fopen(argv[0], "w") : stdout;
    if (!out) {
        fprintf(stderr, "mailhook suppressions export: cannot create %s: %s\n", argv[0],
                strerror(errno));
        return 1;
    }
    for (const char *const *c = cols; *c; c++) csv_field(out, *c, !c[1]);
    char *after = NULL, *after_tenant = NULL;
    long total = 0;
    int rc = 0;
    for (;;) {
        json_t *items = NULL;
        if (supp_list(st, o->tenant, o->reason, after, after_tenant, 1000, &items, err,
                      sizeof(err)) < 0) {
            fprintf(stderr, "mailhook suppressions export: %s\n", err);
            rc = 1;
            break;
        }
        size_t i;
        json_t *row;
        json_array_foreach(items, i, row) {
            for (const char *const *c = cols; *c; c++)
                csv_field(out, json_string_value(json_object_get(row, *c)), !c[1]);
        }
        total += (long)json_array_size(items);
        size_t n = json_array_size(items);
        if (n > 0) {
            json_t *last = json_array_get(items, n - 1);
            free(after);
            free(after_tenant);
            after = mh_strdup(json_string_value(json_object_get(last, "address")));
            after_tenant = mh_strdup(json_string_value(json_object_get(last, "tenant")));
        }
        json_decref(items);
        if (n < 1000) break;
    }
    free(after);
    free(after_tenant);
    if (out != stdout && fclose(out) != 0) rc = 1;
    if (out != stdout) fprintf(stderr, "exported %ld suppressions to %s\n", total, argv[0]);
    return rc;
}

int cmd_suppressions(struct mh_config *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tenant", required_argument, NULL, 't'},
        {"reason", required_argument, NULL, 'r'},
        {"limit", required_argument, NULL, 'n'},
        {"cursor", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {.limit = 100};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    int c;
    optind = 1;
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "t:r:n:C:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 't': o.tenant = optarg; break;
        case 'r': o.reason = optarg; break;
        case 'C': o.cursor = optarg; break;
        case 'j': o.json = 1; break;
        case 'n': {
            char *end;
            o.limit = strtol(optarg, &end, 10);
            if (*end || o.limit < 1 || o.limit > 100000) {
                fprintf(stderr, "mailhook suppressions: --limit: 1..100000\n");
                return 2;
            }
            break;
        }
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!cfg) {
        fputs(usage, stderr);
        return 2;
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    /* export without --tenant means every tenant; the others act on one. */
    if (!o.tenant && strcmp(sub, "export")) o.tenant = cli_default_tenant(cfg);
    static const char *const subs[] = {"check", "list", "add", "remove", "import", "export", NULL};
    int known = 0;
    for (const char *const *s = subs; *s; s++)
        if (!strcmp(*s, sub)) known = 1;
    if (!known) {
        fprintf(stderr, "mailhook suppressions: unknown subcommand \"%s\"\n", sub);
        fputs(usage, stderr);
        return 2;
    }
    int writes = !strcmp(sub, "add") || !strcmp(sub, "remove") || !strcmp(sub, "import");
    struct supp_store st = {0};
    char err[1024];
    if (supp_store_open(&st, cfg, "mailhook-cli", writes, err, sizeof(err)) < 0) {
        fprintf(stderr, "mailhook suppressions: %s\n", err);
        supp_store_close(&st);
        return 1;
    }
    int rc;
    if (!strcmp(sub, "check")) rc = do_check(&st, &o, nargs, args);
    else if (!strcmp(sub, "list")) rc = do_list(&st, &o, nargs);
    else if (!strcmp(sub, "add")) rc = do_add_remove(&st, &o, 0, nargs, args);
    else if (!strcmp(sub, "remove")) rc = do_add_remove(&st, &o, 1, nargs, args);
    else if (!strcmp(sub, "import")) rc = do_import(&st, &o, nargs, args);
    else rc = do_export(&st, &o, nargs, args);
    if (rc == 2) fputs(usage, stderr);
    supp_store_close(&st);
    return rc;
}
