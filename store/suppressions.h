/*
 * suppressions.h — the suppression rules (which event does what to an address) and the
 * store that the API and the CLI use to read and change suppression state.
 *
 * The state itself lives in PostgreSQL (migrations/0003_suppressions.sql): two
 * last-writer-wins registers per (tenant, address), written by mh_suppression_apply
 * under a per-address session advisory lock that is held until the new state is on the
 * compacted suppressions topic. docs/suppression.md has the whole model.
 */
#ifndef MH_STORE_SUPPRESSIONS_H
#define MH_STORE_SUPPRESSIONS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "mailhook/config.h"
#include "mailhook/suppression_rules.h"

/* ---- store (store/suppressions.c) ------------------------------------------------------ */

struct supp_store {
    const struct mh_config *cfg;
    const char *app;  /* application_name for PostgreSQL */
    PGconn *pg;
    rd_kafka_t *rk;   /* idempotent producer for the suppressions topic; NULL if read-only */
    int locked;       /* session advisory locks are held */
    int64_t next_connect_ms; /* after a failed connect, no new attempt before this */
    char connect_err[512];
};

/*
 * Connects to PostgreSQL (and creates the producer when with_producer). st is
 * zero-initialized by the caller. 0, or -1 with err.
 */
int supp_store_open(struct supp_store *st, const struct mh_config *cfg, const char *app,
                    int with_producer, char *err, size_t errlen);
void supp_store_close(struct supp_store *st);
/*
 * Reconnects when the connection was lost. 0, or -1 with err. After a failed attempt the
 * next one waits a second, so a server that is down costs callers no connect timeout
 * each.
 */
int supp_store_ensure(struct supp_store *st, char *err, size_t errlen);

/* "May I send?": 1 with *state (new reference) when suppressed, 0 when not, -1 with err. */
int supp_lookup(struct supp_store *st, const char *tenant, const char *address, json_t **state,
                char *err, size_t errlen);

/*
 * The current suppressions of tenant (every tenant when NULL), optionally of one
 * reason, in address order after `after` (a cursor: the last address of the previous
 * page, NULL for the first). *items: new array. 0, or -1 with err.
 */
int supp_list(struct supp_store *st, const char *tenant, const char *reason, const char *after,
              const char *after_tenant, long limit, json_t **items, char *err, size_t errlen);

/*
 * Manual changes, applied as one batch through the same registers as events:
 * ops = [{"tenant", "address", "op": "suppress" | "lift", "reason"}], each written at
 * now with a generated event id and `source` (api, cli, import). The new states are
 * published to the suppressions topic while the addresses' locks are held.
 * *states (optional): new array of {"key", "value"} as published. 0, or -1 with err; when
 * PostgreSQL committed but Kafka failed, err says so and maintenance publishes later.
 */
int supp_write(struct supp_store *st, json_t *ops, const char *source, json_t **states,
               char *err, size_t errlen);

/*
 * Ends temporary suppressions whose time is over and publishes every state the topic
 * may not have yet (pending rows). *published: records produced. 0, or -1 with err.
 */
int supp_expire_and_publish(struct supp_store *st, size_t *published, char *err, size_t errlen);

/* Releases every advisory lock the store's session holds. */
void supp_unlock_all(struct supp_store *st);

#endif
