/*
 * event_limits.c — makes canonical events storable (see event_limits.h and
 * docs/design.md, "Storable events").
 */
#include "mailhook/event_limits.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/crypto.h"
#include "mailhook/log.h"
#include "mailhook/suppression_rules.h"
#include "mailhook/timeutil.h"

_Static_assert(MH_LIMIT_RECIPIENT == SUPP_ADDRESS_MAX,
               "a stored recipient must be an address the suppression list can key");

/* U+FFFD REPLACEMENT CHARACTER, what NUL and invalid bytes become. */
static const char replacement[] = "\xEF\xBF\xBD";

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. NUL is
 * valid UTF-8 but not storable: 0 too. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000;
    else return 0;
    if (left < n) return 0;
    unsigned cp = c & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
    return n;
}

int mh_text_storable(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        /* ASCII but NUL, most of every event: a byte at a time, without a call. */
        if ((unsigned)p[i] - 1u < 0x7Fu) {
            i++;
            continue;
        }
        size_t n = utf8_seq(p + i, len - i);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

/* s[0..len) with every NUL and invalid byte replaced by U+FFFD; *outlen its length. */
static char *text_repair(const char *s, size_t len, size_t *outlen)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = mh_malloc(len * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, replacement, 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

int mh_time_storable(const char *s, int64_t *ms)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    char again[MH_TIME_BUFSZ];
    int64_t t;
    if (!s || strlen(s) != sizeof(shape) - 1) return 0;
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i]) return 0;
    }
    if (mh_time_parse(s, &t) < 0 || t < MH_LIMIT_TIME_MIN_MS || t > MH_LIMIT_TIME_MAX_MS)
        return 0;
    /* A date the parser normalized (February 30th, second 60) is not a real one. */
    mh_time_format(t, again);
    if (strcmp(again, s)) return 0;
    if (ms) *ms = t;
    return 1;
}

/* Fixes every string and object key under v; returns the number of changes. */
static int repair_tree(json_t *v)
{
    int changes = 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v), n;
        if (mh_text_storable(s, len)) return 0;
        char *fixed = text_repair(s, len, &n);
        json_string_setn(v, fixed, n);
        free(fixed);
        return 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) changes += repair_tree(item);
        return changes;
    }
    if (!json_is_object(v)) return 0;
    const char *key;
    json_t *item;
    json_t *bad = NULL; /* keys to rename: [[key, value], ...] */
    json_object_foreach(v, key, item) {
        changes += repair_tree(item);
        size_t klen = json_object_iter_key_len(json_object_key_to_iter(key));
        if (mh_text_storable(key, klen)) continue;
        if (!bad) bad = json_array();
        json_t *pair = json_array();
        json_array_append_new(pair, json_stringn_nocheck(key, klen));
        json_array_append(pair, item);
        json_array_append_new(bad, pair);
    }
    size_t i;
    json_t *pair;
    json_array_foreach(bad, i, pair) {
        json_t *k = json_array_get(pair, 0);
        size_t n;
        char *fixed = text_repair(json_string_value(k), json_string_length(k), &n);
        json_object_deln(v, json_string_value(k), json_string_length(k));
        json_object_setn(v, fixed, n, json_array_get(pair, 1));
        free(fixed);
        changes++;
    }
    json_decref(bad);
    return changes;
}

/* A field that is part of a key and may not be changed: present means a storable string
 * of at most max bytes. 0, or -1 with reason. */
static int check_key_field(json_t *ev, const char *name, size_t max, char *reason, size_t reasonlen)
{
    json_t *v = json_object_get(ev, name);
    if (!v) return 0;
    if (!json_is_string(v)) {
        snprintf(reason, reasonlen, "%s is not a string", name);
        return -1;
    }
    size_t len = json_string_length(v);
    if (len > max) {
        snprintf(reason, reasonlen, "%s of %zu bytes is over the %zu-byte limit", name, len, max);
        return -1;
    }
    if (!mh_text_storable(json_string_value(v), len)) {
        snprintf(reason, reasonlen, "%s holds a NUL or invalid UTF-8", name);
        return -1;
    }
    return 0;
}

