/*
 * params.h — mailhook-api's request parsing as pure functions (api/params.c): the
 * query string, a path segment, an address, the suppression list's cursor. No request,
 * no database: unit tests and the fuzz target (tests/fuzz/fuzz_api_params.c) call them
 * directly. Every string they hand out is checked text: UTF-8, no NUL, bounded.
 */
#ifndef MH_API_PARAMS_H
#define MH_API_PARAMS_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stddef.h>

#include "mailhook/cursor.h"
#include "mailhook/suppression_rules.h"

/* The longest query value, in bytes after decoding; cursor and message_id aside. */
#define API_PARAM_MAX 1024
/* The longest message id, as a parameter or a path segment. */
#define API_MESSAGE_ID_MAX 4096

struct api_query {
    struct evkeyvalq q;
    int parsed;
};

/*
 * Parses a raw query string (NULL: none) into p. Every name must be one of allowed
 * (NULL-terminated) and given once; every value must be UTF-8 without NUL and within
 * its limit (cursor MH_CURSOR_MAX, message_id API_MESSAGE_ID_MAX, else API_PARAM_MAX).
 * 0, or -1 with err (the 400's message). Call api_query_clear either way.
 */
int api_query_parse(struct api_query *p, const char *query, const char *const *allowed,
                    char *err, size_t errlen);
/* A parameter's value; NULL when absent or empty. */
const char *api_query_get(const struct api_query *p, const char *name);
void api_query_clear(struct api_query *p);

/* limit=: def when v is NULL; -1 unless a whole number from 1 to max. */
int api_parse_limit(const char *v, long def, long max, long *out);

/*
 * A percent-decoded path segment ("+" stays "+"): a new string, or NULL when it is
 * empty, decodes to a NUL, is not UTF-8, or is longer than max bytes decoded.
 */
char *api_path_segment(const char *seg, size_t max);

/* An address as suppression state keys it (supp_address_normalize): new string or NULL. */
char *api_address(const char *text);

/* 1 when the len bytes of s are UTF-8 without NUL. */
int api_text_valid(const char *s, size_t len);

/* The suppression list's cursor: the (tenant, address) of a page's last row. */
char *api_list_cursor_encode(const char *tenant, const char *address);
/* 0 with new *tenant and *address, or -1 when cursor is not one this API returned. */
int api_list_cursor_decode(const char *cursor, char **tenant, char **address);

#endif
