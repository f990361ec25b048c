/*
 * provider_test.h — helpers for the test_verify_<provider>.c tests: a source built the
 * way production builds it (an INI file through mh_config_load, so option validation
 * and provider init run), temporary key files, and requests.
 *
 * Header-only (static inline) so each test executable stays one file.
 */
#ifndef MH_PROVIDER_TEST_H
#define MH_PROVIDER_TEST_H

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mailhook/config.h"
#include "mailhook/crypto.h"
#include "mailhook/headers.h"
#include "mailhook/provider.h"

/* Writes content to a new temporary file; returns its path (caller unlinks and frees). */
static inline char *pt_temp_file(const char *content)
{
    char *path = strdup("/tmp/mailhook-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static inline void pt_remove(char *path)
{
    if (!path) return;
    unlink(path);
    free(path);
}

/* Loads ini as a config file; NULL with err when mh_config_load refuses it. */
static inline struct mh_config *pt_config_try(const char *ini, char *err, size_t errlen)
{
    char *path = pt_temp_file(ini);
    struct mh_config *cfg = mh_config_load(path, err, errlen);
    pt_remove(path);
    return cfg;
}

/* Loads ini, which must be valid; the test fails with the loader's message otherwise. */
static inline struct mh_config *pt_config(const char *ini)
{
    char err[512] = "";
    struct mh_config *cfg = pt_config_try(ini, err, sizeof(err));
    if (!cfg) print_error("config refused: %s\n", err);
    assert_non_null(cfg);
    return cfg;
}

/* 1 when mh_config_load refuses ini with an error containing want. */
static inline int pt_config_fails_with(const char *ini, const char *want)
{
    char err[512] = "";
    struct mh_config *cfg = pt_config_try(ini, err, sizeof(err));
    if (cfg) {
        mh_config_free(cfg);
        print_error("config accepted, expected an error containing \"%s\"\n", want);
        return 0;
    }
    if (!strstr(err, want)) print_error("error \"%s\" lacks \"%s\"\n", err, want);
    return strstr(err, want) != NULL;
}

struct pt_request {
    struct mh_headers headers;
    struct mh_request req;
    char err[512];
};

static inline void pt_request_init(struct pt_request *r, const char *uri, const void *body,
                                   size_t len, int64_t now_ms)
{
    memset(r, 0, sizeof(*r));
    r->req.method = "POST";
    r->req.uri = uri;
    r->req.headers = &r->headers;
    r->req.body = body;
    r->req.body_len = len;
    r->req.now_ms = now_ms;
}

static inline void pt_request_free(struct pt_request *r)
{
    mh_headers_clear(&r->headers);
}

/* Runs the source's verify on r. */
static inline enum mh_verdict pt_verify(const struct mh_source *src, struct pt_request *r)
{
    r->err[0] = '\0';
    return src->provider->verify(src, &r->req, r->err, sizeof(r->err));
}

/* HMAC of body with secret, hex (out: 2*MH_MAX_MD+1) or base64 (out: 4*MH_MAX_MD/3+4). */
static inline void pt_hmac(const char *md, const char *secret, const void *body, size_t len,
                           int base64, char *out)
{
    unsigned char mac[MH_MAX_MD];
    struct mh_buf part = {body, len};
    int n = mh_hmac(md, secret, strlen(secret), &part, 1, mac);
    assert_true(n > 0);
    if (base64) mh_b64_encode(mac, (size_t)n, out);
    else mh_hex_encode(mac, (size_t)n, out);
}

/* The one event provider's parse makes of body (caller decrefs); fails the test else. */
static inline json_t *pt_parse_one(const char *provider, const char *body)
{
    struct mh_headers h = {0};
    struct mh_raw raw = {.source = "src", .provider = provider, .tenant = "acme", .headers = &h,
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL};
    json_t *events = json_array();
    char err[256] = "";
    int rc = mh_provider_find(provider)->parse(&raw, events, err, sizeof(err));
    if (rc != 0) print_error("%s: %s\n", provider, err);
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(events), 1);
    json_t *ev = json_incref(json_array_get(events, 0));
    json_decref(events);
    return ev;
}

/* ev[key][sub] as a string (sub NULL: ev[key]), or NULL. */
static inline const char *pt_str(json_t *ev, const char *key, const char *sub)
{
    json_t *v = json_object_get(ev, key);
    if (sub) v = json_object_get(v, sub);
    return json_string_value(v);
}

#endif
