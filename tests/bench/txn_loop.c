/*
 * txn_loop.c — the Kafka ceiling for mailhook-worker's rate: a bare librdkafka
 * transactional consume -> produce loop with no parsing and no PostgreSQL. It joins
 * GROUP on IN (read_committed), copies each record's value to OUT and commits every
 * BATCH records (or what one poll round brought) in one transaction with the consumed
 * offsets — the worker's Kafka work without the worker. Built and run by tests/bench/run.
 *
 * usage: txn_loop BROKERS IN OUT GROUP TXN_ID BATCH TOTAL INDEX COUNT PARTITIONS
 * Loop INDEX of COUNT takes IN's partitions p with p % COUNT == INDEX by assignment, so
 * that loops started side by side never rebalance one another (the offsets are still
 * committed for GROUP, in the transaction). Stops after TOTAL records (or 3 s without a
 * record) and prints one line of JSON: {"records": N, "seconds": S} with S from the
 * first record to the last commit.
 */
#define _POSIX_C_SOURCE 200809L
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *brokers, const char *key,
                          const char *val)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(c, key, val, err, sizeof(err)) ||
        (type == RD_KAFKA_CONSUMER &&
         (rd_kafka_conf_set(c, "isolation.level", "read_committed", err, sizeof(err)) ||
          rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof(err)) ||
          rd_kafka_conf_set(c, "auto.offset.reset", "earliest", err, sizeof(err)))) ||
        (type == RD_KAFKA_PRODUCER &&
         (rd_kafka_conf_set(c, "linger.ms", "5", err, sizeof(err)) ||
          rd_kafka_conf_set(c, "retry.backoff.ms", "10", err, sizeof(err))))) {
        fprintf(stderr, "txn_loop: config: %s\n", err);
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof(err));
    if (!rk) fprintf(stderr, "txn_loop: %s\n", err);
    return rk;
}

static int check(rd_kafka_error_t *e, const char *what)
{
    if (!e) return 0;
    fprintf(stderr, "txn_loop: %s: %s\n", what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 11) {
        fprintf(stderr, "usage: txn_loop BROKERS IN OUT GROUP TXN_ID BATCH TOTAL INDEX COUNT "
                        "PARTITIONS\n");
        return 2;
    }
    const char *brokers = argv[1], *in = argv[2], *out = argv[3];
    int batch = atoi(argv[6]);
    long total = atol(argv[7]);
    int index = atoi(argv[8]), count = atoi(argv[9]), partitions = atoi(argv[10]);
    if (count < 1 || index < 0 || index >= count || partitions < 1 || batch < 1) {
        fprintf(stderr, "txn_loop: bad BATCH/INDEX/COUNT/PARTITIONS\n");
        return 2;
    }
    rd_kafka_t *cons = client(RD_KAFKA_CONSUMER, brokers, "group.id", argv[4]);
    rd_kafka_t *prod = client(RD_KAFKA_PRODUCER, brokers, "transactional.id", argv[5]);
    rd_kafka_message_t **msgs = calloc((size_t)batch, sizeof(*msgs));
    int rc = 1;
    if (!cons || !prod || !msgs) goto out;
    rd_kafka_poll_set_consumer(cons);
    rd_kafka_topic_partition_list_t *mine = rd_kafka_topic_partition_list_new(partitions);
    for (int p = index; p < partitions; p += count)
        rd_kafka_topic_partition_list_add(mine, in, p)->offset = RD_KAFKA_OFFSET_STORED;
    rd_kafka_resp_err_t aerr = rd_kafka_assign(cons, mine);
    rd_kafka_topic_partition_list_destroy(mine);
    if (aerr) {
        fprintf(stderr, "txn_loop: assign: %s\n", rd_kafka_err2str(aerr));
        goto out;
    }
    if (check(rd_kafka_init_transactions(prod, 30000), "init_transactions")) goto out;

    long done = 0;
    double first = 0, last_msg = now_s(), end = 0;
    while (done < total && now_s() - last_msg < 3) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
        if (!m) continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (!first) first = now_s();
        /* As the worker does (pipeline/emit.c): the batch, then the offsets, then its
         * records, so a transaction's wait for the previous one's markers is retried at
         * retry.backoff.ms. */
        int n = 0;
        while (m) {
            if (!m->err) msgs[n++] = m;
            else rd_kafka_message_destroy(m);
            m = n < batch ? rd_kafka_consumer_poll(cons, 0) : NULL;
        }
        rd_kafka_topic_partition_list_t *pos = NULL;
        rd_kafka_assignment(cons, &pos);
        rd_kafka_position(cons, pos);
        rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(cons);
        int bad = check(rd_kafka_begin_transaction(prod), "begin_transaction") ||
                  check(rd_kafka_send_offsets_to_transaction(prod, pos, md, 30000), "send_offsets");
        for (int i = 0; i < n; i++) {
            if (!bad)
                rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(out),
                                  RD_KAFKA_V_VALUE(msgs[i]->payload, msgs[i]->len),
                                  RD_KAFKA_V_KEY(msgs[i]->key, msgs[i]->key_len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            rd_kafka_message_destroy(msgs[i]);
        }
        bad = bad || check(rd_kafka_commit_transaction(prod, 30000), "commit_transaction");
        rd_kafka_consumer_group_metadata_destroy(md);
        rd_kafka_topic_partition_list_destroy(pos);
        if (bad) goto out;
        done += n;
        last_msg = end = now_s();
    }
    printf("{\"records\": %ld, \"seconds\": %.3f}\n", done, first ? end - first : 0.0);
    rc = 0;
out:
    if (cons) {
        rd_kafka_consumer_close(cons);
        rd_kafka_destroy(cons);
    }
    if (prod) rd_kafka_destroy(prod);
    free(msgs);
    return rc;
}
