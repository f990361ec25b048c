/*
 * http.c — mailhook-api's HTTP front: routing, bearer-token auth, parameters and
 * JSON replies. docs/api.md is the reference.
 *
 *   GET    /v1/suppressions/{address}?tenant=      may I send? 200 state | 404
 *   GET    /v1/suppressions?tenant=&reason=&cursor=&limit=
 *   POST   /v1/suppressions                        {"tenant", "address", "reason"?}
 *   DELETE /v1/suppressions/{address}?tenant=
 *   GET    /v1/events?tenant=&type=&recipient=&message_id=&source=&provider=&since=&until=
 *                     &limit=&cursor=
 *   GET    /v1/messages/{message_id}/events?tenant=&source=&provider=&limit=&cursor=
 *   GET    /v1/dlq?limit=&source=&tenant=&before=  dead letters, newest first (dlq.c)
 *   GET    /v1/raw/{partition}/{offset}?topic=    one raw record, body and ingest headers (raw.c)
 *   POST   /v1/dlq/replays   GET /v1/dlq/replays/{id}   replays of raw records (replays.c)
 *   GET    /v1/sources/stats?range=&step=          per-source series (sources_stats.c)
 *   GET    /healthz  /readyz  /metrics             (no token needed)
 *   GET    /console/...                            the console's static files (console.c)
 *
 * Every /v1 request needs "Authorization: Bearer <token>" with one of the [api] tokens
 * (api_tokens.h: compared as keyed digests in constant time; never logged), and acts
 * for a tenant that token may act for (else 403); asking across tenants (no tenant)
 * needs an operator token. Parameters are parsed by params.c. Unknown parameters are
 * errors, as are unknown body fields: a typo must not silently widen a query or drop a
 * change. Errors are {"error": "..."} with the matching status. Requests are parsed and
 * answered on the libevent loop; their database part runs on the pool ([api] db_connections
 * threads, each with its own PostgreSQL connection; pool.c), so one slow query never
 * holds up the "may I send?" lookups behind it.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "console.h"
#include "endpoint.h"
#include "params.h"
#include "pool.h"
#include "server.h"
#include "store.h"
#include "mailhook/api_tokens.h"
#include "mailhook/log.h"

struct api_server {
    const struct mh_config *cfg;
    struct api_pool *pool;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct api_stats stats;
    struct api_replays *replays; /* replays.c */
    struct api_scraper *scraper; /* scrape.c */
};

/* ---- replies ---------------------------------------------------------------------------- */

/* Sends body (stolen) as JSON with code. */
static void reply(struct api_server *s, struct evhttp_request *req, int code, json_t *body)
{
    struct evbuffer *buf = evbuffer_new();
    /* Every string in a reply is checked text, so only a missing body can fail here. */
    char *txt = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!txt) {
        code = 500;
        txt = mh_strdup("{\"error\":\"internal error\"}");
    }
    evbuffer_add(buf, txt, strlen(txt));
    evbuffer_add(buf, "\n", 1);
    free(txt);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, NULL, buf);
    evbuffer_free(buf);
    if (code < 300) s->stats.ok++;
    else if (code == 404) s->stats.not_found++;
    else if (code < 500) s->stats.client_errors++;
    else s->stats.server_errors++;
}

