/*
 * cli.h — the `mailhook` command: one function per subcommand, dispatched from a table
 * in main.c. Each takes the loaded config and the arguments after its name.
 */
#ifndef MH_CLI_H
#define MH_CLI_H

#include <jansson.h>
#include <stdio.h>

#include "mailhook/config.h"

int cmd_migrate(struct mh_config *cfg, int argc, char **argv);
int cmd_topics(struct mh_config *cfg, int argc, char **argv);
int cmd_sign(struct mh_config *cfg, int argc, char **argv);
int cmd_suppressions(struct mh_config *cfg, int argc, char **argv);
int cmd_events(struct mh_config *cfg, int argc, char **argv);
int cmd_maintain(struct mh_config *cfg, int argc, char **argv);
int cmd_replay(struct mh_config *cfg, int argc, char **argv);
int cmd_dlq(struct mh_config *cfg, int argc, char **argv);
int cmd_quarantine(struct mh_config *cfg, int argc, char **argv);
/*
 * The tenant --tenant defaults to: the one tenant every source and [suppression.T]
 * section of cfg names; NULL when there are several (or none).
 */
const char *cli_default_tenant(const struct mh_config *cfg);

/* Need no config: called with cfg NULL. */
int cmd_providers(struct mh_config *cfg, int argc, char **argv);
/* `config check` loads the file itself: mh_cli_config_path unless it names one. */
int cmd_config(struct mh_config *cfg, int argc, char **argv);

/* The config file of `mailhook [--config FILE]`: FILE, $MAILHOOK_CONFIG or mailhook.ini. */
extern const char *mh_cli_config_path;

#endif
