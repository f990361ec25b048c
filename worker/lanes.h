/*
 * lanes.h — a batch's claim in several PostgreSQL transactions at once ([worker]
 * claim_lanes), each on a connection of its own, so that one worker's claims are not
 * bounded by what one PostgreSQL backend does on one core (worker/main.c).
 */
#ifndef MH_WORKER_LANES_H
#define MH_WORKER_LANES_H

#include "pipeline.h"

/* Fewest events a lane is given: a smaller batch is claimed in fewer lanes (one, below
 * twice this), since every lane costs a transaction and its commit. */
#define LANE_MIN_EVENTS 64
/* How long a lane of a split claim waits for a lock before its claim fails (and is
 * retried in one lane): what breaks a wait cycle through two workers' lanes (lanes.c). */
#define LANE_LOCK_TIMEOUT_MS 1000

/* Makes w's claim_lanes - 1 other lanes (w itself is the first); connections open when
 * first used. All of them are in use until an assignment says the worker's share. */
void lanes_init(struct worker *w);
/*
 * The lanes a worker holding assigned of the raw topic's partitions splits its claims
 * into: its share of claim_lanes, ceil(claim_lanes * assigned / partitions), at least
 * one; all of claim_lanes when either count is unknown (<= 0).
 */
size_t lanes_for_share(long claim_lanes, int assigned, int partitions);
/*
 * After an assignment (w->lanes_assigned, set by the rebalance callback): asks Kafka for
 * the raw topic's partition count and sets w->lanes_active by lanes_for_share from the
 * partitions the consumer holds; keeps all the lanes when the count does not come.
 */
void lanes_follow_assignment(struct worker *w);
/* Closes the lanes' connections and frees them. */
void lanes_free(struct worker *w);

/*
 * dedup_claim over the lanes: b's records are put in lane order (the records of one lane
 * together, each lane's in their order), every lane's part is claimed at once in a
 * transaction of its own, and b->suppression_out holds the lanes' states in lane order.
 * Records that share a suppression address — (tenant, normalized recipient) — are always
 * in one lane, and records with a suppression effect other than a delivery's reset all
 * in the first (lanes.c says why). Each lane waits at most LANE_LOCK_TIMEOUT_MS for a
 * lock. With split 0 (a retry), or when the records' addresses can't be kept apart (a
 * record touching addresses two lanes already have), or the batch is small, it is
 * claimed in one lane as dedup_claim does. Returns 0, or -1 with err (the first failing
 * lane's) when a lane failed in a way worth retrying: the lanes that committed are
 * found again as claims when the batch comes again, as after a crash.
 */
int lanes_claim(struct worker *w, struct batch *b, int split, char *err, size_t errlen);

/*
 * lanes_claim's plan for n lanes (1..MH_CLAIM_LANES_MAX): puts b's records in lane order
 * and sets start[l] to lane l's first record (start[n] == b->n). A record with a
 * suppression effect by cfg's rules (other than a reset) goes to the first lane; any
 * record to the lane that already has one of its addresses, else to the lane with the
 * fewest events. cfg NULL: no rules. Returns -1, leaving b as it was, when a record has
 * addresses in two lanes already.
 */
int lanes_plan(const struct mh_config *cfg, struct batch *b, size_t n, size_t *start);

#endif
