/*
 * quarantine.h — what the files of `mailhook quarantine` share.
 *
 *   quarantine.c           the subcommand, `list`, and reading the topic
 *   quarantine_reverify.c  `reverify`: the same verify as ingest with today's secrets
 *
 * Records are as ingest writes them (mailhook/quarantine.h).
 */
#ifndef MH_CLI_QUARANTINE_H
#define MH_CLI_QUARANTINE_H

#include <librdkafka/rdkafka.h>

#include "mailhook/config.h"
#include "replay.h"

/* Called for each record read; 0 goes on, -1 stops the read (with err set). */
typedef int (*quarantine_record_fn)(const rd_kafka_message_t *m, void *arg, char *err,
                                    size_t errlen);

/* Readers of the quarantine topic come from mh_kafka_reader_new (mailhook/kafka.h). */
/* Reads every partition's [start, end) of s (s->raw_topic names the topic) and calls fn
 * for each record in offset order per partition. 0, or -1 with err. */
int quarantine_read(rd_kafka_t *rk, struct replay_spec *s, quarantine_record_fn fn, void *arg,
                    char *err, size_t errlen);

extern const char quarantine_usage[];

int quarantine_reverify(struct mh_config *cfg, int argc, char **argv);

#endif
