/*
 * lanes.c — a batch's claim in several PostgreSQL transactions at once (lanes.h).
 *
 * One claim transaction runs on one PostgreSQL backend, which works on one core: its
 * rate is a ceiling for a worker that claims on one connection, however idle the other
 * cores are. So a batch is split into lanes, each claimed by dedup_claim on a
 * connection of its own, the first on the main thread, the others on threads of their
 * own, all at once. What keeps that as safe as one transaction:
 *   - a lane is a claim like any other: its events' claims, event log rows and
 *     suppression effects commit together, and a lane that fails leaves what the others
 *     committed as claims the batch finds again (as after a crash between the
 *     PostgreSQL and the Kafka commit), so the batch is simply claimed again;
 *   - one address, one lane: records are assigned so that no (tenant, normalized
 *     recipient) is in two lanes. A lane's per-address locks stay held until the
 *     batch's Kafka transaction ended, so a second lane asking for one of them would
 *     wait for a commit that waits for it. The soft-bounce count of an address reads its
 *     event log rows, which are then all in its lane's transaction;
 *   - no wait for good across workers: one claim transaction takes its address locks in
 *     key order, so two of them never wait for each other in a cycle, but the lanes of
 *     one batch take theirs in separate transactions and hold all of them until one
 *     Kafka commit. Worker A's lane 1 could then wait for an address B's lane 2 holds
 *     while B's lane 1 waits for one A's lane 2 holds, neither commit coming. So the
 *     records with a suppression effect (a bounce, a complaint, an unsubscribe: all that
 *     take locks but a delivery's reset, which locks only an address under a soft-bounce
 *     suppression) all go to the first lane, where one transaction takes their locks in
 *     order, leaving a cycle only to the rare reset that matters in another lane; and
 *     every lane of a split claim waits at most LANE_LOCK_TIMEOUT_MS for a lock, which
 *     breaks any cycle: the lane fails, the worker releases all its lanes' locks and
 *     claims the batch again in one lane;
 *   - two lanes proposing one event (two records with the same event id) meet on the
 *     claim's primary key as two workers do: each inserts in key order, so one waits for
 *     the other's commit and never the reverse, and the one that waited finds the claim
 *     taken by another record, a provider duplicate.
 * The records of a lane stay in their order, so the events of one address (one lane) are
 * produced in the order they came; guarantees.md promises no order across addresses.
 *
 * claim_lanes is what the worker group runs at once, shared by the raw partitions each
 * worker holds: a worker with k of the topic's P partitions splits into
 * ceil(claim_lanes * k / P) lanes (at least one). Lanes pay only while PostgreSQL has
 * cores the worker's one transaction leaves idle; several workers already keep as many
 * transactions running, and a split then costs more CPU (threads, the plan, a
 * transaction and its commit a lane) than it saves. On the 2-core bench machine two
 * workers drained 11 % more single-event records a second with one lane each than with
 * two (docs/performance.md), while one worker alone gains from its two.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lanes.h"
#include "mailhook/kafka.h"
#include "mailhook/log.h"
#include "mailhook/suppression_rules.h"

void lanes_init(struct worker *w)
{
    /* The group's lanes (claim_lanes); one worker runs at most MH_CLAIM_LANES_MAX. */
    long n = w->cfg->worker.claim_lanes;
    if (n > MH_CLAIM_LANES_MAX) n = MH_CLAIM_LANES_MAX;
    w->lanes_assigned = 0;
    w->n_lanes = 0;
    if (n > 1) w->n_lanes = (size_t)n - 1;
    w->lanes = w->n_lanes ? mh_calloc(w->n_lanes, sizeof(*w->lanes)) : NULL;
    for (size_t i = 0; i < w->n_lanes; i++) {
        struct worker *l = mh_calloc(1, sizeof(*l));
        l->cfg = w->cfg;
        l->instance = w->instance;
        l->skip_suppression = w->skip_suppression;
        w->lanes[i] = l;
    }
    w->lanes_active = 1 + w->n_lanes;
    atomic_store_explicit(&w->stats.claim_lanes, (int64_t)w->lanes_active, memory_order_relaxed);
}

/* Closes a lane's connections, its claim's and its spare. */
static void lane_disconnect(struct worker *l)
{
    if (l->pg) PQfinish(l->pg);
    if (l->pg_spare) PQfinish(l->pg_spare);
    l->pg = l->pg_spare = NULL;
}

size_t lanes_for_share(long claim_lanes, int assigned, int partitions)
{
    if (claim_lanes <= 1) return 1;
    if (assigned <= 0 || partitions <= 0 || assigned >= partitions) return (size_t)claim_lanes;
    return ((size_t)claim_lanes * (size_t)assigned + (size_t)partitions - 1) / (size_t)partitions;
}

/* How long the raw topic's partition count may take to arrive (a rebalance's). */
#define LANES_METADATA_TIMEOUT_MS 2000

