/*
 * prefetch.c — the consumer's read-ahead defaults (prefetch.h).
 */
#include "prefetch.h"

#include <stdio.h>

void prefetch_defaults(struct prefetch_defaults *d, long batch_size)
{
    long records = batch_size > MH_PREFETCH_MIN_RECORDS / 2 ? 2 * batch_size
                                                            : MH_PREFETCH_MIN_RECORDS;
    /* librdkafka's own ceiling for queued.min.messages */
    if (records > 10000000) records = 10000000;
    snprintf(d->records, sizeof(d->records), "%ld", records);
    snprintf(d->kbytes, sizeof(d->kbytes), "%d", MH_PREFETCH_MAX_KBYTES);
    d->pairs[0] = "queued.min.messages";
    d->pairs[1] = d->records;
    d->pairs[2] = "queued.max.messages.kbytes";
    d->pairs[3] = d->kbytes;
    d->pairs[4] = NULL;
}
