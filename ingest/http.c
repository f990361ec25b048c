/*
 * http.c — mailhook-ingest's HTTP front: routing, limits, verification and replies.
 *
 *   POST /v1/webhooks/<source>  verify with the source's provider, publish, reply
 *   GET  /healthz               the process is up
 *   GET  /readyz                the producer reaches the raw topic and we are not stopping
 *   GET  /metrics               Prometheus text counters
 *
 * Replies follow design.md's ingest contract. A request owns one `struct webhook_req`
 * from the moment it is published until its delivery report answers it; that context
 * holds a reference to the config it was verified under, so a SIGHUP reload never pulls
 * a source out from under an in-flight request.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <errno.h>
#include <event2/keyvalq_struct.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingest.h"
#include "mailhook/crypto.h"
#include "mailhook/headers.h"
#include "mailhook/histogram.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/record_headers.h"
#include "mailhook/timeutil.h"

#define WEBHOOK_PREFIX "/v1/webhooks/"

struct webhook_req {
    struct ingest *in; /* first: publish_record's opaque names the loop so */
    struct evhttp_request *req;
    struct ingest_cfg *ic;
    struct source_stats *sst; /* the source's counters (in ic) */
    struct event *deadline; /* answers 503 if the delivery report is late; in this block */
    int answered;
    int64_t start_us; /* when the handler got the whole request */
    char request_id[33];
    char source[80];
};

_Static_assert(offsetof(struct webhook_req, in) == 0, "publish_record's opaque");

/* A request's context and its deadline timer in one allocation. */
static struct webhook_req *webhook_req_new(void)
{
    size_t head = (sizeof(struct webhook_req) + 15) & ~(size_t)15;
    struct webhook_req *wr = mh_calloc(1, head + event_get_struct_event_size());
    wr->deadline = (struct event *)((char *)wr + head);
    return wr;
}

/* A request id: 16 random bytes in hex. OpenSSL's generator is asked for a pool of
 * bytes at a time rather than once per request (a lock and a fork check each). */
static void request_id(struct ingest *in, char out[33])
{
    if (in->rid_left < 16) {
        mh_random_bytes(in->rid_pool, sizeof(in->rid_pool));
        in->rid_left = sizeof(in->rid_pool);
    }
    in->rid_left -= 16;
    mh_hex_encode(in->rid_pool + in->rid_left, 16, out);
}

/* mh_time_format(now_ms): the date and time to the second are formatted once a second
 * per loop, only the milliseconds every time. */
