/*
 * dlq.h — reading the dead-letter topic ([worker] dlq_topic), shared by `mailhook dlq`
 * (cli/dlq.c) and mailhook-api's GET /v1/dlq (api/dlq.c).
 *
 * A reader is a consumer that never joins a group and commits nothing (read_committed):
 * it assigns partitions at chosen offsets and reads windows [start, end) of them.
 * Each dead letter becomes a flat JSON row (dlq_row) from its record headers
 * (record_headers.h): source, provider, tenant, reason, stage, request id, received_at,
 * the raw record's topic/partition/offset and the dead letter's own coordinates.
 */
#ifndef MH_STORE_DLQ_H
#define MH_STORE_DLQ_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "mailhook/config.h"

/* One partition's window: [start, end) is read; done is set once it has been. */
struct dlq_window {
    int32_t partition;
    int64_t start, end;
    int done;
};

/* Keeps a row (1) or leaves it out (0). */
typedef int (*dlq_keep_fn)(const json_t *row, void *ctx);

/* A consumer for reading the dead-letter topic; NULL with err. */
rd_kafka_t *dlq_reader_new(const struct mh_config *cfg, char *err, size_t errlen);

/*
 * A dead letter as a row: "time" and "ts_ms" (when it was dead-lettered), "source",
 * "provider", "tenant", "reason", "stage", "request_id", "received_at", "raw_topic",
 * "raw" ("P:O"), "raw_partition", "raw_offset", "dlq_partition", "dlq_offset",
 * "body_bytes", and with body "body" (UTF-8) or "body_base64". Absent headers are
 * absent keys.
 */
json_t *dlq_row(const rd_kafka_message_t *m, int body);

/*
 * Reads every window of topic (those with start < end) and appends the rows keep
 * accepts (NULL: all) to rows. Gives up with err when a partition makes no progress
 * for idle_ms, or (deadline_ms > 0, mh_mono_ms clock) when the deadline passes: then
 * returns 1 with the windows read so far marked done. 0 when all were read, -1 on error.
 */
int dlq_read_windows(rd_kafka_t *rk, const char *topic, struct dlq_window *w, size_t n, int body,
                     dlq_keep_fn keep, void *ctx, json_t *rows, int idle_ms, int64_t deadline_ms,
                     char *err, size_t errlen);

/*
 * The partitions of topic with their low and high watermarks, as windows
 * [low, high); *n their count. NULL with err.
 */
struct dlq_window *dlq_partitions(rd_kafka_t *rk, const char *topic, size_t *n, int timeout_ms,
                                  char *err, size_t errlen);

/* Sorts rows newest first (ts_ms, then partition and offset, descending). */
void dlq_sort_newest_first(json_t *rows);

/*
 * The `mailhook replay` range of the raw records behind rows: per raw partition, from
 * the smallest offset to one past the largest, "--from-offsets P:O,... --until P:O,...".
 * NULL when no row names its raw record.
 */
char *dlq_replay_range(json_t *rows);

#endif
