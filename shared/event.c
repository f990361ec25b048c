/*
 * event.c — canonical event construction helpers (see event.h).
 */
#include "mailhook/event.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailhook/crypto.h"
#include "mailhook/log.h"
#include "mailhook/timeutil.h"

json_t *mh_event_new(const struct mh_raw *raw, const char *type, const char *provider_event)
{
    json_t *ev = json_object();
    json_object_set_new(ev, "schema", json_string(MH_EVENT_SCHEMA));
    json_object_set_new(ev, "type", json_string(type));
    mh_event_set_str(ev, "provider", raw->provider);
    mh_event_set_str(ev, "provider_event", provider_event);
    mh_event_set_str(ev, "source", raw->source);
    mh_event_set_str(ev, "tenant", raw->tenant);
    if (raw->received_ms > 0) mh_event_set_time_ms(ev, "received_at", raw->received_ms);
    if (raw->topic) {
        json_t *r = json_object();
        json_object_set_new(r, "topic", json_string(raw->topic));
        json_object_set_new(r, "partition", json_integer(raw->partition));
        json_object_set_new(r, "offset", json_integer(raw->offset));
        json_object_set_new(ev, "raw", r);
    }
    return ev;
}

void mh_event_set_str(json_t *obj, const char *key, const char *value)
{
    if (!value || !*value) return;
    json_t *s = json_string(value);
    /* Invalid UTF-8 from a provider: keep what we can rather than dropping the field. */
    if (!s) {
        size_t n = strlen(value);
        char *clean = mh_malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            clean[i] = (unsigned char)value[i] < 0x80 ? value[i] : '?';
        clean[n] = '\0';
        s = json_string(clean);
        free(clean);
    }
    if (s) json_object_set_new(obj, key, s);
}

void mh_event_set_int(json_t *obj, const char *key, json_int_t value)
{
    json_object_set_new(obj, key, json_integer(value));
}

void mh_lower(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

void mh_event_set_address(json_t *obj, const char *key, const char *addr)
{
    if (!addr) return;
    while (isspace((unsigned char)*addr)) addr++;
    size_t n = strlen(addr);
    while (n && isspace((unsigned char)addr[n - 1])) n--;
    if (!n) return;
    char *a = mh_strndup(addr, n);
    mh_lower(a);
    mh_event_set_str(obj, key, a);
    free(a);
}

void mh_event_set_tags(json_t *ev, json_t *list)
{
    json_t *tags = json_array(), *item;
    size_t i;
    if (json_is_string(list) && *json_string_value(list)) json_array_append(tags, list);
    json_array_foreach(list, i, item) {
        if (json_is_string(item) && *json_string_value(item)) json_array_append(tags, item);
    }
    if (json_array_size(tags)) json_object_set(ev, "tags", tags);
    json_decref(tags);
}

int mh_event_set_time(json_t *obj, const char *key, const char *text)
{
    int64_t ms;
    if (!text || mh_time_parse(text, &ms) < 0) return -1;
    mh_event_set_time_ms(obj, key, ms);
    return 0;
}

void mh_event_set_time_ms(json_t *obj, const char *key, int64_t ms)
{
    char buf[MH_TIME_BUFSZ];
    mh_time_format(ms, buf);
    json_object_set_new(obj, key, json_string(buf));
}

void mh_event_copy(json_t *obj, const char *key, json_t *value)
{
    if (!value || json_is_null(value)) return;
    json_object_set(obj, key, value);
}

json_t *mh_event_sub(json_t *ev, const char *key)
{
    json_t *sub = json_object_get(ev, key);
    if (!json_is_object(sub)) {
        sub = json_object();
        json_object_set_new(ev, key, sub);
    }
    return sub;
}

int mh_json_blank(json_t *v, unsigned rules)
{
    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v))) return 1;
    if ((rules & MH_META_SKIP_EMPTY_OBJECT) && json_is_object(v) && !json_object_size(v))
        return 1;
    return (rules & MH_META_SKIP_EMPTY_ARRAY) && json_is_array(v) && !json_array_size(v);
}

void mh_event_meta_put(json_t *ev, const char *key, json_t *v, unsigned rules)
{
    if (mh_json_blank(v, rules)) return;
    json_t *meta = mh_event_sub(ev, "metadata");
    if (!(rules & MH_META_REPLACE) && json_object_get(meta, key)) return;
    json_object_set(meta, key, v);
}

