/*
 * normalize.c — raw records to canonical events, through each record's provider.
 *
 * The provider comes from the record's mh-provider header, the source and tenant from
 * mh-source and mh-tenant: the record is self-describing, so old records re-parse the
 * same way after a config change. A record that cannot be parsed — no or unknown
 * provider, invalid JSON, a shape the provider does not know — gets a dead-letter
 * reason instead of events; it never stops the batch.
 *
 * Every event a provider makes then passes mh_event_make_storable (event_limits.c), so
 * the claim statement only ever sees values PostgreSQL can hold. An event that cannot be
 * stored at all (an over-long recipient, say) sends its whole record to the dead-letter
 * topic with the reason: the record keeps the raw body, and no part of it is emitted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/event_limits.h"
#include "mailhook/headers.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"
#include "pipeline.h"

/*
 * The largest event the events topic takes: the producers' record limit less room for
 * the record's key (a recipient or event id) and CloudEvents headers.
 */
static size_t event_max_bytes(const struct worker *w)
{
    return (size_t)mh_config_max_record_bytes(w->cfg) - 16 * 1024;
}

/*
 * The fields of an event the pipeline reads once its text is made: the claim's key
 * (tenant, provider, source, event_id), the event log's search columns (type,
 * recipient, message id, time, source), the suppression rules (type, recipient, the
 * bounce's class, the time), the events topic's key and headers, the counters. The rest
 * lives on in the text only, so a batch in flight holds small events.
 */
static const char *const kept_fields[] = {"tenant",     "source",      "provider",
                                          "type",       "event_id",    "recipient",
                                          "message_id", "occurred_at", "received_at",
                                          NULL};

static json_t *event_slim(json_t *ev)
{
    json_t *slim = json_object();
    for (const char *const *k = kept_fields; *k; k++) {
        json_t *v = json_object_get(ev, *k);
        if (v) json_object_set(slim, *k, v);
    }
    json_t *cls = json_object_get(json_object_get(ev, "bounce"), "class");
    if (cls) json_object_set_new(slim, "bounce", json_pack("{sO}", "class", cls));
    return slim;
}

/*
 * Where jansson writes an event's text before it is copied out at its exact size, kept
 * for a whole batch: json_dumps would grow a buffer of its own from a few bytes for each
 * event and then copy it again.
 */
struct text_buf {
    char *data;
    size_t cap;
};

static char *event_text(const json_t *ev, struct text_buf *tb, size_t *len)
{
    const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
    size_t n = json_dumpb(ev, tb->data, tb->cap, flags);
    if (n == 0) return NULL;
    if (n > tb->cap) {
        tb->data = mh_realloc(tb->data, n);
        tb->cap = n;
        if (json_dumpb(ev, tb->data, tb->cap, flags) != n) return NULL;
    }
    char *text = mh_malloc(n + 1);
    memcpy(text, tb->data, n);
    text[n] = '\0';
    *len = n;
    return text;
}

