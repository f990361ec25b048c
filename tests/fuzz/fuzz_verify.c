/*
 * fuzz_verify.c — fuzz target for every provider's verify: the code ingest runs on
 * untrusted requests before anything is published.
 *
 * Input: byte 0 picks the source (one per provider, configured once from
 * tests/fuzz/verify.ini.in, keys and certificates from tests/unit and tests/fuzz), byte 1
 * the method (POST, HEAD, GET; bit 2: a URL token that holds the secret); then
 * "name: value" header lines up to an empty line; the rest is the body. The target checks what must hold for any input: a verdict in range, an
 * error message whenever the verdict is not OK, and no secret in that message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mailhook/config.h"
#include "mailhook/log.h"
#include "mailhook/headers.h"
#include "mailhook/provider.h"

/* The secret every source of verify.ini is configured with. */
#define FUZZ_SECRET "fuzz-secret-7c1e"

static struct mh_config *cfg;

static struct mh_config *load_config(void)
{
    char err[1024];
    /* Log lines cost more than verify itself; the log writer is not under test here. */
    mh_log_threshold = MH_LOG_OFF;
    struct mh_config *c = mh_config_load(MH_FUZZ_VERIFY_INI, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "fuzz_verify: %s\n", err);
        abort();
    }
    return c;
}

/* Splits "name: value" lines off the front of data until an empty line. */
static size_t read_headers(const uint8_t *data, size_t size, struct mh_headers *h)
{
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size;
        if (end == pos) return end + 1; /* the empty line */
        const uint8_t *colon = memchr(data + pos, ':', end - pos);
        if (colon) {
            size_t nlen = (size_t)(colon - (data + pos));
            const uint8_t *v = colon + 1;
            while (v < data + end && *v == ' ') v++;
            char *name = strndup((const char *)data + pos, nlen);
            char *value = strndup((const char *)v, (size_t)(data + end - v));
            /* A NUL inside a line ends that string, as an HTTP parser would refuse it. */
            mh_headers_add(h, name, value);
            free(name);
            free(value);
        }
        if (!nl) return size;
        pos = end + 1;
    }
    return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) cfg = load_config();
    if (size < 2 || cfg->n_sources == 0) return 0;
    struct mh_source *src = cfg->sources[data[0] % cfg->n_sources];
    static const char *const methods[] = {"POST", "HEAD", "GET"};
    const char *method = methods[data[1] % 3];
    const char *uri = (data[1] & 4) ? "/v1/webhooks/fuzz?token=" FUZZ_SECRET : "/v1/webhooks/fuzz";
    data += 2;
    size -= 2;

    struct mh_headers h = {0};
    size_t body_at = read_headers(data, size, &h);
    /* The body in a buffer of its own, so a read past its end is caught. */
    size_t body_len = size - body_at;
    unsigned char *body = malloc(body_len ? body_len : 1);
    if (body_len) memcpy(body, data + body_at, body_len);
    struct mh_request req = {
        .method = method,
        .uri = uri,
        .headers = &h,
        .body = body,
        .body_len = body_len,
        .now_ms = 1767225600000,
    };
    char err[512] = "";
    enum mh_verdict v = src->provider->verify(src, &req, err, sizeof(err));
    if (v != MH_VERIFY_OK && v != MH_VERIFY_MALFORMED && v != MH_VERIFY_REJECT &&
        v != MH_VERIFY_RETRY && v != MH_VERIFY_ACK)
        __builtin_trap();
    if ((v == MH_VERIFY_MALFORMED || v == MH_VERIFY_REJECT) && !err[0]) __builtin_trap();
    /* A secret in an error message, unless the request itself carried it (an error may
     * quote what the request said). */
    if (strstr(err, FUZZ_SECRET) && !memmem(data - 2, size + 2, FUZZ_SECRET, strlen(FUZZ_SECRET)) &&
        !(data[-1] & 4))
        __builtin_trap();
    free(body);
    mh_headers_clear(&h);
    return 0;
}

/* Seeds: for each source, a POST of the file as its body with the headers the
 * provider's signature lives in (values that do not verify: a mutation starts near). */
unsigned mh_fuzz_variants(void)
{
    if (!cfg) cfg = load_config();
    return (unsigned)cfg->n_sources;
}

size_t mh_fuzz_seed(const uint8_t *file, size_t len, unsigned variant, uint8_t *out, size_t cap)
{
    static const char headers[] =
        "content-type: application/json\n"
        "x-maildog-signature: 00\n"
        "x-ivymail-signature: 00\n"
        "x-getmailer-signature: 00\n"
        "x-postal-signature: AA==\n"
        "x-twilio-email-event-webhook-signature: AA==\n"
        "x-twilio-email-event-webhook-timestamp: 1767225600\n"
        "x-mandrill-signature: AA==\n"
        "webhook-id: msg_1\n"
        "webhook-timestamp: 1767225600\n"
        "webhook-signature: v1,AA==\n"
        "svix-id: msg_1\n"
        "svix-timestamp: 1767225600\n"
        "svix-signature: v1,AA==\n"
        "signature: 00\n"
        "authorization: Basic Zm9vOmJhcg==\n"
        "x-amz-sns-message-type: Notification\n"
        "\n";
    size_t hl = sizeof(headers) - 1;
    if (cap < 2 + hl) return 0;
    out[0] = (uint8_t)variant;
    out[1] = 0; /* POST, no URL token */
    memcpy(out + 2, headers, hl);
    size_t n = len < cap - 2 - hl ? len : cap - 2 - hl;
    memcpy(out + 2 + hl, file, n);
    return 2 + hl + n;
}
