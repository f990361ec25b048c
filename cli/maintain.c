/*
 * maintain.c — `mailhook maintain`: one maintenance pass, as mailhook-api runs on its
 * timer (store/maintain.c): event-log partitions created ahead and dropped past the
 * retention window, expired temporary suppressions ended, pending suppression states
 * published. For a cron job, or a deployment without mailhook-api.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "cli.h"

static const char usage[] =
    "usage: mailhook [--config FILE] maintain [--retention-days N] [--ahead-days N]\n"
    "\n"
    "Runs one maintenance pass. The defaults are [api] retention_days and\n"
    "partitions_ahead_days.\n";

static int parse_days(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > 3650) return -1;
    *out = v;
    return 0;
}

int cmd_maintain(struct mh_config *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"retention-days", required_argument, NULL, 'r'},
        {"ahead-days", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long retention = cfg ? cfg->api.retention_days : 30, ahead = cfg ? cfg->api.partitions_ahead_days : 7;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:a:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (parse_days(optarg, &retention) < 0) {
                fprintf(stderr, "mailhook maintain: --retention-days: 1..3650\n");
                return 2;
            }
            break;
        case 'a':
            if (parse_days(optarg, &ahead) < 0) {
                fprintf(stderr, "mailhook maintain: --ahead-days: 1..3650\n");
                return 2;
            }
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!cfg || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    struct supp_store st = {0};
    struct maint_report r;
    char err[1024];
    int rc = 1;
    if (supp_store_open(&st, cfg, "mailhook-maintain", 1, err, sizeof(err)) < 0 ||
        maintain_run(&st, retention, ahead, &r, err, sizeof(err)) < 0) {
        fprintf(stderr, "mailhook maintain: %s\n", err);
        goto out;
    }
    printf("partitions: %ld created, %ld dropped%s\n", r.partitions_created, r.partitions_dropped,
           r.skipped_partitions ? " (skipped: another process is maintaining them)" : "");
    printf("rows deleted: %ld from the default partition, %ld lifted addresses\n",
           r.default_rows_deleted, r.lifted_rows_deleted);
    printf("claims forgotten with their weeks: %ld\n", r.claims_deleted);
    printf("suppression states published: %zu\n", r.states_published);
    rc = 0;
out:
    supp_store_close(&st);
    return rc;
}
