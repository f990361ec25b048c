/*
 * fuzz_decoders.c — fuzz target for the decoders every signature check leans on: hex
 * and base64 (mailhook/crypto.h) and form bodies (mailhook/form.h). Byte 0 picks the
 * decoder; the rest is its input. Checked for any input: no read or write outside the
 * buffers (sanitizers); hex and base64: a result within the output's capacity, and what
 * decodes re-encodes to a string that decodes to the same bytes; forms: at most
 * MH_FORM_MAX_PARAMS parameters, keys without NUL, unique and sorted, each found again
 * by mh_form_get.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fuzz.h"
#include "mailhook/crypto.h"
#include "mailhook/form.h"

static void check_hex(const uint8_t *in, size_t len)
{
    size_t cap = len / 2 + 1;
    unsigned char *out = malloc(cap);
    ssize_t n = mh_hex_decode((const char *)in, len, out, cap);
    if (n > (ssize_t)cap) __builtin_trap();
    if (n >= 0) {
        char *again = malloc(2 * (size_t)n + 1);
        mh_hex_encode(out, (size_t)n, again);
        unsigned char *back = malloc((size_t)n + 1);
        ssize_t m = mh_hex_decode(again, 2 * (size_t)n, back, (size_t)n + 1);
        if (m != n || memcmp(back, out, (size_t)n) != 0) __builtin_trap();
        free(back);
        free(again);
    }
    free(out);
}

static void check_b64(const uint8_t *in, size_t len)
{
    size_t cap = len / 4 * 3 + 3;
    unsigned char *out = malloc(cap);
    ssize_t n = mh_b64_decode((const char *)in, len, out, cap);
    if (n > (ssize_t)cap) __builtin_trap();
    if (n >= 0) {
        char *again = malloc(4 * ((size_t)n / 3 + 1) + 1);
        size_t elen = mh_b64_encode(out, (size_t)n, again);
        unsigned char *back = malloc((size_t)n + 3);
        ssize_t m = mh_b64_decode(again, elen, back, (size_t)n + 3);
        if (m != n || memcmp(back, out, (size_t)n) != 0) __builtin_trap();
        free(back);
        free(again);
    }
    free(out);
}

static void check_form(const uint8_t *in, size_t len)
{
    struct mh_form f;
    char err[256];
    if (mh_form_decode(in, len, &f, err, sizeof(err)) == 0) {
        if (f.n > MH_FORM_MAX_PARAMS) __builtin_trap();
        for (size_t i = 0; i < f.n; i++) {
            const struct mh_form_param *p = &f.params[i];
            if (strlen(p->key) != p->key_len || !p->value) __builtin_trap();
            if (i > 0) {
                const struct mh_form_param *q = &f.params[i - 1];
                size_t n = q->key_len < p->key_len ? q->key_len : p->key_len;
                int c = memcmp(q->key, p->key, n);
                if (c > 0 || (c == 0 && q->key_len >= p->key_len)) __builtin_trap();
            }
            if (mh_form_get(&f, p->key) != p->value) __builtin_trap();
        }
    } else if (!err[0]) {
        __builtin_trap();
    }
    mh_form_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    /* The decoders take (pointer, length): the input in a buffer of exactly that size. */
    uint8_t *in = malloc(size - 1 ? size - 1 : 1);
    memcpy(in, data + 1, size - 1);
    switch (data[0] % 3) {
    case 0: check_hex(in, size - 1); break;
    case 1: check_b64(in, size - 1); break;
    default: check_form(in, size - 1); break;
    }
    free(in);
    return 0;
}

unsigned mh_fuzz_variants(void)
{
    return 3;
}

size_t mh_fuzz_seed(const uint8_t *file, size_t len, unsigned variant, uint8_t *out, size_t cap)
{
    if (cap == 0) return 0;
    out[0] = (uint8_t)variant;
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(out + 1, file, n);
    return n + 1;
}