static void received_at(struct ingest *in, int64_t now_ms, char out[MH_TIME_BUFSZ])
{
    if (now_ms < 0) {
        mh_time_format(now_ms, out);
        return;
    }
    int64_t sec = now_ms / 1000;
    if (!in->received_fmt[0] || sec != in->received_sec) {
        mh_time_format(sec * 1000, in->received_fmt); /* "YYYY-MM-DDTHH:MM:SS.000Z" */
        in->received_sec = sec;
    }
    int ms = (int)(now_ms % 1000);
    memcpy(out, in->received_fmt, 20);
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

/* [ingest] ack_deadline_ms as a common timeout of the loop: every request's timer has
 * the same length, so adding and removing one is O(1). */
static const struct timeval *ack_timeout(struct ingest *in, long ms)
{
    if (!in->ack_tv || in->ack_tv_ms != ms) {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        const struct timeval *common = event_base_init_common_timeout(in->base, &tv);
        if (!common) return NULL;
        in->ack_tv = common;
        in->ack_tv_ms = ms;
    }
    return in->ack_tv;
}

static void reply_json(struct evhttp_request *req, int code, const char *reason, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static void reply_json(struct evhttp_request *req, int code, const char *reason, const char *fmt,
                       ...)
{
    struct evbuffer *buf = evbuffer_new();
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(buf, fmt, ap);
    va_end(ap);
    evbuffer_add(buf, "\n", 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason, buf);
    evbuffer_free(buf);
}

/* The 200 of an acknowledged webhook, without formatting or a buffer of its own. */
static void reply_accepted(struct evhttp_request *req, const char rid[33])
{
    static const char head[] = "{\"status\":\"accepted\",\"request_id\":\"", tail[] = "\"}\n";
    char body[sizeof(head) - 1 + 32 + sizeof(tail) - 1];
    memcpy(body, head, sizeof(head) - 1);
    memcpy(body + sizeof(head) - 1, rid, 32);
    memcpy(body + sizeof(head) - 1 + 32, tail, sizeof(tail) - 1);
    evbuffer_add(evhttp_request_get_output_buffer(req), body, sizeof(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void reply_unavailable(struct ingest *in, struct source_stats *sst,
                              struct evhttp_request *req, const char *rid, const char *why)
{
    if (sst) sst->unavailable++;
    char retry[16];
    snprintf(retry, sizeof(retry), "%ld", in->cur->cfg->ingest.retry_after_s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", retry);
    in->proc->stats.unavailable++;
    reply_json(req, 503, "Service Unavailable", "{\"error\":\"%s\",\"request_id\":\"%s\"}", why,
               rid);
}

/*
 * Writes the reply just queued on evcon now, instead of on the loop's next turn.
 *
 * evhttp queues a reply in the connection's bufferevent, which watches the socket for
 * writability (an epoll_ctl), writes on the next turn of the loop and then watches it
 * for reading again (another). A reply to a request that waited for Kafka is small and
 * the socket idle, so it is written here at once; when it all went out, the bufferevent's
 * write callback tells evhttp so, as the bufferevent itself would have, and evhttp
 * finishes the request (it may free the connection: evcon is not used afterwards). What
 * does not go out at once, or an error, is left to the bufferevent as before. TLS
 * connections are left to theirs. Only from ingest's own callbacks (a delivery report,
 * a timer), never from within one of evhttp's.
 */
static void write_now(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev || bufferevent_openssl_get_ssl(bev)) return;
    evutil_socket_t fd = bufferevent_getfd(bev);
    struct evbuffer *out = bufferevent_get_output(bev);
    if (fd < 0 || !evbuffer_get_length(out)) return;
    /* A socket bufferevent keeps its output's front frozen between its own writes. */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    if (n > 0 && !evbuffer_get_length(out)) bufferevent_trigger(bev, EV_WRITE, 0);
}

/*
 * While a webhook waits for Kafka, its connection is still read, with no read callback.
 *
 * evhttp stops reading a connection once it has a whole request and starts again once
 * the answer is written: an epoll_ctl each way for every request. Instead the
 * connection stays watched for reading all along, as evhttp itself watches it while it
 * writes an answer: a client that closes its connection meanwhile is noticed at once
 * (evhttp frees the connection and lets go of the request, whose answer then goes
 * nowhere), and bytes it sends meanwhile (a pipelined request) wait in the input buffer
 * for evhttp, at most WAIT_INPUT_MAX of them: past that the bufferevent stops reading,
 * as evhttp would have. The inactivity timeout ([ingest] read_timeout_ms) is off
 * meanwhile, as it was while evhttp did not read: the wait is the ack deadline's.
 * stop_waiting restores both before the answer. TLS connections are left as evhttp
 * has them.
 */
#define WAIT_INPUT_MAX (64 * 1024)

static struct bufferevent *plain_bev(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev && !bufferevent_openssl_get_ssl(bev) ? bev : NULL;
}

static void keep_reading(struct evhttp_request *req)
{
    struct bufferevent *bev = plain_bev(evhttp_request_get_connection(req));
    if (!bev) return;
    bufferevent_data_cb on_write;
    bufferevent_event_cb on_event;
    void *arg;
    bufferevent_getcb(bev, NULL, &on_write, &on_event, &arg);
    bufferevent_setcb(bev, NULL, on_write, on_event, arg);
    bufferevent_setwatermark(bev, EV_READ, 0, WAIT_INPUT_MAX);
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_enable(bev, EV_READ);
}

static void stop_waiting(struct ingest *in, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = plain_bev(evcon);
    if (!bev) return;
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_set_timeouts(bev, &in->http_timeout, &in->http_timeout);
}

/*
 * The ack deadline passed without a delivery report. librdkafka's own message timeout
 * is the same deadline, but an idempotent producer may hold a record that is in flight
 * past it; the provider must not wait, so it gets its 503 now. The record may still be
 * acknowledged later: the provider's retry is then a duplicate, which dedup absorbs.
 */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct webhook_req *wr = arg;
    (void)fd;
    (void)what;
    if (wr->answered) return;
    wr->answered = 1;
    mh_log_at(MH_LOG_WARN, wr->request_id, wr->source, "no kafka acknowledgement within %ld ms",
              wr->ic->cfg->ingest.ack_deadline_ms);
    struct evhttp_connection *evcon = evhttp_request_get_connection(wr->req);
    stop_waiting(wr->in, evcon);
    reply_unavailable(wr->in, wr->sst, wr->req, wr->request_id,
                      "event store too slow, retry later");
    write_now(evcon);
}

/* Delivery report for one request: the only place a webhook gets its 200. */
static void on_published(rd_kafka_resp_err_t err, void *opaque)
{
    struct webhook_req *wr = opaque;
    struct ingest *in = wr->in;
    atomic_fetch_sub(&in->inflight, 1);
    event_del(wr->deadline);
    /* The reply (if any) may free the request and its connection once written. */
    struct evhttp_connection *evcon = wr->answered ? NULL : evhttp_request_get_connection(wr->req);
    stop_waiting(in, evcon);
    if (wr->answered) {
        mh_log_at(MH_LOG_INFO, wr->request_id, wr->source, "late delivery report: %s",
                  err ? rd_kafka_err2str(err) : "acknowledged after the 503");
    } else if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        in->proc->stats.accepted++;
        if (wr->sst) wr->sst->accepted++;
        reply_accepted(wr->req, wr->request_id);
        write_now(evcon);
        int64_t ack_us = mh_mono_us() - wr->start_us;
        mh_histogram_observe_us(&in->proc->stats.ack_latency, ack_us);
        if (wr->sst) mh_histogram_observe_us(&wr->sst->ack_latency, ack_us);
        mh_log_at(MH_LOG_DEBUG, wr->request_id, wr->source, "published");
    } else {
        mh_log_at(MH_LOG_WARN, wr->request_id, wr->source, "not acknowledged by kafka: %s",
                  rd_kafka_err2str(err));
        reply_unavailable(in, wr->sst, wr->req, wr->request_id,
                          "event store unavailable, retry later");
        write_now(evcon);
    }
    ingest_cfg_unref(wr->ic);
    free(wr);
}

static void add_header(rd_kafka_headers_t *hdrs, const char *name, const char *value)
{
    if (value) rd_kafka_header_add(hdrs, name, -1, value, -1);
}

static void handle_webhook(struct ingest *in, struct evhttp_request *req, const char *name)
{
    struct ingest_cfg *ic = in->cur;
    struct mh_headers headers = {0}, reply_headers = {0};
    char *reply_body = NULL;
    char rid[33], err[512] = "";
    char received[MH_TIME_BUFSZ];
    int64_t now = mh_now_ms(), start_us = mh_mono_us();

    request_id(in, rid);
    received_at(in, now, received);
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Request-Id", rid);

    struct mh_source *src = mh_config_source(ic->cfg, name);
    struct source_stats *sst = src ? ingest_source_stats(ic, src) : NULL;
    if (!src || !src->enabled) {
        in->proc->stats.not_found++;
        reply_json(req, 404, "Not Found", "{\"error\":\"unknown source\",\"request_id\":\"%s\"}",
                   rid);
        return;
    }
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD && src->provider->answers_head) {
        reply_json(req, 200, "OK", "{\"status\":\"ok\",\"request_id\":\"%s\"}", rid);
        return;
    }
    /* A provider's OPTIONS URL check (answers_options) goes to verify, never to Kafka. */
    int options = evhttp_request_get_command(req) == EVHTTP_REQ_OPTIONS &&
                  src->provider->answers_options;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST && !options) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_json(req, 405, "Method Not Allowed", "{\"error\":\"use POST\",\"request_id\":\"%s\"}",
                   rid);
        return;
    }
    if (in->shutting_down) {
        reply_unavailable(in, sst, req, rid, "shutting down, retry later");
        return;
    }

    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    const unsigned char *bytes = len ? evbuffer_pullup(body, -1) : (const unsigned char *)"";

    struct evkeyvalq *in_hdrs = evhttp_request_get_input_headers(req);
    /* evhttp's own strings: they live as long as req, past every use of headers here. */
    for (struct evkeyval *kv = in_hdrs->tqh_first; kv; kv = kv->next.tqe_next)
        mh_headers_borrow(&headers, kv->key, kv->value);

    struct mh_request mreq = {
        .method = options ? "OPTIONS" : "POST",
        .uri = evhttp_request_get_uri(req),
        .headers = &headers,
        .body = bytes,
        .body_len = len,
        .now_ms = now,
        .reply_headers = &reply_headers,
        .reply_body = &reply_body,
    };
    enum mh_verdict v = src->provider->verify(src, &mreq, err, sizeof(err));
    if (options && v == MH_VERIFY_OK) v = MH_VERIFY_ACK;
    if (v == MH_VERIFY_ACK) {
        mh_log_at(MH_LOG_INFO, rid, src->name, "provider check answered, nothing published: %s",
                  err);
        struct evkeyvalq *out = evhttp_request_get_output_headers(req);
        for (size_t i = 0; i < reply_headers.n; i++)
            evhttp_add_header(out, reply_headers.v[i].name, reply_headers.v[i].value);
        if (reply_body)
            reply_json(req, 200, "OK", "%s", reply_body);
        else
            reply_json(req, 200, "OK", "{\"status\":\"ok\",\"request_id\":\"%s\"}", rid);
        goto done;
    }
    if (v != MH_VERIFY_OK) {
        mh_log_at(MH_LOG_WARN, rid, src->name, "rejected: %s", err);
        if (v == MH_VERIFY_REJECT) {
            in->proc->stats.unauthorized++;
            if (sst) sst->unauthorized++;
            quarantine_request(in, ic->cfg, src, sst, rid, received, mreq.uri, &headers, bytes,
                               len, err);
            reply_json(req, 401, "Unauthorized",
                       "{\"error\":\"signature verification failed\",\"request_id\":\"%s\"}", rid);
        } else if (v == MH_VERIFY_MALFORMED) {
            in->proc->stats.bad_request++;
            if (sst) sst->bad_request++;
            reply_json(req, 400, "Bad Request",
                       "{\"error\":\"request cannot be verified\",\"request_id\":\"%s\"}", rid);
        } else {
            reply_unavailable(in, sst, req, rid, "verification unavailable, retry later");
        }
        goto done;
    }
    if (!atomic_load(&in->proc->kafka_ok)) {
        reply_unavailable(in, sst, req, rid, "event store unavailable, retry later");
        goto done;
    }

    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8 + src->n_forward);
    add_header(hdrs, MH_HDR_SOURCE, src->name);
    add_header(hdrs, MH_HDR_PROVIDER, src->provider->name);
    add_header(hdrs, MH_HDR_TENANT, src->tenant);
    add_header(hdrs, MH_HDR_RECEIVED_AT, received);
    add_header(hdrs, MH_HDR_REQUEST_ID, rid);
    add_header(hdrs, "content-type", mh_headers_get(&headers, "content-type"));
    for (size_t i = 0; i < src->n_forward; i++)
        add_header(hdrs, src->forward_headers[i], mh_headers_get(&headers, src->forward_headers[i]));

    struct webhook_req *wr = webhook_req_new();
    wr->in = in;
    wr->req = req;
    wr->ic = ingest_cfg_ref(ic);
    wr->sst = sst;
    wr->start_us = start_us;
    memcpy(wr->request_id, rid, sizeof(rid));
    snprintf(wr->source, sizeof(wr->source), "%s", src->name);

    rd_kafka_resp_err_t kerr =
        publish_record(in, ic->cfg->ingest.raw_topic, rid, bytes, len, hdrs, wr);
    if (!kerr) {
        long ms = ic->cfg->ingest.ack_deadline_ms;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        const struct timeval *common = ack_timeout(in, ms);
        evtimer_assign(wr->deadline, in->base, on_deadline, wr);
        evtimer_add(wr->deadline, common ? common : &tv);
    }
    if (kerr) {
        rd_kafka_headers_destroy(hdrs);
        ingest_cfg_unref(wr->ic);
        free(wr);
        mh_log_at(MH_LOG_WARN, rid, src->name, "cannot queue for kafka: %s", rd_kafka_err2str(kerr));
        reply_unavailable(in, sst, req, rid, "event store busy, retry later");
        goto done;
    }
    atomic_fetch_add(&in->inflight, 1);
    keep_reading(req);
