/*
 * replay_body.h — POST /v1/dlq/replays's body: which raw records to replay and where
 * to. Pure (mailhook_api_params), so unit tests and the fuzzer link it alone.
 */
#ifndef MH_API_REPLAY_BODY_H
#define MH_API_REPLAY_BODY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define REPLAY_MAX_RECORDS 10000
#define REPLAY_TOPIC_MAX 249 /* Kafka's limit on a topic name */

/*
 * {"records": [{"partition": P, "offset": O}, ...], "target_topic": "..."} as the
 * `mailhook replay` range that covers those raw records: per partition from the
 * smallest offset to one past the largest, *from "P:O,..." and *until "P:O,..." (new
 * strings), *total the records in that range and *topic the target (borrowed from
 * body). 0, or -1 with err (the client's mistake, for a 400).
 */
int replay_body_parse(json_t *body, char **from, char **until, int64_t *total,
                      const char **topic, char *err, size_t errlen);

#endif
