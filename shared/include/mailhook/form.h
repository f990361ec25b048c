/*
 * form.h — an application/x-www-form-urlencoded body, decoded strictly: a NUL byte, a
 * "%00" escape, an unparseable pair or a repeated key is refused, since each could make
 * two parties read one body two ways (a signature over the form must mean one thing).
 * libevent does the parsing (evhttp_parse_query_str: values percent-decoded, '+' as a
 * space; keys through evhttp_uridecode).
 */
#ifndef MH_FORM_H
#define MH_FORM_H

#include <stddef.h>
#include <sys/queue.h> /* TAILQ_*, before libevent's fallback macros */

#include <event2/keyvalq_struct.h>

#define MH_FORM_MAX_PARAMS 64 /* providers send one or a few; not thousands */

struct mh_form_param {
    char *key;         /* percent-decoded (may hold any byte but NUL) */
    size_t key_len;
    const char *value; /* percent-decoded, borrowed from the form */
};

struct mh_form {
    struct evkeyvalq q;
    struct mh_form_param params[MH_FORM_MAX_PARAMS];
    size_t n;          /* params sorted by key in byte order, keys unique */
};

/*
 * Decodes body into f. 0, or -1 with err (f is then empty, but mh_form_free must still
 * be called).
 */
int mh_form_decode(const unsigned char *body, size_t len, struct mh_form *f, char *err,
                   size_t errlen);
/* The decoded value of the parameter named key, or NULL. */
const char *mh_form_get(const struct mh_form *f, const char *key);
void mh_form_free(struct mh_form *f);

#endif
