/*
 * quarantine.h — what ingest keeps of a request refused for a signature mismatch, and
 * the bound on how fast it keeps them (docs/quarantine.md).
 *
 * A quarantine record is the request body byte for byte as its value, keyed by the
 * request id, with the raw record's mh-* headers (source, provider, tenant, received-at,
 * request-id) plus:
 *   mh-request-headers  every request header as a JSON array of [name, value] pairs, in
 *                       the order received (names as sent; repeated names kept)
 *   mh-request-uri      the request's path and query
 *   mh-reject-reason    why verify refused it (verify's error text: never a secret)
 * That is everything a provider's verify reads, so `mailhook quarantine reverify` can
 * run the same check later with the source's current secrets.
 */
#ifndef MH_QUARANTINE_H
#define MH_QUARANTINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mailhook/headers.h"

#define MH_HDR_REQUEST_HEADERS "mh-request-headers"
#define MH_HDR_REQUEST_URI "mh-request-uri"
#define MH_HDR_REJECT_REASON "mh-reject-reason"

/* The headers as the JSON array above; malloc'd, NUL-terminated. */
char *mh_quarantine_headers_encode(const struct mh_headers *h);
/* Appends the pairs of such an array (len bytes, not NUL-terminated) to h. 0, or -1
 * when text is not an array of [string, string] pairs (h then holds what came before). */
int mh_quarantine_headers_decode(const char *text, size_t len, struct mh_headers *h);

/*
 * A token bucket of `burst` tokens refilled at `rate` per second, kept as the time at
 * which the bucket will be full again (the generic cell rate algorithm), in one atomic
 * word: every loop thread takes from it without a lock. Zero-initialised it is full.
 */
struct mh_rate_limit {
    _Atomic int64_t tat_us; /* theoretical arrival time of the next token */
};

/* 1 when a token was taken at now_us (a monotonic clock), 0 when the bucket is empty.
 * rate and burst are read at each call, so a reload can change them. */
int mh_rate_limit_take(struct mh_rate_limit *rl, long rate, long burst, int64_t now_us);

#endif
