/*
 * params.c — parsing what a request says (params.h). libevent splits and decodes the
 * query and path; jansson judges UTF-8 (json_stringn refuses anything else); the
 * suppression rules normalize addresses. Nothing here is kept in a fixed-size buffer
 * that the input could overrun: lengths are checked before anything is copied.
 */
#include "params.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailhook/log.h"

int api_text_valid(const char *s, size_t len)
{
    if (!s || memchr(s, '\0', len)) return 0;
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

static size_t value_max(const char *name)
{
    if (!strcmp(name, "cursor")) return MH_CURSOR_MAX;
    if (!strcmp(name, "message_id")) return API_MESSAGE_ID_MAX;
    return API_PARAM_MAX;
}

int api_query_parse(struct api_query *p, const char *query, const char *const *allowed,
                    char *err, size_t errlen)
{
    if (!query) query = "";
    /* The parser initializes the list, also for an empty query. */
    int bad = evhttp_parse_query_str(query, &p->q) < 0;
    p->parsed = 1;
    /* A decoded NUL would cut a value short unseen. */
    if (bad || strstr(query, "%00")) {
        snprintf(err, errlen, "malformed query string");
        return -1;
    }
    for (struct evkeyval *kv = p->q.tqh_first; kv; kv = kv->next.tqe_next) {
        const char *const *a = allowed;
        while (*a && strcmp(*a, kv->key)) a++;
        if (!*a) {
            /* Echoed only when it is text that JSON can carry. */
            if (strlen(kv->key) <= 64 && api_text_valid(kv->key, strlen(kv->key)))
                snprintf(err, errlen, "unknown parameter \"%s\"", kv->key);
            else
                snprintf(err, errlen, "unknown parameter");
            return -1;
        }
        for (struct evkeyval *o = p->q.tqh_first; o != kv; o = o->next.tqe_next) {
            if (!strcmp(o->key, kv->key)) {
                snprintf(err, errlen, "%s: given more than once", *a);
                return -1;
            }
        }
        size_t len = strlen(kv->value), max = value_max(*a);
        if (len > max) {
            snprintf(err, errlen, "%s: longer than %zu bytes", *a, max);
            return -1;
        }
        if (!api_text_valid(kv->value, len)) {
            snprintf(err, errlen, "%s: not UTF-8 text", *a);
            return -1;
        }
    }
    return 0;
}

const char *api_query_get(const struct api_query *p, const char *name)
{
    const char *v = evhttp_find_header(&p->q, name);
    return v && *v ? v : NULL;
}

void api_query_clear(struct api_query *p)
{
    if (p->parsed) evhttp_clear_headers(&p->q);
    p->parsed = 0;
}

int api_parse_limit(const char *v, long def, long max, long *out)
{
    *out = def;
    if (!v) return 0;
    if (*v < '0' || *v > '9') return -1; /* strtol would take " 5" and "+5" */
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > max) return -1;
    *out = n;
    return 0;
}

char *api_path_segment(const char *seg, size_t max)
{
    size_t len = 0;
    char *dec = evhttp_uridecode(seg ? seg : "", 0, &len);
    if (!dec) return NULL;
    if (len == 0 || len > max || !api_text_valid(dec, len)) {
        free(dec);
        return NULL;
    }
    return dec;
}

char *api_address(const char *text)
{
    char buf[SUPP_ADDRESS_MAX + 1];
    if (!text || supp_address_normalize(text, buf, sizeof(buf)) < 0) return NULL;
    return mh_strdup(buf);
}

char *api_list_cursor_encode(const char *tenant, const char *address)
{
    const char *parts[2] = {tenant, address};
    return mh_cursor_encode(parts, 2);
}

int api_list_cursor_decode(const char *cursor, char **tenant, char **address)
{
    *tenant = *address = NULL;
    json_t *arr = mh_cursor_decode(cursor, 2);
    if (!arr) return -1;
    *tenant = mh_strdup(json_string_value(json_array_get(arr, 0)));
    *address = mh_strdup(json_string_value(json_array_get(arr, 1)));
    json_decref(arr);
    return 0;
}
