/*
 * form.c — strict decoding of form-encoded bodies (form.h).
 */
#include "mailhook/form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "mailhook/log.h"

void mh_form_free(struct mh_form *f)
{
    for (size_t i = 0; i < f->n; i++) free(f->params[i].key);
    evhttp_clear_headers(&f->q);
    f->n = 0;
}

static int cmp_param(const void *a, const void *b)
{
    const struct mh_form_param *pa = a, *pb = b;
    size_t n = pa->key_len < pb->key_len ? pa->key_len : pb->key_len;
    int c = memcmp(pa->key, pb->key, n);
    return c ? c : (pa->key_len > pb->key_len) - (pa->key_len < pb->key_len);
}

int mh_form_decode(const unsigned char *body, size_t len, struct mh_form *f, char *err,
                   size_t errlen)
{
    TAILQ_INIT(&f->q);
    f->n = 0;
    if (memchr(body, '\0', len)) {
        snprintf(err, errlen, "form body holds a NUL byte");
        return -1;
    }
    char *text = mh_strndup((const char *)body, len);
    int bad_escape = strstr(text, "%00") != NULL;
    int rc = bad_escape ? -1 : evhttp_parse_query_str(text, &f->q);
    free(text);
    if (bad_escape) {
        snprintf(err, errlen, "form body holds an escaped NUL (%%00)");
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "body is not application/x-www-form-urlencoded");
        return -1;
    }
    for (struct evkeyval *kv = f->q.tqh_first; kv; kv = kv->next.tqe_next) {
        if (f->n == MH_FORM_MAX_PARAMS) {
            snprintf(err, errlen, "form body has more than %d parameters", MH_FORM_MAX_PARAMS);
            goto fail;
        }
        size_t klen = 0;
        char *key = evhttp_uridecode(kv->key, 1, &klen);
        if (!key) mh_oom();
        f->params[f->n++] = (struct mh_form_param){key, klen, kv->value};
    }
    qsort(f->params, f->n, sizeof(f->params[0]), cmp_param);
    for (size_t i = 1; i < f->n; i++) {
        if (!cmp_param(&f->params[i - 1], &f->params[i])) {
            snprintf(err, errlen, "form parameter repeated");
            goto fail;
        }
    }
    return 0;
fail:
    mh_form_free(f);
    return -1;
}

const char *mh_form_get(const struct mh_form *f, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < f->n; i++)
        if (f->params[i].key_len == klen && !memcmp(f->params[i].key, key, klen))
            return f->params[i].value;
    return NULL;
}
