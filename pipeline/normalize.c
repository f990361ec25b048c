/*
 * normalize.c — raw records to canonical events, through each record's provider.
 *
 * The provider comes from the record's mh-provider header, the source and tenant from
 * mh-source and mh-tenant: the record is self-describing, so old records re-parse the
 * same way after a config change. A record that cannot be parsed — no or unknown
 * provider, invalid JSON, a shape the provider does not know — gets a dead-letter
 * reason instead of events; it never stops the batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/headers.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"
#include "pipeline.h"

static void parse_record(struct worker *w, struct batch_rec *r)
{
    struct mh_headers h = {0};
    char err[512] = "";
    const rd_kafka_message_t *rkm = r->rkm;

    mh_kafka_headers_read(rkm, &h);
    const char *provider_name = mh_headers_get(&h, MH_HDR_PROVIDER);
    const char *received = mh_headers_get(&h, MH_HDR_RECEIVED_AT);
    int64_t received_ms = 0;
    const struct mh_provider *p = provider_name ? mh_provider_find(provider_name) : NULL;

    if (!provider_name) {
        r->dlq_reason = mh_strdup("record has no mh-provider header");
        goto done;
    }
    if (!p) {
        snprintf(err, sizeof(err), "unknown provider \"%.100s\"", provider_name);
        r->dlq_reason = mh_strdup(err);
        goto done;
    }
    if (received) mh_time_parse(received, &received_ms);

    struct mh_raw raw = {
        .source = mh_headers_get(&h, MH_HDR_SOURCE),
        .provider = p->name,
        .tenant = mh_headers_get(&h, MH_HDR_TENANT),
        .headers = &h,
        .body = rkm->payload ? rkm->payload : (const void *)"",
        .body_len = rkm->len,
        .received_ms = received_ms,
        .topic = rd_kafka_topic_name(rkm->rkt),
        .partition = rkm->partition,
        .offset = rkm->offset,
    };
    json_t *events = json_array();
    if (p->parse(&raw, events, err, sizeof(err)) < 0) {
        json_decref(events);
        r->dlq_reason = mh_strdup(err[0] ? err : "provider could not parse the record");
        goto done;
    }
    r->events = events;
done:
    if (r->dlq_reason)
        mh_log_at(MH_LOG_WARN, mh_headers_get(&h, MH_HDR_REQUEST_ID), mh_headers_get(&h, MH_HDR_SOURCE),
                  "dead letter %s[%d]@%lld: %s", rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
                  (long long)rkm->offset, r->dlq_reason);
    mh_headers_clear(&h);
    (void)w;
}

void normalize_batch(struct worker *w, struct batch *b)
{
    b->n_events = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct batch_rec *r = &b->recs[i];
        if (!r->events && !r->dlq_reason) parse_record(w, r);
        if (r->events) b->n_events += json_array_size(r->events);
    }
}

void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        rd_kafka_message_destroy(b->recs[i].rkm);
        json_decref(b->recs[i].events);
        free(b->recs[i].emit);
        free(b->recs[i].fresh);
        free(b->recs[i].dlq_reason);
    }
    free(b->recs);
    json_decref(b->suppression_out);
    memset(b, 0, sizeof(*b));
}
