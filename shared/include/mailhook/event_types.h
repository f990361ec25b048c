/*
 * event_types.h — the canonical event types as a table: the "type" enum of
 * schema/mailhook.event.v1.json, in its order, so a counter can be kept per type
 * (worker metrics) without a string per observation. A unit test holds this table
 * against the schema.
 */
#ifndef MH_EVENT_TYPES_H
#define MH_EVENT_TYPES_H

#include <stddef.h>

extern const char *const mh_event_types[];
extern const size_t mh_event_types_n;

/* The index of TYPE in mh_event_types; the index of "other" for NULL or a type that is
 * not canonical. */
size_t mh_event_type_index(const char *type);

#endif