/* The event id as it can be stored: a provider id that is too long or not text becomes
 * "sha256:" and the SHA-256 (hex) of its bytes, so the same id always maps the same. */
static int fix_event_id(json_t *ev, char *reason, size_t reasonlen)
{
    json_t *v = json_object_get(ev, "event_id");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        snprintf(reason, reasonlen, "event has no event_id");
        return -1;
    }
    const char *id = json_string_value(v);
    size_t len = json_string_length(v);
    if (len <= MH_LIMIT_EVENT_ID && mh_text_storable(id, len)) return 0;
    struct mh_buf part = {id, len};
    char hex[65], hashed[sizeof(MH_HASHED_ID_PREFIX) + 64];
    mh_sha256_hex(&part, 1, hex);
    snprintf(hashed, sizeof(hashed), "%s%s", MH_HASHED_ID_PREFIX, hex);
    json_object_set_new(ev, "event_id", json_string(hashed));
    return 1;
}

/* Removes obj[key] unless it is a storable time; 1 when it was removed. */
static int drop_bad_time(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v || mh_time_storable(json_string_value(v), NULL)) return 0;
    json_object_del(obj, key);
    return 1;
}

/* Removes obj[key] unless it is an integer within [lo, hi]; 1 when it was removed. */
static int drop_bad_int(json_t *obj, const char *key, json_int_t lo, json_int_t hi)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi) return 0;
    json_object_del(obj, key);
    return 1;
}

int mh_event_make_storable(json_t *ev, const struct mh_event_limits *lim, char *reason,
                           size_t reasonlen)
{
    int changes = 0, rc;
    if (!json_is_object(ev)) {
        snprintf(reason, reasonlen, "event is not a JSON object");
        return -1;
    }
    if (check_key_field(ev, "tenant", MH_LIMIT_TENANT, reason, reasonlen) < 0 ||
        check_key_field(ev, "source", MH_LIMIT_SOURCE, reason, reasonlen) < 0 ||
        check_key_field(ev, "provider", MH_LIMIT_PROVIDER, reason, reasonlen) < 0 ||
        check_key_field(ev, "recipient", MH_LIMIT_RECIPIENT, reason, reasonlen) < 0 ||
        check_key_field(ev, "message_id", MH_LIMIT_MESSAGE_ID, reason, reasonlen) < 0)
        return -1;
    if ((rc = fix_event_id(ev, reason, reasonlen)) < 0) return -1;
    changes += rc;

    changes += drop_bad_time(ev, "occurred_at");
    if (drop_bad_time(ev, "received_at")) changes++;
    if (!json_object_get(ev, "received_at") && lim && lim->received_fallback_ms > 0) {
        int64_t ms = lim->received_fallback_ms;
        if (ms >= MH_LIMIT_TIME_MIN_MS && ms <= MH_LIMIT_TIME_MAX_MS) {
            char buf[MH_TIME_BUFSZ];
            mh_time_format(ms, buf);
            json_object_set_new(ev, "received_at", json_string(buf));
            changes++;
        }
    }
    json_t *bounce = json_object_get(ev, "bounce");
    if (json_is_object(bounce)) changes += drop_bad_int(bounce, "smtp_code", 200, 599);
    json_t *delay = json_object_get(ev, "delay");
    if (json_is_object(delay)) {
        changes += drop_bad_time(delay, "next_retry_at");
        changes += drop_bad_int(delay, "attempt", 0, INT32_MAX);
        if (json_object_size(delay) == 0) json_object_del(ev, "delay");
    }
    changes += repair_tree(ev);

    if (lim && lim->max_event_bytes) {
        size_t n = json_dumpb(ev, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (n > lim->max_event_bytes) {
            snprintf(reason, reasonlen, "event of %zu bytes is over the %zu-byte limit", n,
                     lim->max_event_bytes);
            return -1;
        }
    }
    return changes;
}
