/*
 * main.c — `mailhook`, the operator's command: migrations, topics, signing test
 * requests. Subcommands are rows of one table.
 *
 * Global options (--config, --json, --help, --version) may stand before or after the
 * command: argv is read once and they are pulled out wherever they are. getopt_long
 * cannot do this pass: it does not know the subcommands' options, so it would take the
 * value of an unknown option (`--source ses`) for an operand and move it. The pass
 * below recognises only the exact global spellings and keeps everything else in order
 * for the subcommand's own getopt_long; after `--` nothing is taken. --json is each
 * command's own option: written before the command, it is handed on to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/log.h"

const char *mh_cli_config_path = "mailhook.ini";

struct command {
    const char *name;
    int (*run)(struct mh_config *cfg, int argc, char **argv);
    const char *summary;
    int needs_config; /* 0: run without loading a config file (cfg is NULL) */
};

static const struct command commands[] = {
    {"migrate", cmd_migrate, "apply migrations/NNNN_*.sql in order (safe to run concurrently)", 1},
    {"topics", cmd_topics, "create the Kafka topics mailhook uses (idempotent)", 1},
    {"sign", cmd_sign, "print a curl command that posts a file with a valid signature", 1},
    {"suppressions", cmd_suppressions, "check, list, add, remove, import, export suppressions", 1},
    {"events", cmd_events, "the event log: filter events, or one message's timeline", 1},
    {"maintain", cmd_maintain, "one maintenance pass: retention, expiry, pending publishes", 1},
    {"replay", cmd_replay, "re-run raw webhooks from Kafka offsets or times into a topic", 1},
    {"dlq", cmd_dlq, "list the dead letters: source, raw record, reason; their replay range", 1},
    {"quarantine", cmd_quarantine, "requests refused for a signature mismatch: list, reverify", 1},
    {"providers", cmd_providers, "list the providers and their source options (no config)", 0},
    /* Loads the file itself: a missing or broken file is what it reports. */
    {"config", cmd_config, "config check: report every problem of a config file", 0},
    {NULL, NULL, NULL, 0},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mailhook [GLOBAL OPTIONS] COMMAND [ARGS] [GLOBAL OPTIONS]\n\ncommands:\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(out, "  %-13s %s\n", c->name, c->summary);
    fprintf(out, "\nglobal options, before or after the command:\n"
                 "  --config FILE  defaults to $MAILHOOK_CONFIG, then ./mailhook.ini\n"
                 "  --json         JSON output, for the commands that print records\n"
                 "  --help         this text; mailhook COMMAND --help describes a command\n"
                 "  --version      prints the version\n"
                 "`suppressions` may leave out --tenant when all the config's sources share\n"
                 "one tenant: it defaults to that one.\n");
}

struct global_opts {
    const char *config;
    int help, version;
};

/*
 * Takes the global options out of argv (argc updated, order of the rest kept) and
 * returns the index of the command, or -1 when there is none. -2 on bad usage.
 */
static int pull_globals(int *argc, char **argv, struct global_opts *g)
{
    static char json_arg[] = "--json";
    int out = 1, cmd = -1, dashdash = -1, json_before = 0;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (dashdash >= 0) {
            argv[out++] = argv[i];
        } else if (!strcmp(a, "--")) {
            dashdash = out;
            argv[out++] = argv[i];
        } else if (!strcmp(a, "--config") || (cmd < 0 && !strcmp(a, "-c"))) {
            if (i + 1 >= *argc) return -2;
            g->config = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            g->config = a + 9;
        } else if (cmd < 0 && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            g->help = 1;
        } else if (cmd < 0 && (!strcmp(a, "--version") || !strcmp(a, "-V"))) {
            g->version = 1;
        } else if (cmd < 0 && !strcmp(a, "--json")) {
            json_before = 1; /* handed to the command, after its operands */
        } else if (cmd < 0 && a[0] == '-') {
            fprintf(stderr, "mailhook: unknown option %s\n", a);
            return -2;
        } else {
            if (cmd < 0) cmd = out;
            argv[out++] = argv[i];
        }
    }
    /* There is room: the --json taken out above is put back once. Subcommands read their
     * own first word (`suppressions list`), so it goes last, before a `--`. */
    if (json_before && cmd > 0) {
        int at = dashdash >= 0 ? dashdash : out;
        memmove(argv + at + 1, argv + at, (size_t)(out - at) * sizeof(*argv));
        argv[at] = json_arg;
        out++;
    }
    *argc = out;
    argv[out] = NULL;
    return cmd;
}

int main(int argc, char **argv)
{
    struct global_opts g = {0};
    mh_log_init("mailhook");
    int i = pull_globals(&argc, argv, &g);
    if (i == -2) {
        usage(stderr);
        return 2;
    }
    if (g.version) {
        printf("mailhook %s\n", MH_VERSION);
        return 0;
    }
    if (g.help && i < 0) {
        usage(stdout);
        return 0;
    }
    if (i < 0) {
        usage(stderr);
        return 2;
    }
    const struct command *cmd = NULL;
    for (const struct command *c = commands; c->name; c++)
        if (!strcmp(c->name, argv[i])) cmd = c;
    if (!cmd) {
        fprintf(stderr, "mailhook: unknown command \"%s\"\n", argv[i]);
        usage(stderr);
        return 2;
    }
    const char *path = g.config ? g.config : getenv("MAILHOOK_CONFIG");
    if (!path) path = "mailhook.ini";
    mh_cli_config_path = path;
    /* `mailhook sign --help`, `mailhook --help sign` etc. work without a config file. */
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    static char help_arg[] = "--help";
    char *help_argv[] = {sub_argv[0], help_arg, NULL};
    if (g.help) return cmd->run(NULL, 2, help_argv);
    for (int k = 1; k < sub_argc && strcmp(sub_argv[k], "--"); k++)
        if (!strcmp(sub_argv[k], "--help") || !strcmp(sub_argv[k], "-h"))
            return cmd->run(NULL, sub_argc, sub_argv);
    if (!cmd->needs_config) return cmd->run(NULL, sub_argc, sub_argv);

    char err[1024];
    struct mh_config *cfg = mh_config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "mailhook: %s\n", err);
        return 1;
    }
    int rc = cmd->run(cfg, sub_argc, sub_argv);
    mh_config_free(cfg);
    return rc;
}