void lanes_follow_assignment(struct worker *w)
{
    if (!w->lanes_assigned) return;
    w->lanes_assigned = 0;
    /* The whole assignment as the consumer holds it now, whatever the callback was
     * given. */
    int assigned = 0;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(w->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        assigned = parts->cnt;
        rd_kafka_topic_partition_list_destroy(parts);
    }
    long budget = w->cfg->worker.claim_lanes;
    size_t n = 1 + w->n_lanes;
    int partitions = -1;
    if (n > 1 && assigned > 0) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = mh_kafka_topic_metadata(w->producer, w->cfg->worker.raw_topic,
                                                        LANES_METADATA_TIMEOUT_MS, &md);
        if (e) {
            mh_info("claim lanes: %zu (the partitions of %s are unknown: %s)", n,
                    w->cfg->worker.raw_topic, rd_kafka_err2str(e));
        } else {
            partitions = md->topics[0].partition_cnt;
            size_t share = lanes_for_share(budget, assigned, partitions);
            if (share < n) n = share;
            rd_kafka_metadata_destroy(md);
        }
    }
    /* The lanes given up close their connections (a worker that held every partition
     * for a while keeps no more than its share open); one still holding address locks
     * keeps them until the next assignment. */
    for (size_t i = n - 1; i < w->n_lanes; i++)
        if (!w->lanes[i]->pg_locks) lane_disconnect(w->lanes[i]);
    if (n != w->lanes_active && partitions > 0)
        mh_info("claim lanes: %zu (%d of %s's %d partitions; [worker] claim_lanes %ld for the "
                "group)", n, assigned, w->cfg->worker.raw_topic, partitions, budget);
    w->lanes_active = n;
    atomic_store_explicit(&w->stats.claim_lanes, (int64_t)n, memory_order_relaxed);
}

void lanes_free(struct worker *w)
{
    for (size_t i = 0; i < w->n_lanes; i++) {
        lane_disconnect(w->lanes[i]);
        free(w->lanes[i]);
    }
    free(w->lanes);
    w->lanes = NULL;
    w->n_lanes = 0;
}

/*
 * The address keys of one record's events: tenant and normalized recipient, joined by a
 * byte neither holds (tenants are names from the configuration; a collision would only
 * merge two addresses' lanes). An event with no address (no suppression effect, no
 * lock: it may go to any lane) has none. Made once a record, for assign's two passes.
 */
struct record_keys {
    char *buf;   /* the keys, each null-terminated, one after the other */
    size_t len, cap;
    size_t n;    /* keys in buf */
};

static void record_keys_fill(struct record_keys *k, const struct batch_rec *r)
{
    size_t j;
    json_t *ev;
    k->len = k->n = 0;
    json_array_foreach(r->events, j, ev) {
        char addr[SUPP_ADDRESS_MAX + 1];
        if (supp_address_normalize(json_string_value(json_object_get(ev, "recipient")), addr,
                                   sizeof(addr)) < 0)
            continue;
        const char *tenant = json_string_value(json_object_get(ev, "tenant"));
        size_t tlen = tenant ? strlen(tenant) : 0, alen = strlen(addr);
        size_t need = k->len + tlen + alen + 2;
        if (need > k->cap) {
            k->cap = need > 2 * k->cap ? need : 2 * k->cap;
            k->buf = mh_realloc(k->buf, k->cap);
        }
        char *p = k->buf + k->len;
        if (tlen) memcpy(p, tenant, tlen);
        p[tlen] = '\x1f';
        memcpy(p + tlen + 1, addr, alen + 1);
        k->len = need;
        k->n++;
    }
}

/* Whether one of r's events changes suppression state by its tenant's rules, other than
 * a delivery's reset (which only matters to an address under a soft-bounce
 * suppression). */
static int has_effect(const struct mh_config *cfg, const struct batch_rec *r)
{
    size_t j;
    json_t *ev;
    const char *reason;
    if (!cfg) return 0;
    json_array_foreach(r->events, j, ev) {
        const struct mh_suppression_policy *pol =
            mh_config_suppression(cfg, json_string_value(json_object_get(ev, "tenant")));
        enum supp_op op = supp_rule(pol, ev, &reason);
        if (op != SUPP_NONE && op != SUPP_RESET) return 1;
    }
    return 0;
}

/*
 * Assigns each of b's records a lane of n (lane[i]): a record with a suppression effect
 * (has_effect) to the first, else the lane that already has one of its addresses, else
 * the one with the fewest events so far. -1 when a record has addresses in two lanes
 * already (the batch is then claimed in one lane).
 */