done:
    mh_headers_clear(&headers);
    mh_headers_clear(&reply_headers);
    free(reply_body);
}

static void handle_metrics(struct ingest *in, struct evhttp_request *req)
{
    struct evbuffer *buf = evbuffer_new();
    const struct ingest_stats *s = &in->proc->stats;
    long inflight = 0;
    long conns = 0;
    for (int i = 0; i < in->proc->n_loops; i++) {
        inflight += atomic_load(&in->proc->loops[i].inflight);
        conns += atomic_load(&in->proc->loops[i].conns_gauge);
    }
    evbuffer_add_printf(buf,
                        "# HELP mailhook_ingest_requests_total HTTP requests received, every "
                        "path.\n"
                        "# TYPE mailhook_ingest_requests_total counter\n"
                        "mailhook_ingest_requests_total %llu\n"
                        "# HELP mailhook_ingest_responses_total Webhooks answered, by status.\n"
                        "# TYPE mailhook_ingest_responses_total counter\n"
                        "mailhook_ingest_responses_total{code=\"200\"} %llu\n"
                        "mailhook_ingest_responses_total{code=\"400\"} %llu\n"
                        "mailhook_ingest_responses_total{code=\"401\"} %llu\n"
                        "mailhook_ingest_responses_total{code=\"404\"} %llu\n"
                        "mailhook_ingest_responses_total{code=\"503\"} %llu\n"
                        "# HELP mailhook_ingest_inflight Webhooks waiting for Kafka's "
                        "acknowledgement.\n"
                        "# TYPE mailhook_ingest_inflight gauge\n"
                        "mailhook_ingest_inflight %ld\n"
                        "# HELP mailhook_ingest_kafka_ready 1 when Kafka is reachable (/readyz "
                        "answers 200), else 0.\n"
                        "# TYPE mailhook_ingest_kafka_ready gauge\n"
                        "mailhook_ingest_kafka_ready %d\n"
                        "# HELP mailhook_ingest_loops Event loops serving requests.\n"
                        "# TYPE mailhook_ingest_loops gauge\n"
                        "mailhook_ingest_loops %d\n"
                        "# HELP mailhook_ingest_connections Open client connections.\n"
                        "# TYPE mailhook_ingest_connections gauge\n"
                        "mailhook_ingest_connections %ld\n"
                        "# HELP mailhook_ingest_accept_pauses_total Times accepting connections "
                        "paused after an accept error (such as too many open files).\n"
                        "# TYPE mailhook_ingest_accept_pauses_total counter\n"
                        "mailhook_ingest_accept_pauses_total %llu\n"
                        "# HELP mailhook_ingest_request_deadline_closes_total Connections "
                        "closed because no whole request arrived within request_deadline_ms.\n"
                        "# TYPE mailhook_ingest_request_deadline_closes_total counter\n"
                        "mailhook_ingest_request_deadline_closes_total %llu\n",
                        (unsigned long long)s->requests, (unsigned long long)s->accepted,
                        (unsigned long long)s->bad_request, (unsigned long long)s->unauthorized,
                        (unsigned long long)s->not_found, (unsigned long long)s->unavailable,
                        inflight, atomic_load(&in->proc->kafka_ok), in->proc->n_loops, conns,
                        (unsigned long long)atomic_load(&s->accept_pauses),
                        (unsigned long long)atomic_load(&s->deadline_closes));
    /* Per source: this loop's config generation (every loop switches on a reload). */
    struct ingest_cfg *ic = in->cur;
    evbuffer_add_printf(buf, "# HELP mailhook_ingest_source_responses_total Webhooks answered, "
                             "by source and status (counted since the last reload).\n"
                             "# TYPE mailhook_ingest_source_responses_total counter\n");
    for (size_t i = 0; i < ic->cfg->n_sources; i++) {
        struct source_stats *ss = &ic->sources[i];
        const struct {
            const char *code;
            _Atomic uint64_t *n;
        } by_code[] = {{"200", &ss->accepted},
                       {"400", &ss->bad_request},
                       {"401", &ss->unauthorized},
                       {"503", &ss->unavailable}};
        for (size_t k = 0; k < sizeof(by_code) / sizeof(by_code[0]); k++)
            evbuffer_add_printf(buf,
                                "mailhook_ingest_source_responses_total{source=\"%s\",code=\"%s\"}"
                                " %llu\n",
                                ic->cfg->sources[i]->name, by_code[k].code,
                                (unsigned long long)atomic_load(by_code[k].n));
    }
    evbuffer_add_printf(
        buf,
        "# HELP mailhook_ingest_quarantined_total Requests refused for a signature mismatch "
        "and stored on the quarantine topic (sources with quarantine = true).\n"
        "# TYPE mailhook_ingest_quarantined_total counter\n"
        "mailhook_ingest_quarantined_total %llu\n"
        "# HELP mailhook_ingest_quarantine_dropped_total Signature mismatches of quarantine "
        "sources not stored: over quarantine_rate, over quarantine_max_bytes, or not "
        "accepted by Kafka.\n"
        "# TYPE mailhook_ingest_quarantine_dropped_total counter\n"
        "mailhook_ingest_quarantine_dropped_total{reason=\"rate\"} %llu\n"
        "mailhook_ingest_quarantine_dropped_total{reason=\"size\"} %llu\n"
        "mailhook_ingest_quarantine_dropped_total{reason=\"kafka\"} %llu\n",
        (unsigned long long)atomic_load(&s->quarantined),
        (unsigned long long)atomic_load(&s->quarantine_dropped_rate),
        (unsigned long long)atomic_load(&s->quarantine_dropped_size),
        (unsigned long long)atomic_load(&s->quarantine_failed));
    mh_histogram_write(&s->ack_latency, "mailhook_ingest_ack_seconds",
                       "Time from a webhook's last byte to its 200: verification, Kafka's "
                       "acknowledgement (acks=all) and the reply.",
                       buf);
    evbuffer_add_printf(buf, "# HELP mailhook_ingest_source_ack_seconds Time from a webhook's "
                             "last byte to its 200, by source (since the last reload).\n"
                             "# TYPE mailhook_ingest_source_ack_seconds histogram\n");
    for (size_t i = 0; i < ic->cfg->n_sources; i++) {
        char labels[600];
        snprintf(labels, sizeof(labels), "source=\"%s\"", ic->cfg->sources[i]->name);
        mh_histogram_write_series(&ic->sources[i].ack_latency, "mailhook_ingest_source_ack_seconds",
                                  labels, buf);
    }
    evbuffer_add_printf(buf, "# HELP mailhook_ingest_loop_requests_total HTTP requests received, "
                             "by event loop.\n"
                             "# TYPE mailhook_ingest_loop_requests_total counter\n");
    for (int i = 0; i < in->proc->n_loops; i++)
        evbuffer_add_printf(buf, "mailhook_ingest_loop_requests_total{loop=\"%d\"} %llu\n", i,
                            (unsigned long long)atomic_load(&in->proc->loops[i].requests));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", buf);
    evbuffer_free(buf);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct ingest *in = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path) path = "/";
    deadline_request_read(in, req);
    in->proc->stats.requests++;
    in->requests++;

    if (!strncmp(path, WEBHOOK_PREFIX, strlen(WEBHOOK_PREFIX))) {
        handle_webhook(in, req, path + strlen(WEBHOOK_PREFIX));
        return;
    }
    if (!strcmp(path, "/healthz")) {
        reply_json(req, 200, "OK", "{\"status\":\"ok\"}");
        return;
    }
    if (!strcmp(path, "/readyz")) {
        if (!in->shutting_down && atomic_load(&in->proc->kafka_ok))
            reply_json(req, 200, "OK", "{\"status\":\"ready\"}");
        else
            reply_json(req, 503, "Service Unavailable", "{\"status\":\"%s\"}",
                       in->shutting_down ? "shutting down" : "kafka unavailable");
        return;
    }
    if (!strcmp(path, "/metrics")) {
        handle_metrics(in, req);
        return;
    }
    in->proc->stats.not_found++;
    reply_json(req, 404, "Not Found", "{\"error\":\"not found\"}");
}

