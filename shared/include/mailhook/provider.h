/*
 * provider.h — the provider plugin interface.
 *
 * A *provider* (IvyMail, Postal, the generic HMAC scheme, ...) is static code: one file
 * under shared/providers/ exporting one `const struct mh_provider mh_provider_NAME`,
 * registered by one MH_PROVIDER(NAME) line in shared/providers/providers.def (adding a
 * provider: docs/providers/README.md). A *source* (config section [source.NAME]) is a
 * configured instance of a provider with its own tenant, secrets and options.
 *
 * verify runs in mailhook-ingest on the raw bytes and headers, before anything is
 * published. parse runs in mailhook-worker (and in replay) and is a pure function of
 * the raw record: no I/O, no config, no clock — so it can be unit-tested, fuzzed and
 * re-run over years-old Kafka records with the same result.
 */
#ifndef MH_PROVIDER_H
#define MH_PROVIDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "mailhook/headers.h"

struct mh_option_def;
struct mh_source;

enum mh_verdict {
    MH_VERIFY_OK = 0,    /* authentic: publish it */
    MH_VERIFY_MALFORMED, /* verification impossible (400) */
    MH_VERIFY_REJECT,    /* missing/invalid signature, stale timestamp, wrong key (401) */
    MH_VERIFY_RETRY,     /* transient: could not decide now (503) */
    MH_VERIFY_ACK,       /* the provider checking the URL with a request that carries no
                          * event (e.g. signed with a key it publishes): 200, publish nothing */
};

/* What ingest hands to verify. Everything is borrowed for the duration of the call. */
struct mh_request {
    const char *method;
    const char *uri;  /* path and query as received, e.g. "/v1/webhooks/x?token=..." */
    const struct mh_headers *headers;
    const unsigned char *body;
    size_t body_len;
    int64_t now_ms;   /* wall clock, for timestamp tolerance checks */
    /*
     * out, only read with MH_VERIFY_ACK: what a provider's URL check wants back (Event
     * Grid's validation code, its WebHook-Allowed-Origin). Both are NULL outside ingest.
     * reply_headers gets headers to add to the 200; *reply_body may be set to a malloc'd
     * JSON text ingest answers with instead of its own (and frees).
     */
    struct mh_headers *reply_headers;
    char **reply_body;
};

/* What the worker hands to parse: one record of mailhook.raw. Borrowed. */
struct mh_raw {
    const char *source;
    const char *provider;
    const char *tenant;
    const struct mh_headers *headers; /* the record's Kafka headers */
    const unsigned char *body;
    size_t body_len;
    int64_t received_ms; /* mh-received-at */
    const char *topic;
    int32_t partition;
    int64_t offset;
};

/* What `mailhook sign` hands to a provider's sign. */
struct mh_sign_req {
    const unsigned char *body;
    size_t body_len;
    int64_t now_ms;
    const char *private_key_file; /* --key, for schemes signed with a private key */
    struct mh_headers *headers;   /* out: headers that make the request verify */
    char *url;                    /* in/out: the target URL; a scheme may extend it */
    size_t url_cap;
    /*
     * out: a scheme that signs inside the body (SNS, Mailgun) sets a malloc'd body to post
     * instead of body; the caller frees it. NULL: post body as it is.
     */
    unsigned char *new_body;
    size_t new_body_len;
};

struct mh_provider {
    const char *name;
    /*
     * The options its [source.NAME] sections may set, typed (provider_options.h); the
     * table ends with a row whose name is NULL. NULL: none.
     */
    const struct mh_option_def *options;
    /* Request headers copied onto the raw record (besides mailhook's own), NULL-terminated. */
    const char *const *forward_headers;
    /* 1 when a source of this provider must have at least one secret. */
    int needs_secret;
    /*
     * 1 when the provider checks a webhook URL with an unsigned HEAD before it sends to it
     * (Mandrill): ingest answers HEAD on an enabled source with 200, publishes nothing and
     * never calls verify. 0: HEAD gets 405 like any other method but POST.
     */
    int answers_head;
    /*
     * 1 for a generic provider (hmac, standard), whose event ids are unique only per
     * sender: its events are deduplicated per source, not per provider (dedup_scope.h).
     */
    int dedup_per_source;
    /*
     * 1 when the provider checks a webhook URL with OPTIONS (CloudEvents webhook abuse
     * protection, Event Grid): ingest hands OPTIONS on an enabled source to verify (method
     * "OPTIONS", empty body), which answers MH_VERIFY_ACK with its reply headers, or
     * refuses. Anything but ACK is never published. 0: OPTIONS gets 405.
     */
    int answers_options;
    /* Optional: validate options, load keys; may set src->state. 0 or -1 with err. */
    int (*init)(struct mh_source *src, char *err, size_t errlen);
    /* Optional: free src->state. */
    void (*fini)(struct mh_source *src);
    enum mh_verdict (*verify)(const struct mh_source *src, const struct mh_request *req,
                              char *err, size_t errlen);
    /*
     * Appends zero or more canonical events (json objects built with event.h) to the
     * array events. Returns 0, or -1 with a reason in err when the record cannot be
     * parsed (it then goes to the dead-letter topic; events may be left partly filled
     * and are discarded by the caller).
     */
    int (*parse)(const struct mh_raw *raw, json_t *events, char *err, size_t errlen);
    /*
     * Produces what the provider itself would send with body (signature headers, a URL
     * token, Basic credentials, or a re-signed body), so test requests can be made by
     * hand. 0, or -1 with err.
     */
    int (*sign)(const struct mh_source *src, struct mh_sign_req *sr, char *err, size_t errlen);
};

/* The registry: NULL-terminated, in providers.def's order (provider_registry.c). */
extern const struct mh_provider *const mh_providers[];

const struct mh_provider *mh_provider_find(const char *name);

#endif
