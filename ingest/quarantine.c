/*
 * quarantine.c — keeps requests refused for a signature mismatch on the quarantine
 * topic, for sources with quarantine = true (docs/quarantine.md).
 *
 * A secret rotated on one side only turns every webhook into a 401, and providers do not
 * retry a 401 for long (Amazon SNS not at all). The body and the request headers are
 * what a provider's verify reads, so keeping them lets `mailhook quarantine reverify`
 * check them again once the config has the right secret. Kept records are bounded: a
 * size cap per record and a token bucket per source (each process has its own), so a
 * flood of forged requests costs at most rate x record size of disk.
 *
 * Fire-and-forget: the record is queued on the loop's producer (a copy: the request may
 * be gone before the delivery report) and its report is only counted (publish.c).
 */
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"

static void add(rd_kafka_headers_t *hdrs, const char *name, const char *value)
{
    if (value) rd_kafka_header_add(hdrs, name, -1, value, -1);
}

void quarantine_request(struct ingest *in, const struct mh_config *cfg,
                        const struct mh_source *src, struct source_stats *sst, const char *rid,
                        const char *received, const char *uri, const struct mh_headers *headers,
                        const void *body, size_t len, const char *reason)
{
    if (!src->quarantine || !sst) return;
    if (len > (size_t)cfg->ingest.quarantine_max_bytes) {
        in->proc->stats.quarantine_dropped_size++;
        mh_log_at(MH_LOG_DEBUG, rid, src->name, "not quarantined: body over %ld bytes",
                  cfg->ingest.quarantine_max_bytes);
        return;
    }
    char *req_headers = mh_quarantine_headers_encode(headers);
    /* The headers can be as large as [ingest] max_header_bytes, escaped: the record
     * must still fit what the topic and the producer accept. */
    if ((long)(len + strlen(req_headers) + (uri ? strlen(uri) : 0)) >
        mh_config_max_record_bytes(cfg) - 4096) {
        in->proc->stats.quarantine_dropped_size++;
        free(req_headers);
        return;
    }
    if (!mh_rate_limit_take(&sst->quarantine_rl, cfg->ingest.quarantine_rate,
                            cfg->ingest.quarantine_burst, mh_mono_us())) {
        in->proc->stats.quarantine_dropped_rate++;
        mh_log_at(MH_LOG_DEBUG, rid, src->name, "not quarantined: over quarantine_rate");
        free(req_headers);
        return;
    }
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    add(hdrs, MH_HDR_SOURCE, src->name);
    add(hdrs, MH_HDR_PROVIDER, src->provider->name);
    add(hdrs, MH_HDR_TENANT, src->tenant);
    add(hdrs, MH_HDR_RECEIVED_AT, received);
    add(hdrs, MH_HDR_REQUEST_ID, rid);
    add(hdrs, MH_HDR_REQUEST_URI, uri);
    add(hdrs, MH_HDR_REJECT_REASON, reason);
    add(hdrs, MH_HDR_REQUEST_HEADERS, req_headers);
    free(req_headers);
    rd_kafka_resp_err_t kerr =
        publish_record(in, cfg->ingest.quarantine_topic, rid, body, len, hdrs, NULL);
    if (kerr) {
        rd_kafka_headers_destroy(hdrs);
        in->proc->stats.quarantine_failed++;
        mh_log_at(MH_LOG_WARN, rid, src->name, "cannot queue for the quarantine topic: %s",
                  rd_kafka_err2str(kerr));
        return;
    }
    mh_log_at(MH_LOG_INFO, rid, src->name, "quarantined on %s", cfg->ingest.quarantine_topic);
}
