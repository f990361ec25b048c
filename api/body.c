/*
 * body.c — a request body as a JSON object, for the endpoints in files of their own
 * (endpoint.h).
 */
#include <stdio.h>

#include <event2/buffer.h>

#include "endpoint.h"

json_t *api_body_object(struct api_server *s, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t jerr;
    char msg[256];
    json_t *body = json_loadb(len ? (const char *)evbuffer_pullup(in, -1) : "", len,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        snprintf(msg, sizeof(msg), "body: invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        /* jansson's message is ASCII, so the error stays a JSON string when cut. */
        api_reply_error(s, req, 400, msg);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        api_reply_error(s, req, 400, "body: expected a JSON object");
        return NULL;
    }
    return body;
}
