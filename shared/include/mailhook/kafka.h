/*
 * kafka.h — librdkafka helpers shared by ingest, worker and the CLI.
 */
#ifndef MH_KAFKA_H
#define MH_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "mailhook/headers.h"

struct mh_config;

/*
 * A new rd_kafka_conf_t holding every [kafka] key of cfg (passed straight through),
 * then the (key, value) pairs of overrides (NULL-terminated list of pairs) which the
 * caller's correctness depends on. NULL with err on an invalid key or value.
 */
rd_kafka_conf_t *mh_kafka_conf(const struct mh_config *cfg, const char *const *overrides,
                               char *err, size_t errlen);
/*
 * The same, with defaults (the same kind of list, may be NULL) set first: a client's own
 * choice for a setting that [kafka] may replace. A [kafka] key replaces a default under
 * any of librdkafka's names for it (linger.ms = queue.buffering.max.ms); overrides
 * replace both.
 */
rd_kafka_conf_t *mh_kafka_conf_defaults(const struct mh_config *cfg, const char *const *defaults,
                                        const char *const *overrides, char *err, size_t errlen);

/*
 * A consumer that reads topics by assign() and explicit offsets, never joining group
 * (needed by librdkafka; a reader that commits its progress, like quarantine reverify,
 * commits under it): read_committed, end-of-partition events on, no automatic commits or
 * offset stores, records as large as mailhook writes. NULL with err.
 */
rd_kafka_t *mh_kafka_reader_new(const struct mh_config *cfg, const char *group, char *err,
                                size_t errlen);

/*
 * A message's Kafka headers in h (values as text), borrowed from the message: librdkafka
 * keeps each value null-terminated (rdkafka.h), so h points into rkm and is valid while
 * rkm is, with no copy of its own. h is cleared with mh_headers_clear as any other.
 */
void mh_kafka_headers_borrow(const rd_kafka_message_t *rkm, struct mh_headers *h);

/* A configuration's value of one setting in buf, for a log line: "?" when librdkafka has
 * none (or it does not fit). Returns buf. */
const char *mh_kafka_setting(const rd_kafka_conf_t *conf, const char *key, char *buf,
                             size_t buflen);

/* One topic's metadata: the call's error or, when the call worked, the topic's own
 * (__UNKNOWN_TOPIC when the answer does not hold it). *md is set only on NO_ERROR, for
 * rd_kafka_metadata_destroy. */
rd_kafka_resp_err_t mh_kafka_topic_metadata(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                            const struct rd_kafka_metadata **md);

/* Value of one header of a message as a NUL-terminated copy in buf; NULL when absent. */
const char *mh_kafka_header(const rd_kafka_message_t *rkm, const char *name, char *buf,
                            size_t buflen);
/* The same for display: a value longer than buf is cut to fit instead of refused. */
const char *mh_kafka_header_cut(const rd_kafka_message_t *rkm, const char *name, char *buf,
                                size_t buflen);

#endif
