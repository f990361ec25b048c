/*
 * dlq_cursor.h — GET /v1/dlq's page cursor: for each dead-letter partition that still
 * has older records, the offset the next page reads below ("P:O,P:O"). Pure, so unit
 * tests and the fuzzer link it alone (mailhook_api_params).
 */
#ifndef MH_API_DLQ_CURSOR_H
#define MH_API_DLQ_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#define DLQ_CURSOR_MAX_PARTS 1024

struct dlq_cursor {
    size_t n;
    int32_t partition[DLQ_CURSOR_MAX_PARTS];
    int64_t before[DLQ_CURSOR_MAX_PARTS];
};

/* Parses "P:O,..." (P and O whole numbers >= 0, each P once); 0, or -1. */
int dlq_cursor_parse(const char *s, struct dlq_cursor *c);
/* The offset below which partition p is read next; -1 when c does not name p. */
int64_t dlq_cursor_before(const struct dlq_cursor *c, int32_t p);

#endif