static void parse_record(struct worker *w, struct batch_rec *r, struct text_buf *tb)
{
    struct mh_headers h = {0};
    char err[512] = "";
    const rd_kafka_message_t *rkm = r->rkm;

    mh_kafka_headers_borrow(rkm, &h);
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
    rd_kafka_timestamp_type_t tstype;
    int64_t record_ms = rd_kafka_message_timestamp(rkm, &tstype);
    /* The size limit is checked here, on the text the claim and the events topic then
     * use: each event is serialized once. */
    struct mh_event_limits lim = {
        .received_fallback_ms = received_ms > 0 ? received_ms : record_ms,
    };
    size_t n = json_array_size(events), max_bytes = event_max_bytes(w);
    r->events = events;
    r->ev_text = mh_calloc(n ? n : 1, sizeof(*r->ev_text));
    r->ev_len = mh_calloc(n ? n : 1, sizeof(*r->ev_len));
    size_t j;
    json_t *ev;
    json_array_foreach(events, j, ev) {
        char why[256] = "";
        if (mh_event_make_storable(ev, &lim, why, sizeof(why)) >= 0) {
            r->ev_text[j] = event_text(ev, tb, &r->ev_len[j]);
            if (!r->ev_text[j]) mh_oom();
            if (r->ev_len[j] <= max_bytes) {
                json_array_set_new(events, j, event_slim(ev));
                continue;
            }
            snprintf(why, sizeof(why), "event of %zu bytes is over the %zu-byte limit",
                     r->ev_len[j], max_bytes);
        }
        snprintf(err, sizeof(err), "%s: event %zu cannot be stored: %s", p->name, j, why);
        batch_rec_drop_events(r);
        r->dlq_reason = mh_strdup(err);
        goto done;
    }
done:
    if (r->dlq_reason)
        mh_log_at(MH_LOG_WARN, mh_headers_get(&h, MH_HDR_REQUEST_ID), mh_headers_get(&h, MH_HDR_SOURCE),
                  "dead letter %s[%d]@%lld: %s", rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
                  (long long)rkm->offset, r->dlq_reason);
    mh_headers_clear(&h);
}

size_t normalize_batch(struct worker *w, struct batch *b, size_t max_events)
{
    struct text_buf tb = {.data = mh_malloc(4096), .cap = 4096};
    size_t i;
    b->n_events = 0;
    for (i = 0; i < b->n; i++) {
        if (max_events && i > 0 && b->n_events >= max_events) break;
        struct batch_rec *r = &b->recs[i];
        if (!r->events && !r->dlq_reason) parse_record(w, r, &tb);
        if (r->events) b->n_events += json_array_size(r->events);
    }
    free(tb.data);
    return i;
}

/* Moves n records to the end of into (their ownership with them). */
static void recs_append(struct batch *into, const struct batch_rec *recs, size_t n)
{
    if (into->n + n > into->cap) {
        into->cap = into->n + n;
        into->recs = mh_realloc(into->recs, into->cap * sizeof(*into->recs));
    }
    memcpy(into->recs + into->n, recs, n * sizeof(*recs));
    into->n += n;
}

void batch_split(struct batch *b, size_t k, struct batch *tail)
{
    if (k >= b->n) return;
    recs_append(tail, b->recs + k, b->n - k);
    b->n = k;
}

void batch_rec_drop_event(struct batch_rec *r, size_t j)
{
    size_t n = json_array_size(r->events);
    if (j >= n) return;
    json_array_remove(r->events, j);
    if (!r->ev_text) return;
    free(r->ev_text[j]);
    memmove(r->ev_text + j, r->ev_text + j + 1, (n - j - 1) * sizeof(*r->ev_text));
    memmove(r->ev_len + j, r->ev_len + j + 1, (n - j - 1) * sizeof(*r->ev_len));
}

void batch_rec_drop_events(struct batch_rec *r)
{
    if (r->ev_text)
        for (size_t j = 0; j < json_array_size(r->events); j++) free(r->ev_text[j]);
    free(r->ev_text);
    free(r->ev_len);
    json_decref(r->events);
    free(r->emit);
    free(r->fresh);
    r->ev_text = NULL;
    r->ev_len = NULL;
    r->events = NULL;
    r->emit = r->fresh = NULL;
}

void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        rd_kafka_message_destroy(b->recs[i].rkm);
        batch_rec_drop_events(&b->recs[i]);
        free(b->recs[i].dlq_reason);
    }
    free(b->recs);
    json_decref(b->suppression_out);
    memset(b, 0, sizeof(*b));
}

void batch_append(struct batch *into, struct batch *from)
{
    recs_append(into, from->recs, from->n);
    into->n_events += from->n_events;
    if (from->suppression_out) {
        if (!into->suppression_out) into->suppression_out = json_array();
        json_array_extend(into->suppression_out, from->suppression_out);
        json_decref(from->suppression_out);
    }
    free(from->recs);
    memset(from, 0, sizeof(*from));
}