/* A listening socket on ai; with reuseport, one of a group sharing the port. -1 + errno. */
static evutil_socket_t bind_one(const struct evutil_addrinfo *ai, int reuseport)
{
    evutil_socket_t fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int http_listen(struct ingest_proc *p, const struct mh_config *cfg, char *err, size_t errlen)
{
    char host[256], port_s[16];
    int port;
    if (mh_split_listen(cfg->ingest.listen, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "[ingest] listen: expected host:port, not \"%s\"", cfg->ingest.listen);
        return -1;
    }
    snprintf(port_s, sizeof(port_s), "%d", port);
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                    .ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICSERV};
    struct evutil_addrinfo *ai = NULL;
    int gai = evutil_getaddrinfo(*host ? host : NULL, port_s, &hints, &ai);
    if (gai) {
        snprintf(err, errlen, "[ingest] listen %s: %s", cfg->ingest.listen,
                 evutil_gai_strerror(gai));
        return -1;
    }
    /* A plain bind first: SO_REUSEPORT alone would quietly share a port that another
     * process (another mailhook-ingest, say) already listens on. With [ingest] share_port
     * that is what is wanted: several processes on one port, the kernel spreading new
     * connections over all their loops (only processes of the same user can join). */
    if (!cfg->ingest.share_port) {
        evutil_socket_t probe = bind_one(ai, 0);
        if (probe < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", cfg->ingest.listen, strerror(errno));
            evutil_freeaddrinfo(ai);
            return -1;
        }
        close(probe);
    }
    /* One socket per loop, all on the port: the kernel spreads new connections over
     * them, so every loop (and core) gets its share. */
    for (int i = 0; i < p->n_loops; i++) {
        p->loops[i].listen_fd = bind_one(ai, 1);
        if (p->loops[i].listen_fd < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", cfg->ingest.listen, strerror(errno));
            evutil_freeaddrinfo(ai);
            return -1;
        }
    }
    evutil_freeaddrinfo(ai);
    mh_info("listening on %s", cfg->ingest.listen);
    return 0;
}

