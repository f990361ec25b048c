/*
 * cursor.c — opaque page cursors (cursor.h): JSON, so any string round-trips (quotes,
 * commas, non-ASCII), in URL-safe base64 so it travels in a query string unencoded.
 */
#include <string.h>

#include "mailhook/crypto.h"
#include "mailhook/cursor.h"
#include "mailhook/log.h"

char *mh_cursor_encode(const char *const *parts, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_string(parts[i] ? parts[i] : ""));
    char *txt = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!txt) mh_oom();
    size_t len = strlen(txt);
    char *out = mh_malloc(4 * ((len + 2) / 3) + 1);
    size_t olen = mh_b64_encode((const unsigned char *)txt, len, out);
    free(txt);
    while (olen && out[olen - 1] == '=') out[--olen] = '\0';
    for (char *p = out; *p; p++) {
        if (*p == '+') *p = '-';
        else if (*p == '/') *p = '_';
    }
    return out;
}

json_t *mh_cursor_decode(const char *cursor, size_t n)
{
    size_t len = cursor ? strlen(cursor) : 0;
    if (len == 0 || len > MH_CURSOR_MAX) return NULL;
    unsigned char *buf = mh_malloc(len);
    ssize_t blen = mh_b64_decode(cursor, len, buf, len);
    json_t *arr = blen > 0 ? json_loadb((const char *)buf, (size_t)blen, 0, NULL) : NULL;
    free(buf);
    if (!json_is_array(arr) || json_array_size(arr) != n) goto bad;
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(arr, i))) goto bad;
    return arr;
bad:
    json_decref(arr);
    return NULL;
}
