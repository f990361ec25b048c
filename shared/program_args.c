/*
 * program_args.c — the command line shared by mailhook-ingest and mailhook-api.
 */
#include "mailhook/program_args.h"

#include <getopt.h>
#include <stdio.h>

int mh_program_args(int argc, char **argv, const char *program, const char *usage,
                    const char **config_path)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("%s %s\n", program, MH_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    *config_path = path;
    return -1;
}
