/*
 * kafka.c — librdkafka configuration and header helpers (see kafka.h).
 */
#include "mailhook/kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/config.h"
#include "mailhook/log.h"

/* Sets each (key, value) pair of a NULL-terminated list; what names the list in err. */
static int set_pairs(rd_kafka_conf_t *conf, const char *const *pairs, const char *what,
                     char *err, size_t errlen)
{
    char rkerr[512];
    for (const char *const *o = pairs; o && o[0]; o += 2) {
        if (rd_kafka_conf_set(conf, o[0], o[1], rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka %s %s: %s", what, o[0], rkerr);
            return -1;
        }
    }
    return 0;
}

rd_kafka_conf_t *mh_kafka_conf(const struct mh_config *cfg, const char *const *overrides,
                               char *err, size_t errlen)
{
    return mh_kafka_conf_defaults(cfg, NULL, overrides, err, errlen);
}

rd_kafka_conf_t *mh_kafka_conf_defaults(const struct mh_config *cfg, const char *const *defaults,
                                        const char *const *overrides, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char rkerr[512];

    /* Defaults first: a [kafka] key set below replaces one, under any of its librdkafka
     * names (linger.ms and queue.buffering.max.ms are one property). */
    if (set_pairs(conf, defaults, "default", err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (const struct mh_kv *kv = cfg->kafka; kv; kv = kv->next) {
        if (rd_kafka_conf_set(conf, kv->key, kv->value, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK) {
            if (kv->line > 0)
                snprintf(err, errlen, "%s:%d: [kafka] %s", cfg->path, kv->line, rkerr);
            else
                snprintf(err, errlen, "%s: [kafka] %s", cfg->path, rkerr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (set_pairs(conf, overrides, "setting", err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

void mh_kafka_headers_borrow(const rd_kafka_message_t *rkm, struct mh_headers *h)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs) return;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
        mh_headers_borrow(h, name, val ? (const char *)val : "");
}

const char *mh_kafka_header(const rd_kafka_message_t *rkm, const char *name, char *buf,
                            size_t buflen)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val;
    size_t size;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs) return NULL;
    if (rd_kafka_header_get_last(hdrs, name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) return NULL;
    if (!val || size + 1 > buflen) return NULL;
    memcpy(buf, val, size);
    buf[size] = '\0';
    return buf;
}

rd_kafka_resp_err_t mh_kafka_topic_metadata(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                            const struct rd_kafka_metadata **md)
{
    *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt) return RD_KAFKA_RESP_ERR__INVALID_ARG;
    const struct rd_kafka_metadata *m = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &m, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (!e) e = m->topic_cnt == 1 ? m->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (e) {
        if (m) rd_kafka_metadata_destroy(m);
        return e;
    }
    *md = m;
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

const char *mh_kafka_setting(const rd_kafka_conf_t *conf, const char *key, char *buf,
                             size_t buflen)
{
    size_t sz = buflen;
    if (buflen == 0) return buf;
    if (rd_kafka_conf_get(conf, key, buf, &sz) != RD_KAFKA_CONF_OK)
        snprintf(buf, buflen, "?");
    return buf;
}

const char *mh_kafka_header_cut(const rd_kafka_message_t *rkm, const char *name, char *buf,
                                size_t buflen)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val;
    size_t size;
    if (buflen == 0 || rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs ||
        rd_kafka_header_get_last(hdrs, name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR || !val)
        return NULL;
    if (size >= buflen) size = buflen - 1;
    memcpy(buf, val, size);
    buf[size] = '\0';
    return buf;
}

rd_kafka_t *mh_kafka_reader_new(const struct mh_config *cfg, const char *group, char *err,
                                size_t errlen)
{
    char max_bytes[32];
    snprintf(max_bytes, sizeof(max_bytes), "%ld", mh_config_max_record_bytes(cfg));
    const char *overrides[] = {
        "group.id", group,
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest",
        "isolation.level", "read_committed",
        "enable.partition.eof", "true",
        "fetch.message.max.bytes", max_bytes,
        NULL,
    };
    rd_kafka_conf_t *conf = mh_kafka_conf(cfg, overrides, err, errlen);
    if (!conf) return NULL;
    char rkerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka consumer: %s", rkerr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}
