/*
 * server.h — mailhook-api's HTTP server (http.c) as main.c drives it.
 */
#ifndef MH_API_SERVER_H
#define MH_API_SERVER_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "mailhook/config.h"

struct api_stats {
    uint64_t requests, ok, not_found, client_errors, server_errors, unauthorized;
    uint64_t forbidden; /* a valid token asking for a tenant it may not act for */
    uint64_t overloaded; /* refused because the pool's queue was full */
};

struct api_server;

/*
 * Listens on [api] listen and serves requests, their database part on a pool of
 * [api] db_connections threads (pool.h). NULL with err when the address is invalid
 * or taken, or the pool's producer cannot be created.
 */
struct api_server *api_http_new(struct event_base *base, const struct mh_config *cfg, char *err,
                                size_t errlen);
/* Requests whose database part has not been answered yet. */
size_t api_http_in_flight(const struct api_server *s);
const struct api_stats *api_http_stats(const struct api_server *s);
/* Closes the listener; open connections are still answered. */
void api_http_stop_listening(struct api_server *s);
void api_http_free(struct api_server *s);

#endif