static void reply_error(struct api_server *s, struct evhttp_request *req, int code,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reply_error(struct api_server *s, struct evhttp_request *req, int code,
                        const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *body = json_pack("{ss}", "error", msg);
    /* A message cut inside a UTF-8 sequence is no JSON string: say less, not nothing. */
    reply(s, req, code, body ? body : json_pack("{ss}", "error", "bad request"));
}

/* PostgreSQL (or Kafka) trouble: logged in full, answered 503 so the client retries. */
static void reply_unavailable(struct api_server *s, struct evhttp_request *req, const char *err)
{
    const char *uri = evhttp_request_get_uri(req);
    mh_warn("%s %s: %s", evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET" : "write",
            uri ? uri : "?", err);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    reply_error(s, req, 503, "%s", err);
}

/* ---- parameters (parsed by params.c) ------------------------------------------------------ */

/* The query string, checked against allowed; 0, or -1 after replying 400. */
static int params_parse(struct api_server *s, struct evhttp_request *req, struct api_query *p,
                        const char *const *allowed)
{
    char err[256];
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (api_query_parse(p, query, allowed, err, sizeof(err)) == 0) return 0;
    reply_error(s, req, 400, "%s", err);
    return -1;
}

/* limit=: 0 and the default when absent; -1 after replying 400. */
static int parse_limit(struct api_server *s, struct evhttp_request *req, struct api_query *p,
                       long *limit)
{
    if (api_parse_limit(api_query_get(p, "limit"), s->cfg->api.default_limit,
                        s->cfg->api.max_limit, limit) == 0)
        return 0;
    reply_error(s, req, 400, "limit: a whole number from 1 to %ld", s->cfg->api.max_limit);
    return -1;
}

/*
 * May the request's token act for tenant (NULL: every tenant)? 0, or -1 after replying
 * 403. The token's tenants are not listed: a client learns only about its own request.
 */
static int may_act_for(struct api_server *s, struct evhttp_request *req,
                       const struct mh_api_token *tok, const char *tenant)
{
    if (mh_api_token_allows(tok, tenant)) return 0;
    s->stats.forbidden++;
    if (tenant)
        reply_error(s, req, 403, "this token may not act for tenant \"%s\"", tenant);
    else
        reply_error(s, req, 403, "tenant: required (only an operator token may ask across "
                                 "tenants)");
    return -1;
}

/* tenant= is required and must be one the token may act for; -1 after replying. */
static int need_tenant(struct api_server *s, struct evhttp_request *req, struct api_query *p,
                       const struct mh_api_token *tok, const char **tenant)
{
    *tenant = api_query_get(p, "tenant");
    if (!*tenant) {
        reply_error(s, req, 400, "tenant: required");
        return -1;
    }
    return may_act_for(s, req, tok, *tenant);
}

/* The address of a path segment (new string); NULL after replying 400. */
static char *path_address(struct api_server *s, struct evhttp_request *req, const char *seg)
{
    /* Percent-encoding triples a byte at most; surrounding white space is trimmed. */
    char *dec = api_path_segment(seg, 4 * SUPP_ADDRESS_MAX);
    char *addr = api_address(dec);
    free(dec);
    if (!addr)
        reply_error(s, req, 400, "not an email address (at most %d bytes, with an @)",
                    SUPP_ADDRESS_MAX);
    return addr;
}

/* ---- calls: the database part runs on the pool ------------------------------------------ */

/*
 * One request handed to the pool. Everything the pool thread reads is in `in` (checked
 * and copied on the loop thread); the evhttp request is touched on the loop thread only.
 */
struct call {
    struct api_job job; /* first: the pool hands it back */
    struct api_server *s;
    struct evhttp_request *req;
    void (*work)(struct call *c, struct supp_store *st);
    json_t *in;
    int code;           /* reply status; 0 = PostgreSQL or Kafka failed, see err */
    json_t *out;        /* reply body */
    char err[1024];
};

static const char *in_str(const struct call *c, const char *key)
{
    return json_string_value(json_object_get(c->in, key));
}

static void call_run(struct api_job *job, struct supp_store *st)
{
    struct call *c = (struct call *)job;
    c->work(c, st);
}

static void call_done(struct api_job *job)
{
    struct call *c = (struct call *)job;
    if (c->code) {
        reply(c->s, c->req, c->code, c->out);
        c->out = NULL;
    } else {
        reply_unavailable(c->s, c->req, c->err);
    }
    json_decref(c->out);
    json_decref(c->in);
    free(c);
}

/* Hands work with its inputs (stolen) to the pool; 503 when the pool is full. */
static void call_submit(struct api_server *s, struct evhttp_request *req,
                        void (*work)(struct call *c, struct supp_store *st), json_t *in)
{
    struct call *c = mh_calloc(1, sizeof(*c));
    c->job.run = call_run;
    c->job.done = call_done;
    c->s = s;
    c->req = req;
    c->work = work;
    c->in = in;
    if (api_pool_submit(s->pool, &c->job) < 0) {
        s->stats.overloaded++;
        json_decref(in);
        free(c);
        reply_unavailable(s, req, "too many requests waiting for the database");
    }
}

/* ---- handlers: parameters are checked here, on the loop thread ----------------------------- */

static void work_lookup(struct call *c, struct supp_store *st)
{
    json_t *state = NULL;
    int rc = supp_lookup(st, in_str(c, "tenant"), in_str(c, "address"), &state, c->err,
                         sizeof(c->err));
    if (rc < 0) return;
    if (rc == 0) {
        c->code = 404;
        c->out = json_pack("{sOsOsbss}", "tenant", json_object_get(c->in, "tenant"), "address",
                           json_object_get(c->in, "address"), "suppressed", 0, "error",
                           "not suppressed");
        return;
    }
    json_object_set_new(state, "suppressed", json_true());
    c->code = 200;
    c->out = state;
}

/* Writes the one op in c->in["ops"]; answers the address's state afterwards. */
static void work_write(struct call *c, struct supp_store *st)
{
    json_t *states = NULL;
    if (supp_write(st, json_object_get(c->in, "ops"), "api", &states, c->err, sizeof(c->err)) < 0)
        goto out;
    json_t *op = json_array_get(json_object_get(c->in, "ops"), 0);
    json_t *value = json_object_get(json_array_get(states, 0), "value");
    json_t *v = json_is_object(value) ? json_deep_copy(value)
                                      : json_pack("{sOsO}", "tenant", json_object_get(op, "tenant"),
                                                  "address", json_object_get(op, "address"));
    json_object_set_new(v, "suppressed", json_boolean(json_is_object(value)));
    c->code = json_integer_value(json_object_get(c->in, "status"));
    c->out = v;
out:
    json_decref(states);
}

static void submit_write(struct api_server *s, struct evhttp_request *req, int status,
                         const char *tenant, const char *addr, const char *op, const char *reason)
{
    call_submit(s, req, work_write,
                json_pack("{si s[{ssssssss}]}", "status", status, "ops", "tenant", tenant,
                          "address", addr, "op", op, "reason", reason));
}

/* GET or DELETE /v1/suppressions/{address}?tenant=: look the address up, or lift it. */
static void address_request(struct api_server *s, struct evhttp_request *req,
                            const struct mh_api_token *tok, const char *seg, int lift)
{
    static const char *const allowed[] = {"tenant", NULL};
    struct api_query p = {0};
    const char *tenant;
    char *addr = NULL;
    if (params_parse(s, req, &p, allowed) < 0 || need_tenant(s, req, &p, tok, &tenant) < 0 ||
        !(addr = path_address(s, req, seg)))
        goto out;
    if (lift)
        /* A newer suppression than now cannot exist, so the answer is "not suppressed". */
        submit_write(s, req, 200, tenant, addr, "lift", "manual");
    else
        call_submit(s, req, work_lookup, json_pack("{ssss}", "tenant", tenant, "address", addr));
out:
    free(addr);
    api_query_clear(&p);
}

static void post_suppression(struct api_server *s, struct evhttp_request *req,
                             const struct mh_api_token *tok)
{
    static const char *const allowed[] = {NULL};
    struct api_query p = {0};
    char *addr = NULL;
    json_t *body = NULL;
    if (params_parse(s, req, &p, allowed) < 0) goto out;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t jerr;
    body = json_loadb(len ? (const char *)evbuffer_pullup(in, -1) : "", len, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (!body) {
        reply_error(s, req, 400, "body: invalid JSON at line %d column %d: %s", jerr.line,
                    jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(body)) {
        reply_error(s, req, 400, "body: expected a JSON object");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val) {
        if (strcmp(key, "tenant") && strcmp(key, "address") && strcmp(key, "reason")) {
            /* jansson's keys are UTF-8; a long one is cut, which may split a character. */
            reply_error(s, req, 400, "body: unknown field \"%.64s\"", key);
            goto out;
        }
        if (!json_is_string(val)) {
            reply_error(s, req, 400, "body: %s must be a string", key);
            goto out;
        }
    }
    const char *tenant = json_string_value(json_object_get(body, "tenant"));
    const char *address = json_string_value(json_object_get(body, "address"));
    const char *reason = json_string_value(json_object_get(body, "reason"));
    size_t tlen = tenant ? json_string_length(json_object_get(body, "tenant")) : 0;
    if (!tenant || !*tenant) {
        reply_error(s, req, 400, "body: tenant is required");
        goto out;
    }
    if (tlen > MH_TENANT_MAX || strlen(tenant) != tlen) {
        reply_error(s, req, 400, "body: tenant must be text of at most %d bytes", MH_TENANT_MAX);
        goto out;
    }
    if (may_act_for(s, req, tok, tenant) < 0) goto out;
    if (!address || strlen(address) != json_string_length(json_object_get(body, "address")) ||
        !(addr = api_address(address))) {
        reply_error(s, req, 400, "body: address must be an email address (at most %d bytes)",
                    SUPP_ADDRESS_MAX);
        goto out;
    }
    if (!reason) reason = "manual";
    if (!supp_reason_valid(reason)) {
        reply_error(s, req, 400, "body: reason must be bounce, complaint, unsubscribe or manual");
        goto out;
    }
    submit_write(s, req, 201, tenant, addr, "suppress", reason);
out:
    free(addr);
    json_decref(body);
    api_query_clear(&p);
}

static void work_list(struct call *c, struct supp_store *st)
{
    json_t *items = NULL;
    long limit = (long)json_integer_value(json_object_get(c->in, "limit"));
    if (supp_list(st, in_str(c, "tenant"), in_str(c, "reason"), in_str(c, "after"),
                  in_str(c, "after_tenant"), limit + 1, &items, c->err, sizeof(c->err)) < 0)
        return;
    json_t *next = json_null();
    if ((long)json_array_size(items) > limit) {
        json_array_remove(items, (size_t)limit);
        json_t *last = json_array_get(items, (size_t)limit - 1);
        char *cur = api_list_cursor_encode(json_string_value(json_object_get(last, "tenant")),
                                           json_string_value(json_object_get(last, "address")));
        next = json_string(cur);
        free(cur);
    }
    c->code = 200;
    c->out = json_pack("{soso}", "items", items, "next_cursor", next);
}

static void list_suppressions(struct api_server *s, struct evhttp_request *req,
                              const struct mh_api_token *tok)
{
    static const char *const allowed[] = {"tenant", "reason", "cursor", "limit", NULL};
    struct api_query p = {0};
    char *after = NULL, *after_tenant = NULL;
    long limit;
    if (params_parse(s, req, &p, allowed) < 0 || parse_limit(s, req, &p, &limit) < 0) goto out;
    /* Without a tenant: every tenant's, for an operator token only. */
    const char *tenant = api_query_get(&p, "tenant");
    if (may_act_for(s, req, tok, tenant) < 0) goto out;
    const char *reason = api_query_get(&p, "reason");
    if (reason && !supp_reason_valid(reason) && strcmp(reason, "soft_bounce")) {
        reply_error(s, req, 400,
                    "reason: one of bounce, complaint, unsubscribe, manual, soft_bounce");
        goto out;
    }
    /* The cursor is the (tenant, address) of the previous page's last row. */
    const char *cursor = api_query_get(&p, "cursor");
    if (cursor && (api_list_cursor_decode(cursor, &after_tenant, &after) < 0 ||
                   (tenant && strcmp(tenant, after_tenant)))) {
        reply_error(s, req, 400, "cursor: not a cursor this API returned for this list");
        goto out;
    }
    json_t *in = json_pack("{sI}", "limit", (json_int_t)limit);
    if (tenant) json_object_set_new(in, "tenant", json_string(tenant));
    if (reason) json_object_set_new(in, "reason", json_string(reason));
    if (after) {
        json_object_set_new(in, "after", json_string(after));
        json_object_set_new(in, "after_tenant", json_string(after_tenant));
    }
    call_submit(s, req, work_list, in);
out:
    free(after);
    free(after_tenant);
    api_query_clear(&p);
}

static void work_events(struct call *c, struct supp_store *st)
{
    struct eventlog_query q = {
        .tenant = in_str(c, "tenant"),
        .type = in_str(c, "type"),
        .recipient = in_str(c, "recipient"),
        .message_id = in_str(c, "message_id"),
        .source = in_str(c, "source"),
        .provider = in_str(c, "provider"),
        .since = in_str(c, "since"),
        .until = in_str(c, "until"),
        .cursor = in_str(c, "cursor"),
        .limit = (long)json_integer_value(json_object_get(c->in, "limit")),
        .oldest_first = json_is_true(json_object_get(c->in, "timeline")),
    };
    json_t *items = NULL;
    char *next = NULL;
    if (supp_store_ensure(st, c->err, sizeof(c->err)) < 0) return;
    int rc = eventlog_page(st->pg, &q, &items, &next, c->err, sizeof(c->err));
    if (rc == -2) {
        c->code = 400;
        c->out = json_pack("{ss}", "error", c->err);
        return;
    }
    if (rc < 0) return;
    c->out = json_object();
    if (q.oldest_first) json_object_set_new(c->out, "message_id", json_string(q.message_id));
    json_object_set_new(c->out, "items", items);
    json_object_set_new(c->out, "next_cursor", next ? json_string(next) : json_null());
    free(next);
    c->code = 200;
}

static void events_page(struct api_server *s, struct evhttp_request *req,
                        const struct mh_api_token *tok, const char *message_id)
{
    static const char *const log_allowed[] = {"tenant", "type",  "recipient", "message_id",
                                              "source", "provider", "since", "until",
                                              "limit",  "cursor",   NULL};
    static const char *const msg_allowed[] = {"tenant", "source", "provider", "limit", "cursor",
                                              NULL};
    static const char *const copied[] = {"tenant", "type",   "source", "provider",
                                         "since",  "until",  "cursor", NULL};
    struct api_query p = {0};
    char *rcpt = NULL;
    long limit;
    if (params_parse(s, req, &p, message_id ? msg_allowed : log_allowed) < 0 ||
        parse_limit(s, req, &p, &limit) < 0)
        goto out;
    /* Without a tenant the log is every tenant's: an operator token's to read. */
    if (may_act_for(s, req, tok, api_query_get(&p, "tenant")) < 0) goto out;
    const char *recipient = api_query_get(&p, "recipient");
    if (recipient && !(rcpt = api_address(recipient))) {
        reply_error(s, req, 400, "recipient: not an email address");
        goto out;
    }
    json_t *in = json_pack("{sIsb}", "limit", (json_int_t)limit, "timeline", message_id != NULL);
    for (const char *const *k = copied; *k; k++)
        if (api_query_get(&p, *k)) json_object_set_new(in, *k, json_string(api_query_get(&p, *k)));
    const char *mid = message_id ? message_id : api_query_get(&p, "message_id");
    if (mid) json_object_set_new(in, "message_id", json_string(mid));
    if (rcpt) json_object_set_new(in, "recipient", json_string(rcpt));
    call_submit(s, req, work_events, in);
out:
    free(rcpt);
    api_query_clear(&p);
}

/* Ready when a pool connection answers (a dead one is noticed and replaced here). */
static void work_ready(struct call *c, struct supp_store *st)
{
    if (st->pg && PQstatus(st->pg) == CONNECTION_OK) PQclear(PQexec(st->pg, "SELECT 1"));
    int ok = supp_store_ensure(st, c->err, sizeof(c->err)) == 0;
    c->code = ok ? 200 : 503;
    c->out = json_pack("{ss}", "status", ok ? "ready" : "postgres unavailable");
}

/* ---- routing ------------------------------------------------------------------------------ */

/* The token of the request, or NULL after replying 401. */
static const struct mh_api_token *authorized(struct api_server *s, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        const char *tok = h + 7;
        while (*tok == ' ') tok++;
        const struct mh_api_token *t = mh_api_token_find(s->cfg, tok, strlen(tok));
        if (t) return t;
    }
    s->stats.unauthorized++;
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"mailhook\"");
    reply_error(s, req, 401, h ? "invalid bearer token" : "missing bearer token");
    return NULL;
}

static void method_not_allowed(struct api_server *s, struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(s, req, 405, "method not allowed (use %s)", allow);
}

static void handle_metrics(struct api_server *s, struct evhttp_request *req)
{
    const struct api_stats *st = &s->stats;
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add_printf(buf,
                        "# HELP mailhook_api_requests_total HTTP requests received.\n"
                        "# TYPE mailhook_api_requests_total counter\n"
                        "mailhook_api_requests_total %llu\n"
                        "# HELP mailhook_api_responses_total Responses, by status class.\n"
                        "# TYPE mailhook_api_responses_total counter\n"
                        "mailhook_api_responses_total{class=\"2xx\"} %llu\n"
                        "mailhook_api_responses_total{class=\"404\"} %llu\n"
                        "mailhook_api_responses_total{class=\"4xx\"} %llu\n"
                        "mailhook_api_responses_total{class=\"5xx\"} %llu\n"
                        "# HELP mailhook_api_unauthorized_total Requests refused for a missing or "
                        "wrong bearer token.\n"
                        "# TYPE mailhook_api_unauthorized_total counter\n"
                        "mailhook_api_unauthorized_total %llu\n"
                        "# HELP mailhook_api_forbidden_total Requests refused because the token may "
                        "not act for the tenant asked for.\n"
                        "# TYPE mailhook_api_forbidden_total counter\n"
                        "mailhook_api_forbidden_total %llu\n"
                        "# HELP mailhook_api_overloaded_total Requests answered 503 because too "
                        "many were waiting for the database.\n"
                        "# TYPE mailhook_api_overloaded_total counter\n"
                        "mailhook_api_overloaded_total %llu\n"
                        "# HELP mailhook_api_db_in_flight Requests queued on or running in the "
                        "database pool.\n"
                        "# TYPE mailhook_api_db_in_flight gauge\n"
                        "mailhook_api_db_in_flight %zu\n",
                        (unsigned long long)st->requests, (unsigned long long)st->ok,
                        (unsigned long long)st->not_found, (unsigned long long)st->client_errors,
                        (unsigned long long)st->server_errors,
                        (unsigned long long)st->unauthorized,
                        (unsigned long long)st->forbidden,
                        (unsigned long long)st->overloaded, api_pool_in_flight(s->pool));
    mh_histogram_write(api_pool_latency(s->pool), "mailhook_api_db_seconds",
                       "Time a request's database part took, from queueing on the pool to "
                       "its answer being ready.",
                       buf);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, NULL, buf);
    evbuffer_free(buf);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct api_server *s = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!path) path = "/";
    s->stats.requests++;

    if (!strcmp(path, "/healthz")) {
        reply(s, req, 200, json_pack("{ss}", "status", "ok"));
        return;
    }
    if (!strcmp(path, "/readyz")) {
        call_submit(s, req, work_ready, json_object());
        return;
    }
    if (!strcmp(path, "/metrics")) {
        handle_metrics(s, req);
        return;
    }
    if (!strcmp(path, "/console") || !strncmp(path, "/console/", 9)) {
        api_console_serve(s->cfg, req, path);
        return;
    }
    if (strncmp(path, "/v1/", 4)) {
        reply_error(s, req, 404, "not found");
        return;
    }
    const struct mh_api_token *tok = authorized(s, req);
    if (!tok) return;

    static const char supp[] = "/v1/suppressions";
    static const char msgs[] = "/v1/messages/";
    if (!strcmp(path, supp) || !strcmp(path, "/v1/suppressions/")) {
        if (cmd == EVHTTP_REQ_GET) list_suppressions(s, req, tok);
        else if (cmd == EVHTTP_REQ_POST) post_suppression(s, req, tok);
        else method_not_allowed(s, req, "GET, POST");
        return;
    }
    if (!strncmp(path, supp, strlen(supp)) && path[strlen(supp)] == '/') {
        const char *seg = path + strlen(supp) + 1;
        if (strchr(seg, '/')) {
            reply_error(s, req, 404, "not found");
        } else if (cmd == EVHTTP_REQ_GET) {
            address_request(s, req, tok, seg, 0);
        } else if (cmd == EVHTTP_REQ_DELETE) {
            address_request(s, req, tok, seg, 1);
        } else {
            method_not_allowed(s, req, "GET, DELETE");
        }
        return;
    }
    if (!strcmp(path, "/v1/dlq")) {
        if (cmd == EVHTTP_REQ_GET) api_dlq_list(s, req, tok);
        else method_not_allowed(s, req, "GET");
        return;
    }
    if (!strcmp(path, "/v1/dlq/replays")) {
        if (cmd == EVHTTP_REQ_POST) api_replay_post(s, req, tok);
        else method_not_allowed(s, req, "POST");
        return;
    }
    if (!strncmp(path, "/v1/dlq/replays/", 16) && path[16] && !strchr(path + 16, '/')) {
        if (cmd == EVHTTP_REQ_GET) api_replay_get(s, req, tok, path + 16);
        else method_not_allowed(s, req, "GET");
        return;
    }
    if (!strncmp(path, "/v1/raw/", 8)) {
        if (cmd == EVHTTP_REQ_GET) api_raw_get(s, req, tok, path + 8);
        else method_not_allowed(s, req, "GET");
        return;
    }
    if (!strcmp(path, "/v1/sources/stats")) {
        if (cmd == EVHTTP_REQ_GET) api_sources_stats(s, req, tok);
        else method_not_allowed(s, req, "GET");
        return;
    }
    if (!strcmp(path, "/v1/events")) {
        if (cmd == EVHTTP_REQ_GET) events_page(s, req, tok, NULL);
        else method_not_allowed(s, req, "GET");
        return;
    }
    if (!strncmp(path, msgs, strlen(msgs))) {
        const char *seg = path + strlen(msgs);
        const char *slash = strchr(seg, '/');
        if (slash && slash > seg && !strcmp(slash, "/events")) {
            char *raw = mh_strndup(seg, (size_t)(slash - seg));
            char *id = api_path_segment(raw, API_MESSAGE_ID_MAX);
            free(raw);
            if (!id)
                reply_error(s, req, 400, "message id: empty, not UTF-8 text or longer than %d "
                            "bytes", API_MESSAGE_ID_MAX);
            else if (cmd == EVHTTP_REQ_GET) events_page(s, req, tok, id);
            else method_not_allowed(s, req, "GET");
            free(id);
            return;
        }
    }
    reply_error(s, req, 404, "not found");
}

