/*
 * event_limits.h — what PostgreSQL and the schema can hold, checked on every canonical
 * event before it reaches the claim statement.
 *
 * mh_event_make_storable is the one place these rules live (docs/design.md, "Storable
 * events", has the table): normalize.c applies it to every event a provider makes, so
 * the claim, the suppression statement and the events topic only ever see values they
 * can hold. It is pure (no I/O, no clock): the same event always comes out the same,
 * which keeps event ids — and so dedup — deterministic.
 */
#ifndef MH_EVENT_LIMITS_H
#define MH_EVENT_LIMITS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Longest indexed values, in bytes (PostgreSQL refuses btree index rows over 2,704
 * bytes; the widest index row, (log_at, tenant, provider, event_id), stays far below). */
#define MH_LIMIT_EVENT_ID 512   /* longer provider ids are hashed */
#define MH_LIMIT_TENANT 256
#define MH_LIMIT_SOURCE 256
#define MH_LIMIT_PROVIDER 64
/* The suppression list's limit (SUPP_ADDRESS_MAX), not RFC 3696's 320: every recipient
 * the worker stores can be looked up, listed and removed through the API and the CLI. */
#define MH_LIMIT_RECIPIENT 1024
#define MH_LIMIT_MESSAGE_ID 998 /* RFC 5322's longest line */

/* Times mailhook stores: 1970-01-01T00:00:00.000Z up to 9999-12-31T23:59:59.999Z (RFC
 * 3339 has four year digits; PostgreSQL refuses year 0). */
#define MH_LIMIT_TIME_MIN_MS INT64_C(0)
#define MH_LIMIT_TIME_MAX_MS INT64_C(253402300799999)

/* Prefix of an event id made from a provider id that cannot be stored as it is. */
#define MH_HASHED_ID_PREFIX "sha256:"

struct mh_event_limits {
    /* Largest event, serialized, that may go to the events topic (and the claim). */
    size_t max_event_bytes;
    /* received_at to use when the event's own is missing or not storable (the raw
     * record's Kafka timestamp, ms); <= 0: leave it absent. */
    int64_t received_fallback_ms;
};

/*
 * Makes ev storable in place: hashes an event id that cannot be stored as it is, removes
 * times and numbers outside their range, replaces NUL and invalid UTF-8 in every other
 * string (and object key) with U+FFFD. Returns the number of changes made (0: stored as
 * it came), or -1 with reason when the event cannot be stored at all (an over-long or
 * invalid recipient, message id, tenant, source or provider, or an event over
 * max_event_bytes): its record then goes to the dead-letter topic.
 */
int mh_event_make_storable(json_t *ev, const struct mh_event_limits *lim, char *reason,
                           size_t reasonlen);

/* 1 when s[0..len) is UTF-8 PostgreSQL's text accepts (valid, no NUL), else 0. */
int mh_text_storable(const char *s, size_t len);

/* 1 when s is a time as mailhook writes it ("YYYY-MM-DDTHH:MM:SS.mmmZ", a real date)
 * within MH_LIMIT_TIME_MIN_MS..MH_LIMIT_TIME_MAX_MS; *ms gets it when ms is not NULL. */
int mh_time_storable(const char *s, int64_t *ms);

#endif
