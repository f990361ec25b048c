/*
 * prefetch.h — how much of the raw topic the worker's consumer reads ahead.
 *
 * librdkafka's consumer fetches ahead of the application until its queue holds
 * queued.min.messages records or queued.max.messages.kbytes of them. Its defaults,
 * 100,000 records and 64 MiB, are many seconds of a worker's work, and on a deep backlog
 * that read-ahead, not the batches, is most of a worker's memory (docs/kafka.md, "The
 * worker's read-ahead"). librdkafka 2.0 fetches for a queue over either bound again
 * only after a second, so a bound under a second of work starves the worker: the
 * defaults here hold about a second at full speed, 20,000 small records (or two
 * batches, when batches are larger) and 32 MiB of larger ones (ten thousand 3 KB
 * records). A [kafka] setting of either replaces the default.
 */
#ifndef MH_WORKER_PREFETCH_H
#define MH_WORKER_PREFETCH_H

/* Read-ahead in records: this many, or two batches when batches are larger. */
#define MH_PREFETCH_MIN_RECORDS 20000
/* Read-ahead in KiB of record payload. */
#define MH_PREFETCH_MAX_KBYTES 32768

struct prefetch_defaults {
    char records[24], kbytes[24];
    /* queued.min.messages, records, queued.max.messages.kbytes, kbytes, NULL: the
     * defaults list mh_kafka_conf_defaults takes. */
    const char *pairs[5];
};

/* Fills d for a worker whose batches hold up to batch_size records. */
void prefetch_defaults(struct prefetch_defaults *d, long batch_size);

#endif