/* ---- for the endpoints in files of their own (endpoint.h) ------------------------------- */

const struct mh_config *api_server_cfg(const struct api_server *s) { return s->cfg; }
struct api_pool *api_server_pool(const struct api_server *s) { return s->pool; }
struct api_replays *api_server_replays(const struct api_server *s) { return s->replays; }
struct api_scraper *api_server_scraper(const struct api_server *s) { return s->scraper; }

void api_reply(struct api_server *s, struct evhttp_request *req, int code, json_t *body)
{
    reply(s, req, code, body);
}

void api_reply_error(struct api_server *s, struct evhttp_request *req, int code, const char *msg)
{
    reply_error(s, req, code, "%s", msg);
}

void api_reply_unavailable(struct api_server *s, struct evhttp_request *req, const char *err)
{
    reply_unavailable(s, req, err);
}

int api_params(struct api_server *s, struct evhttp_request *req, struct api_query *p,
               const char *const *allowed)
{
    return params_parse(s, req, p, allowed);
}

void api_count_forbidden(struct api_server *s)
{
    s->stats.forbidden++;
}

int api_may_act_for(struct api_server *s, struct evhttp_request *req,
                    const struct mh_api_token *tok, const char *tenant)
{
    return may_act_for(s, req, tok, tenant);
}