int http_init(struct ingest *in, char *err, size_t errlen)
{
    const struct mh_config *cfg = in->cur->cfg;

    publish_set_done_cb(on_published);
    in->http = evhttp_new(in->base);
    evhttp_set_max_body_size(in->http, cfg->ingest.max_body_bytes);
    evhttp_set_max_headers_size(in->http, cfg->ingest.max_header_bytes);
    struct timeval tv = {cfg->ingest.read_timeout_ms / 1000, (cfg->ingest.read_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(in->http, &tv);
    in->http_timeout = tv;
    evhttp_set_allowed_methods(in->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(in->http, on_request, in);
    /* From here the listener owns the socket (and closes it). */
    in->bound = evhttp_accept_socket_with_handle(in->http, in->listen_fd);
    if (!in->bound) {
        snprintf(err, errlen, "cannot accept on %s: %s", cfg->ingest.listen, strerror(errno));
        return -1;
    }
    in->listen_fd = -1;
    if (deadline_init(in, cfg->ingest.request_deadline_ms) < 0) {
        snprintf(err, errlen, "cannot set up the request deadline");
        return -1;
    }
    if (accept_guard_init(in, cfg->ingest.max_connections) < 0) {
        snprintf(err, errlen, "cannot set up the connection cap");
        return -1;
    }
    return 0;
}

void http_stop_listening(struct ingest *in)
{
    if (in->bound) evhttp_del_accept_socket(in->http, in->bound);
    in->bound = NULL;
}

void http_fini(struct ingest *in)
{
    accept_guard_fini(in);
    /* evhttp_free frees the listener before the connections, whose close callbacks
     * must not reach it. */
    in->bound = NULL;
    if (in->http) evhttp_free(in->http);
    in->http = NULL;
    deadline_fini(in); /* after the connections' close callbacks */
}
