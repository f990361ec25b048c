/*
 * event.h — building canonical events (schema mailhook.event.v1, see design.md).
 *
 * An event is a jansson object. Providers create one with mh_event_new (which fills
 * the fields every event has from the raw record), set what the payload says with the
 * setters below (which skip NULL and empty values: fields are absent when unknown,
 * never invented), and finish it with mh_event_finish, which assigns event_id.
 */
#ifndef MH_EVENT_H
#define MH_EVENT_H

#include <jansson.h>
#include <stdint.h>

#include "mailhook/provider.h"

#define MH_EVENT_SCHEMA "mailhook.event.v1"

/* New event with schema, type, provider, provider_event, source, tenant, received_at, raw. */
json_t *mh_event_new(const struct mh_raw *raw, const char *type, const char *provider_event);

void mh_event_set_str(json_t *obj, const char *key, const char *value);
void mh_event_set_int(json_t *obj, const char *key, json_int_t value);
/* Sets recipient (or another address field), lower-cased and trimmed. */
void mh_event_set_address(json_t *obj, const char *key, const char *addr);
/* Sets ev.tags to the non-empty strings of list (an array, or one string); none: no key. */
void mh_event_set_tags(json_t *ev, json_t *list);
/* Parses a provider time (any form mh_time_parse accepts) and sets it as RFC 3339 ms. */
int mh_event_set_time(json_t *obj, const char *key, const char *text);
void mh_event_set_time_ms(json_t *obj, const char *key, int64_t ms);
/* Copies a JSON value (object/array/scalar) from the payload if present and not null. */
void mh_event_copy(json_t *obj, const char *key, json_t *value);
/* The sub-object key of ev ("bounce", "click", ...), created on first use. */
json_t *mh_event_sub(json_t *ev, const char *key);

/*
 * ev.delivery, how the receiving server took (or refused) the message, from what the
 * provider reports (design.md, "Canonical event"). NULL strings and negative numbers are
 * unknown and skipped; tls is -1 (unknown), 0 or 1. No key when nothing is known.
 */
struct mh_delivery {
    const char *remote_host, *remote_ip, *smtp_response, *reporting_mta, *sending_ip;
    int tls;
    int64_t duration_ms;
    json_int_t attempt;
};
#define MH_DELIVERY_INIT {NULL, NULL, NULL, NULL, NULL, -1, -1, -1}
void mh_event_set_delivery(json_t *ev, const struct mh_delivery *d);
/* ev[sub_key].machine = true (sub_key "open" or "click"): the provider marks the activity
 * as a machine's or a privacy proxy's, not the recipient's. */
void mh_event_set_machine(json_t *ev, const char *sub_key);
/* 1 when v is JSON true, a non-zero number, or "1" / "true" (any case); else 0. */
int mh_json_truthy(json_t *v);

/*
 * Metadata: ev.metadata[key] = v (a payload value, borrowed: a reference is taken), the
 * object created on first use. A value that is absent, JSON null or "" is skipped, so
 * is one the rules call empty. Providers differ on a key set twice: MH_META_FIRST keeps
 * the value already there, MH_META_REPLACE overwrites it.
 */
enum mh_meta_rules {
    MH_META_FIRST = 0,
    MH_META_REPLACE = 1 << 0,
    MH_META_SKIP_EMPTY_OBJECT = 1 << 1, /* {} is skipped too */
    MH_META_SKIP_EMPTY_ARRAY = 1 << 2,  /* [] is skipped too */
};
void mh_event_meta_put(json_t *ev, const char *key, json_t *v, unsigned rules);
/* mh_event_meta_put with MH_META_FIRST: the first value set wins. */
void mh_event_meta_set(json_t *ev, const char *key, json_t *v);
/* mh_event_meta_put with MH_META_REPLACE: the last value set wins. */
void mh_event_meta_replace(json_t *ev, const char *key, json_t *v);
/* 1 when v is absent, null, "" or empty under rules (the metadata setters' test). */
int mh_json_blank(json_t *v, unsigned rules);

/*
 * Assigns event_id: provider_id when the provider has its own event id, else the
 * SHA-256 (hex) over provider, tenant, message_id, provider_event, recipient and
 * occurred_at — the fields that identify an event — plus `extra` when the payload
 * needs more to tell two events apart (e.g. a click's URL). Same event, same id.
 */
void mh_event_finish(json_t *ev, const char *provider_id, const char *extra);

/*
 * Parsing a JSON body that holds one event object or a batch of them.
 *
 * mh_event_parse_body loads raw's body as JSON (duplicate keys rejected) and calls
 * parse_object for each event object: every element of the batch array that batch_of
 * picks out of the root, or the root itself when batch_of returns NULL. With batch_of
 * NULL, a top-level array is the batch. It stops at the first object that fails and
 * returns -1 with err set; a body that is not JSON fails with "<provider>: invalid JSON
 * at line L column C: ...". Events appended before a failure stay in events.
 */
typedef int (*mh_parse_object_fn)(const struct mh_raw *raw, json_t *obj, json_t *events,
                                  char *err, size_t errlen);
typedef json_t *(*mh_batch_fn)(json_t *root);

int mh_event_parse_body(const struct mh_raw *raw, const char *provider, mh_batch_fn batch_of,
                        mh_parse_object_fn parse_object, json_t *events, char *err,
                        size_t errlen);
/* A batch_of for providers that post one object per request: the root is the event,
 * whatever its JSON type (parse_object rejects what is not an object). */
json_t *mh_batch_none(json_t *root);

/* String member of a payload object, or NULL when absent or not a string. */
const char *mh_json_str(json_t *obj, const char *key);
/* Integer member (accepts integers and integral numeric strings); 0 and -1 when absent. */
int mh_json_int(json_t *obj, const char *key, json_int_t *out);

/* Lower-cases s in place. */
void mh_lower(char *s);

#endif