/* ---- life cycle ---------------------------------------------------------------------------- */

struct api_server *api_http_new(struct event_base *base, const struct mh_config *cfg, char *err,
                                size_t errlen)
{
    char host[256];
    int port;
    if (mh_split_listen(cfg->api.listen, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "[api] listen: expected host:port, not \"%s\"", cfg->api.listen);
        return NULL;
    }
    struct api_server *s = mh_calloc(1, sizeof(*s));
    s->cfg = cfg;
    s->pool = api_pool_new(base, cfg, "mailhook-api", (int)cfg->api.db_connections, err, errlen);
    if (!s->pool) {
        free(s);
        return NULL;
    }
    s->replays = api_replays_new(base, cfg);
    s->scraper = api_scraper_new(base, cfg);
    s->http = evhttp_new(base);
    evhttp_set_max_body_size(s->http, cfg->api.max_body_bytes);
    /* The request line counts: it carries a cursor (up to MH_CURSOR_MAX) and parameters. */
    evhttp_set_max_headers_size(s->http, MH_CURSOR_MAX + 16384);
    struct timeval tv = {cfg->api.request_timeout_ms / 1000,
                         (cfg->api.request_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(s->http, &tv);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(s->http, on_request, s);
    s->bound = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
    if (!s->bound) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->api.listen, strerror(errno));
        api_http_free(s);
        return NULL;
    }
    /* Accepted connections inherit it: a reply never waits for the client's delayed ACK. */
    int one = 1;
    setsockopt(evhttp_bound_socket_get_fd(s->bound), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return s;
}

const struct api_stats *api_http_stats(const struct api_server *s)
{
    return &s->stats;
}

void api_http_stop_listening(struct api_server *s)
{
    if (s && s->bound) evhttp_del_accept_socket(s->http, s->bound);
    if (s) s->bound = NULL;
}

size_t api_http_in_flight(const struct api_server *s)
{
    return api_pool_in_flight(s->pool);
}

void api_http_free(struct api_server *s)
{
    if (!s) return;
    /* First the pool: the done steps of its last jobs reply through the evhttp. */
    api_pool_free(s->pool);
    api_replays_free(s->replays);
    api_scraper_free(s->scraper);
    if (s->http) evhttp_free(s->http);
    free(s);
}
