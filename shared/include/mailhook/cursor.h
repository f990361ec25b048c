/*
 * cursor.h — the opaque page cursors of the API and the CLI: a JSON array of strings
 * (the sort key of a page's last row), URL-safe base64 without padding. Any stored
 * value round-trips, whatever its bytes; shared/cursor.c.
 */
#ifndef MH_CURSOR_H
#define MH_CURSOR_H

#include <jansson.h>
#include <stddef.h>

/*
 * The longest cursor accepted, in characters: more than a page boundary of the
 * longest values mailhook keys on needs (SUPP_ADDRESS_MAX addresses, tenants of up to
 * MH_TENANT_MAX bytes, event ids, each escaped as JSON at worst six bytes a byte).
 */
#define MH_CURSOR_MAX 32768

/* The longest tenant the API and the CLI take, in bytes. */
#define MH_TENANT_MAX 1024

/* A new cursor for the n strings of parts. */
char *mh_cursor_encode(const char *const *parts, size_t n);

/*
 * Decodes a cursor of exactly n strings: a new array (the strings are its items), or
 * NULL when cursor is longer than MH_CURSOR_MAX, not base64, not JSON, or not an array
 * of n strings.
 */
json_t *mh_cursor_decode(const char *cursor, size_t n);

#endif
