/*
 * program_args.h — the command line of a server program that takes only its config
 * file (mailhook-ingest, mailhook-api): --config FILE, --help, --version.
 */
#ifndef MH_PROGRAM_ARGS_H
#define MH_PROGRAM_ARGS_H

/*
 * Parses argv. Returns -1 with *config_path set when the program should run; otherwise
 * the exit status after printing usage (--help: 0 on stdout; a mistake: 2 on stderr) or
 * "<program> <version>" (--version: 0).
 */
int mh_program_args(int argc, char **argv, const char *program, const char *usage,
                    const char **config_path);

#endif
