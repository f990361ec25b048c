/*
 * endpoint.h — what http.c offers the endpoints kept in files of their own (dlq.c,
 * raw.c, replays.c, sources_stats.c): replies, parameters, the token's reach, the pool and the
 * loop. Each endpoint file exports its handlers, which http.c routes to.
 */
#ifndef MH_API_ENDPOINT_H
#define MH_API_ENDPOINT_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "mailhook/config.h"
#include "params.h"
#include "pool.h"

struct api_server;
struct mh_api_token;

/* ---- from http.c ---------------------------------------------------------------------- */

const struct mh_config *api_server_cfg(const struct api_server *s);
struct api_pool *api_server_pool(const struct api_server *s);
struct api_replays *api_server_replays(const struct api_server *s);
struct api_scraper *api_server_scraper(const struct api_server *s);

/* Sends body (stolen; NULL: 500) as JSON with code. */
void api_reply(struct api_server *s, struct evhttp_request *req, int code, json_t *body);
/* {"error": msg} with code. */
void api_reply_error(struct api_server *s, struct evhttp_request *req, int code, const char *msg);
/* Kafka or PostgreSQL trouble: logged, answered 503 with Retry-After. */
void api_reply_unavailable(struct api_server *s, struct evhttp_request *req, const char *err);
/* The query string checked against allowed; 0, or -1 after replying 400. */
int api_params(struct api_server *s, struct evhttp_request *req, struct api_query *p,
               const char *const *allowed);
/* May tok act for tenant (NULL: every tenant)? 0, or -1 after replying 403. */
int api_may_act_for(struct api_server *s, struct evhttp_request *req,
                    const struct mh_api_token *tok, const char *tenant);
/* Counts a request refused because of the token's tenants (mailhook_api_forbidden_total). */
void api_count_forbidden(struct api_server *s);
/* The request body as a JSON object; NULL after replying 400. */
json_t *api_body_object(struct api_server *s, struct evhttp_request *req);

/* ---- endpoints --------------------------------------------------------------------------- */

/* dlq.c: GET /v1/dlq */
void api_dlq_list(struct api_server *s, struct evhttp_request *req, const struct mh_api_token *tok);

/* raw.c: GET /v1/raw/{partition}/{offset}; tail is what follows /v1/raw/ */
void api_raw_get(struct api_server *s, struct evhttp_request *req, const struct mh_api_token *tok,
                 const char *tail);

/* replays.c: POST /v1/dlq/replays, GET /v1/dlq/replays/{id} */
struct api_replays *api_replays_new(struct event_base *base, const struct mh_config *cfg);
void api_replays_free(struct api_replays *r);
void api_replay_post(struct api_server *s, struct evhttp_request *req,
                     const struct mh_api_token *tok);
void api_replay_get(struct api_server *s, struct evhttp_request *req,
                    const struct mh_api_token *tok, const char *id);

/* sources_stats.c: GET /v1/sources/stats (scrape.c keeps the ingest metrics) */
struct api_scraper *api_scraper_new(struct event_base *base, const struct mh_config *cfg);
void api_scraper_free(struct api_scraper *sc);
void api_sources_stats(struct api_server *s, struct evhttp_request *req,
                       const struct mh_api_token *tok);

#endif
