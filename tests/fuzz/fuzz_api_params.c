/*
 * fuzz_api_params.c — fuzz target for mailhook-api's request parsing (api/params.c).
 * The first input byte picks what the rest is:
 *   0  a query string, parsed against every parameter name the API knows
 *   1  a path segment, decoded and read as an address; and as a raw record's
 *      {partition}/{offset} (api/raw_ref.c)
 *   2  a cursor, decoded (and, when valid, encoded again: it must round-trip)
 *   3  a tenant and an address split at the first NUL, encoded as a cursor and decoded
 *   4  a since/until time, as the event log reads it
 *   5  a bearer token entry ("TOKEN [TENANTS]"), then the token presented: it must be
 *      found, and an error about an entry never quotes its token
 * Besides memory errors (ASan, UBSan), it aborts when a parser hands out text that is
 * not what params.h promises: UTF-8 without NUL, within its bound, normalized.
 *
 * Built like the other targets (tests/fuzz/CMakeLists.txt); its seeds are the files of
 * tests/fuzz/corpus/api_params, each already carrying its selector byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mailhook/api_tokens.h"
#include "mailhook/timeutil.h"
#include "params.h"
#include "raw_ref.h"

#define CHECK(cond) \
    do {            \
        if (!(cond)) abort(); \
    } while (0)

static int is_text(const char *s)
{
    return s && api_text_valid(s, strlen(s));
}

static void fuzz_query(const char *in)
{
    static const char *const names[] = {"tenant", "reason", "cursor", "limit", "type", "recipient",
                                        "message_id", "source", "provider", "since", "until",
                                        NULL};
    struct api_query q = {0};
    char err[256];
    if (api_query_parse(&q, in, names, err, sizeof(err)) == 0) {
        for (const char *const *n = names; *n; n++) {
            const char *v = api_query_get(&q, *n);
            if (!v) continue;
            CHECK(is_text(v));
            CHECK(strlen(v) <= (!strcmp(*n, "cursor")       ? MH_CURSOR_MAX
                                : !strcmp(*n, "message_id") ? API_MESSAGE_ID_MAX
                                                            : API_PARAM_MAX));
        }
        long limit;
        if (api_parse_limit(api_query_get(&q, "limit"), 7, 100, &limit) == 0)
            CHECK(limit >= 1 && limit <= 100);
    } else {
        CHECK(is_text(err));
    }
    api_query_clear(&q);
}

/* A {partition}/{offset} read is the path's digits: printed again, it reads the same. */
static void fuzz_raw_ref(const char *in)
{
    struct api_raw_ref ref;
    char err[256], again[64];
    if (api_raw_ref_parse(in, &ref, err, sizeof(err)) < 0) {
        CHECK(is_text(err));
        return;
    }
    CHECK(ref.partition >= 0 && ref.offset >= 0 && ref.offset < INT64_MAX);
    CHECK(strspn(in, "0123456789/") == strlen(in));
    snprintf(again, sizeof(again), "%d/%lld", (int)ref.partition, (long long)ref.offset);
    struct api_raw_ref ref2;
    CHECK(api_raw_ref_parse(again, &ref2, err, sizeof(err)) == 0);
    CHECK(ref2.partition == ref.partition && ref2.offset == ref.offset);
}

static void fuzz_path(const char *in)
{
    fuzz_raw_ref(in);
    char *seg = api_path_segment(in, 4 * SUPP_ADDRESS_MAX);
    if (!seg) return;
    CHECK(is_text(seg) && *seg);
    char *addr = api_address(seg);
    if (addr) {
        CHECK(is_text(addr) && strlen(addr) <= SUPP_ADDRESS_MAX && strchr(addr, '@'));
        char *again = api_address(addr); /* normalized stays normalized */
        CHECK(again && !strcmp(again, addr));
        free(again);
    }
    free(addr);
    free(seg);
}

static void fuzz_cursor(const char *in)
{
    char *tenant, *address;
    if (api_list_cursor_decode(in, &tenant, &address) < 0) {
        CHECK(!tenant && !address);
        json_decref(mh_cursor_decode(in, 4)); /* the event log's shape */
        return;
    }
    CHECK(is_text(tenant) && is_text(address));
    char *again = api_list_cursor_encode(tenant, address);
    char *t2, *a2;
    CHECK(api_list_cursor_decode(again, &t2, &a2) == 0);
    CHECK(!strcmp(t2, tenant) && !strcmp(a2, address));
    free(t2);
    free(a2);
    free(again);
    free(tenant);
    free(address);
}

static void fuzz_roundtrip(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    const char *t = (const char *)data, *a = nul ? (const char *)nul + 1 : "";
    size_t alen = nul ? size - tlen - 1 : 0;
    if (!api_text_valid(t, tlen) || !api_text_valid(a, alen)) return;
    char *tenant = strndup(t, tlen), *address = strndup(a, alen);
    char *cur = api_list_cursor_encode(tenant, address);
    /* A page boundary at the longest tenant and address still makes a usable cursor. */
    if (tlen <= MH_TENANT_MAX && alen <= SUPP_ADDRESS_MAX) CHECK(strlen(cur) <= MH_CURSOR_MAX);
    char *t2, *a2;
    if (strlen(cur) <= MH_CURSOR_MAX) {
        CHECK(api_list_cursor_decode(cur, &t2, &a2) == 0);
        CHECK(!strcmp(t2, tenant) && !strcmp(a2, address));
        free(t2);
        free(a2);
    }
    free(cur);
    free(tenant);
    free(address);
}

static void fuzz_token_entry(const char *in)
{
    struct mh_config cfg = {0};
    char err[256];
    size_t skip = strspn(in, " \t\r\n"), len = strcspn(in + skip, " \t\r\n");
    char *token = strndup(in + skip, len);
    if (mh_api_token_add_entry(&cfg, in, err, sizeof(err)) == 0) {
        CHECK(cfg.api.n_tokens == 1);
        CHECK(mh_api_token_find(&cfg, token, len) == &cfg.api.tokens[0]);
        CHECK(!mh_api_token_find(&cfg, token, len ? len - 1 : 0));
    } else if (len >= 6 && strpbrk(token, "0123456789")) {
        /* (The messages' own words hold no digit, their numbers are under 6 characters.) */
        CHECK(!strstr(err, token));
    }
    free(token);
    mh_api_tokens_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 6;
    data++, size--;
    if (mode == 3) {
        fuzz_roundtrip(data, size);
        return 0;
    }
    char *in = malloc(size + 1);
    memcpy(in, data, size);
    in[size] = '\0';
    int64_t ms;
    if (mode == 0) fuzz_query(in);
    else if (mode == 1) fuzz_path(in);
    else if (mode == 2) fuzz_cursor(in);
    else if (mode == 4) (void)mh_time_parse(in, &ms);
    else fuzz_token_entry(in);
    free(in);
    return 0;
}

/* The corpus files carry their selector byte already: each is one input as it is. */
unsigned mh_fuzz_variants(void)
{
    return 1;
}

size_t mh_fuzz_seed(const uint8_t *file, size_t len, unsigned variant, uint8_t *out, size_t cap)
{
    (void)variant;
    size_t n = len < cap ? len : cap;
    memcpy(out, file, n);
    return n;
}