static int assign(const struct mh_config *cfg, const struct batch *b, size_t n, size_t *lane)
{
    json_t *seen = json_object(); /* address key -> its lane (lane_no[l]) */
    json_t *lane_no[MH_CLAIM_LANES_MAX] = {0};
    size_t load[MH_CLAIM_LANES_MAX] = {0};
    struct record_keys keys = {0};
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const struct batch_rec *r = &b->recs[i];
        long to = has_effect(cfg, r) ? 0 : -1;
        size_t events = r->events ? json_array_size(r->events) : 0;
        record_keys_fill(&keys, r);
        const char *key = keys.buf;
        for (size_t k = 0; k < keys.n; k++, key += strlen(key) + 1) {
            json_t *has = json_object_get(seen, key);
            if (!has) continue;
            long l = (long)json_integer_value(has);
            if (to >= 0 && l != to) {
                rc = -1;
                break;
            }
            to = l;
        }
        if (rc < 0) break;
        if (to < 0) {
            to = 0;
            for (size_t l = 1; l < n; l++)
                if (load[l] < load[to]) to = (long)l;
        }
        if (!lane_no[to]) lane_no[to] = json_integer(to);
        key = keys.buf;
        for (size_t k = 0; k < keys.n; k++, key += strlen(key) + 1)
            json_object_set(seen, key, lane_no[to]);
        lane[i] = (size_t)to;
        load[to] += events ? events : 1;
    }
    for (size_t l = 0; l < MH_CLAIM_LANES_MAX; l++) json_decref(lane_no[l]);
    free(keys.buf);
    json_decref(seen);
    return rc;
}

/* Puts b's records in lane order, each lane's in their order; start[l] is lane l's first
 * record, start[n] == b->n. */
static void reorder(struct batch *b, size_t n, const size_t *lane, size_t *start)
{
    size_t count[MH_CLAIM_LANES_MAX + 1] = {0};
    for (size_t i = 0; i < b->n; i++) count[lane[i] + 1]++;
    start[0] = 0;
    for (size_t l = 1; l <= n; l++) start[l] = start[l - 1] + count[l];
    struct batch_rec *recs = mh_malloc((b->n ? b->n : 1) * sizeof(*recs));
    size_t at[MH_CLAIM_LANES_MAX];
    memcpy(at, start, n * sizeof(*at));
    for (size_t i = 0; i < b->n; i++) recs[at[lane[i]]++] = b->recs[i];
    memcpy(b->recs, recs, b->n * sizeof(*recs));
    free(recs);
}

int lanes_plan(const struct mh_config *cfg, struct batch *b, size_t n, size_t *start)
{
    if (n < 1 || n > MH_CLAIM_LANES_MAX) return -1;
    size_t *lane = mh_malloc((b->n ? b->n : 1) * sizeof(*lane));
    int rc = assign(cfg, b, n, lane);
    if (rc == 0) reorder(b, n, lane, start);
    free(lane);
    return rc;
}

struct lane_job {
    struct worker *w;
    struct batch part; /* records of the batch's own array: no copy */
    char err[1024];
    int rc;
    pthread_t thread;
    int running;
};

static void *lane_thread(void *arg)
{
    struct lane_job *j = arg;
    j->rc = dedup_claim(j->w, &j->part, j->err, sizeof(j->err));
    return NULL;
}

int lanes_claim(struct worker *w, struct batch *b, int split, char *err, size_t errlen)
{
    size_t events = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->recs[i].events) events += json_array_size(b->recs[i].events);
    size_t n = w->lanes_active ? w->lanes_active : 1 + w->n_lanes;
    if (n > events / LANE_MIN_EVENTS) n = events / LANE_MIN_EVENTS;
    if (!split || n <= 1) return dedup_claim(w, b, err, errlen);

    size_t start[MH_CLAIM_LANES_MAX + 1];
    if (lanes_plan(w->cfg, b, n, start) < 0) return dedup_claim(w, b, err, errlen);

    struct lane_job jobs[MH_CLAIM_LANES_MAX];
    for (size_t l = 0; l < n; l++) {
        jobs[l] = (struct lane_job){.w = l ? w->lanes[l - 1] : w};
        jobs[l].part = (struct batch){.recs = b->recs + start[l], .n = start[l + 1] - start[l]};
        jobs[l].w->lock_timeout_ms = LANE_LOCK_TIMEOUT_MS;
    }
    /* The other lanes on their threads (or here, when no thread can be started); a lane
     * the plan left empty has nothing to claim. */
    size_t used = 0;
    for (size_t l = 1; l < n; l++) {
        if (!jobs[l].part.n) continue;
        used++;
        if (pthread_create(&jobs[l].thread, NULL, lane_thread, &jobs[l]) == 0)
            jobs[l].running = 1;
        else
            lane_thread(&jobs[l]);
    }
    if (jobs[0].part.n) {
        used++;
        lane_thread(&jobs[0]);
    }
    int rc = 0;
    json_decref(b->suppression_out);
    b->suppression_out = NULL;
    for (size_t l = 0; l < n; l++) {
        if (jobs[l].running) pthread_join(jobs[l].thread, NULL);
        jobs[l].w->lock_timeout_ms = 0;
        if (jobs[l].rc < 0 && rc == 0) {
            snprintf(err, errlen, "%s", jobs[l].err);
            rc = -1;
        }
        if (jobs[l].part.suppression_out) {
            if (!b->suppression_out) b->suppression_out = json_array();
            json_array_extend(b->suppression_out, jobs[l].part.suppression_out);
            json_decref(jobs[l].part.suppression_out);
        }
    }
    if (rc < 0) {
        json_decref(b->suppression_out);
        b->suppression_out = NULL;
    }
    if (used > 1) {
        atomic_fetch_add_explicit(&w->stats.lane_claims, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->stats.lane_transactions, used, memory_order_relaxed);
    }
    return rc;
}