void mh_event_meta_set(json_t *ev, const char *key, json_t *v)
{
    mh_event_meta_put(ev, key, v, MH_META_FIRST);
}

void mh_event_meta_replace(json_t *ev, const char *key, json_t *v)
{
    mh_event_meta_put(ev, key, v, MH_META_REPLACE);
}

static const char *str_or_empty(json_t *ev, const char *key)
{
    const char *s = json_string_value(json_object_get(ev, key));
    return s ? s : "";
}

void mh_event_finish(json_t *ev, const char *provider_id, const char *extra)
{
    if (provider_id && *provider_id) {
        json_object_set_new(ev, "event_id", json_string(provider_id));
        return;
    }
    /* Fields are separated by NUL so ("ab","c") and ("a","bc") never collide. */
    const char *fields[] = {
        str_or_empty(ev, "provider"),  str_or_empty(ev, "tenant"),
        str_or_empty(ev, "message_id"), str_or_empty(ev, "provider_event"),
        str_or_empty(ev, "recipient"), str_or_empty(ev, "occurred_at"),
        extra ? extra : "",
    };
    struct mh_buf parts[2 * (sizeof(fields) / sizeof(fields[0]))];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        parts[n++] = (struct mh_buf){fields[i], strlen(fields[i])};
        parts[n++] = (struct mh_buf){"", 1};
    }
    char hex[65];
    mh_sha256_hex(parts, n, hex);
    json_object_set_new(ev, "event_id", json_string(hex));
}

int mh_event_parse_body(const struct mh_raw *raw, const char *provider, mh_batch_fn batch_of,
                        mh_parse_object_fn parse_object, json_t *events, char *err,
                        size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)raw->body, raw->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: invalid JSON at line %d column %d: %s", provider, jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    json_t *list = batch_of ? batch_of(root) : json_is_array(root) ? root : NULL;
    int rc = 0;
    if (list) {
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) {
            if ((rc = parse_object(raw, item, events, err, errlen)) < 0) break;
        }
    } else {
        rc = parse_object(raw, root, events, err, errlen);
    }
    json_decref(root);
    return rc;
}

json_t *mh_batch_none(json_t *root)
{
    (void)root;
    return NULL;
}

const char *mh_json_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

int mh_json_int(json_t *obj, const char *key, json_int_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*s && *end == '\0' && errno != ERANGE) {
            *out = x;
            return 0;
        }
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* Range first: converting an out-of-range double to an integer is undefined. */
        if (d >= -9.2e18 && d <= 9.2e18 && d == (double)(json_int_t)d) {
            *out = (json_int_t)d;
            return 0;
        }
    }
    return -1;
}

void mh_event_set_delivery(json_t *ev, const struct mh_delivery *d)
{
    json_t *o = json_object();
    mh_event_set_str(o, "remote_host", d->remote_host);
    mh_event_set_str(o, "remote_ip", d->remote_ip);
    if (d->tls == 0 || d->tls == 1) json_object_set_new(o, "tls", json_boolean(d->tls));
    mh_event_set_str(o, "smtp_response", d->smtp_response);
    if (d->duration_ms >= 0) json_object_set_new(o, "duration_ms", json_integer(d->duration_ms));
    if (d->attempt >= 0) json_object_set_new(o, "attempt", json_integer(d->attempt));
    mh_event_set_str(o, "reporting_mta", d->reporting_mta);
    mh_event_set_str(o, "sending_ip", d->sending_ip);
    if (json_object_size(o)) json_object_set_new(ev, "delivery", o);
    else json_decref(o);
}

void mh_event_set_machine(json_t *ev, const char *sub_key)
{
    json_object_set_new(mh_event_sub(ev, sub_key), "machine", json_true());
}

int mh_json_truthy(json_t *v)
{
    if (json_is_true(v)) return 1;
    if (json_is_integer(v)) return json_integer_value(v) != 0;
    if (json_is_real(v)) return json_real_value(v) != 0.0;
    const char *s = json_string_value(v);
    return s && (!strcmp(s, "1") || !strcasecmp(s, "true"));
}
