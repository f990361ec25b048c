/*
 * events.c — `mailhook events`: the event log (each distinct event once, as claimed),
 * filtered like GET /v1/events, newest first; or one message's timeline, oldest first.
 * A table on a terminal, JSON with --json.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "cli.h"
#include "mailhook/log.h"
#include "table.h"

static const char usage[] =
    "usage: mailhook [--config FILE] events [--tenant T] [--type TYPE] [--recipient ADDR]\n"
    "                [--message-id ID] [--source NAME] [--provider NAME]\n"
    "                [--since TIME] [--until TIME] [--limit N]\n"
    "                [--cursor C] [--timeline] [--json]\n"
    "\n"
    "Prints the event log, newest first (times are RFC 3339; --since is inclusive,\n"
    "--until exclusive). --timeline with --message-id prints that message's events oldest\n"
    "first. When more events match, the cursor for the next page goes to stderr.\n";

static const char *const columns[] = {"occurred_at", "type", "recipient", "message_id",
                                      "provider", "event_id", NULL};

int cmd_events(struct mh_config *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tenant", required_argument, NULL, 't'},
        {"type", required_argument, NULL, 'T'},
        {"recipient", required_argument, NULL, 'r'},
        {"message-id", required_argument, NULL, 'm'},
        {"source", required_argument, NULL, 'S'},
        {"provider", required_argument, NULL, 'P'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},
        {"limit", required_argument, NULL, 'n'},
        {"cursor", required_argument, NULL, 'C'},
        {"timeline", no_argument, NULL, 'L'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct eventlog_query q = {.limit = 100};
    int json = 0, c;
    char rcpt[SUPP_ADDRESS_MAX + 1];
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:T:r:m:S:P:s:u:n:C:Ljh", longopts, NULL)) != -1) {
        switch (c) {
        case 't': q.tenant = optarg; break;
        case 'T': q.type = optarg; break;
        case 'r': q.recipient = optarg; break;
        case 'm': q.message_id = optarg; break;
        case 'S': q.source = optarg; break;
        case 'P': q.provider = optarg; break;
        case 's': q.since = optarg; break;
        case 'u': q.until = optarg; break;
        case 'C': q.cursor = optarg; break;
        case 'L': q.oldest_first = 1; break;
        case 'j': json = 1; break;
        case 'n': {
            char *end;
            q.limit = strtol(optarg, &end, 10);
            if (*end || q.limit < 1 || q.limit > 100000) {
                fprintf(stderr, "mailhook events: --limit: 1..100000\n");
                return 2;
            }
            break;
        }
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!cfg || optind != argc || (q.oldest_first && !q.message_id)) {
        fputs(usage, stderr);
        return 2;
    }
    if (q.recipient) {
        if (supp_address_normalize(q.recipient, rcpt, sizeof(rcpt)) < 0) {
            fprintf(stderr, "mailhook events: --recipient: not an email address\n");
            return 2;
        }
        q.recipient = rcpt;
    }
    struct supp_store st = {0};
    char err[1024], *next = NULL;
    json_t *items = NULL;
    int rc = 1;
    if (supp_store_open(&st, cfg, "mailhook-cli", 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "mailhook events: %s\n", err);
        goto out;
    }
    int qrc = eventlog_page(st.pg, &q, &items, &next, err, sizeof(err));
    if (qrc < 0) {
        fprintf(stderr, "mailhook events: %s\n", err);
        rc = qrc == -2 ? 2 : 1;
        goto out;
    }
    if (json) {
        json_t *v = json_pack("{sOss?}", "items", items, "next_cursor", next);
        char *txt = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) puts(txt);
        free(txt);
        json_decref(v);
    } else {
        cli_print_table(stdout, items, columns);
        if (next) fprintf(stderr, "more: --cursor '%s'\n", next);
    }
    rc = 0;
out:
    free(next);
    json_decref(items);
    supp_store_close(&st);
    return rc;
}
