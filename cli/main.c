/*
 * main.c — `mailhook`, the operator's command: migrations, topics, signing test
 * requests. Subcommands are rows of one table.
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
    fprintf(out, "usage: mailhook [--config FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(out, "  %-13s %s\n", c->name, c->summary);
    fprintf(out, "\n  --config FILE defaults to $MAILHOOK_CONFIG, then ./mailhook.ini\n"
                 "  mailhook COMMAND --help describes a command\n"
                 "  --version prints the version\n");
}

int main(int argc, char **argv)
{
    const char *path = getenv("MAILHOOK_CONFIG");
    int i = 1;
    mh_log_init("mailhook");
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) {
            if (++i >= argc) {
                usage(stderr);
                return 2;
            }
            path = argv[i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
            printf("mailhook %s\n", MH_VERSION);
            return 0;
        } else {
            fprintf(stderr, "mailhook: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
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
    if (!path) path = "mailhook.ini";
    mh_cli_config_path = path;
    /* `mailhook sign --help` etc. work without a config file. */
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    for (int k = 1; k < sub_argc; k++)
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
