/*
 * e2e_sender.c — the end-to-end part's open-loop webhook sender (suite/e2e.py): distinct
 * signed requests at a constant rate, and when each was answered 200.
 *
 * Request i is due at start + i / RATE whatever happened before it. Each line of
 * REQUESTS is one request: the signature header's value, one space, the JSON body (a
 * line of its own: compact JSON has no newline). They go to POST PATH over CONNECTIONS
 * keep-alive connections, round robin; libevent's HTTP client writes the requests and
 * reads the answers. For every request answered 200, a line "i unix-seconds" goes to
 * OUT, the wall-clock time of the answer (the time the visibility readers compare
 * with). Prints one line of JSON: requests, answered 200, seconds from the first due
 * time to the last answer, the rate achieved. Exits non-zero when any request failed.
 *
 * usage: e2e_sender HOST PORT PATH SIGNATURE_HEADER RATE CONNECTIONS REQUESTS OUT
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct request {
    char *signature, *body;
    double answered; /* unix seconds of the 200, 0 until then */
};

struct sender {
    struct event_base *base;
    struct evhttp_connection **conns;
    int nconns;
    const char *host, *path, *sig_header;
    struct request *reqs;
    size_t n, next, done, ok;
    double rate;
    int64_t start_ns, last_ns;
    struct event *tick;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct pending {
    struct sender *s;
    size_t i;
};

static void answered(struct evhttp_request *req, void *arg)
{
    struct pending *p = arg;
    struct sender *s = p->s;
    if (req && evhttp_request_get_response_code(req) == 200) {
        s->reqs[p->i].answered = wall_s();
        s->ok++;
    }
    s->done++;
    s->last_ns = mono_ns();
    free(p);
    if (s->done == s->n) event_base_loopexit(s->base, NULL);
}

static void send_one(struct sender *s, size_t i)
{
    struct pending *p = malloc(sizeof(*p));
    if (!p) abort();
    *p = (struct pending){s, i};
    struct evhttp_request *req = evhttp_request_new(answered, p);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", s->host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, s->sig_header, s->reqs[i].signature);
    evbuffer_add(evhttp_request_get_output_buffer(req), s->reqs[i].body,
                 strlen(s->reqs[i].body));
    if (evhttp_make_request(s->conns[i % (size_t)s->nconns], req, EVHTTP_REQ_POST, s->path) != 0) {
        /* libevent has freed the request; count it as failed. */
        s->done++;
        free(p);
        if (s->done == s->n) event_base_loopexit(s->base, NULL);
    }
}

/* Every millisecond: sends every request that has come due. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sender *s = arg;
    (void)fd;
    (void)what;
    double elapsed = (double)(mono_ns() - s->start_ns) / 1e9;
    while (s->next < s->n && (double)s->next / s->rate <= elapsed) send_one(s, s->next++);
    if (s->next == s->n) event_del(s->tick);
}

/* Reads REQUESTS: "signature body" per line. */
static struct request *read_requests(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    struct request *reqs = NULL;
    size_t cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    *n = 0;
    while ((len = getline(&line, &linecap, f)) > 0) {
        if (line[len - 1] == '\n') line[--len] = '\0';
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = '\0';
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            reqs = realloc(reqs, cap * sizeof(*reqs));
            if (!reqs) abort();
        }
        reqs[*n] = (struct request){strdup(line), strdup(sp + 1), 0};
        (*n)++;
    }
    free(line);
    fclose(f);
    return reqs;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: e2e_sender HOST PORT PATH SIGNATURE_HEADER RATE CONNECTIONS "
                        "REQUESTS OUT\n");
        return 2;
    }
    struct sender s = {.host = argv[1], .path = argv[3], .sig_header = argv[4],
                       .rate = atof(argv[5]), .nconns = atoi(argv[6])};
    int port = atoi(argv[2]);
    if (s.rate <= 0 || s.nconns < 1 || port < 1) {
        fprintf(stderr, "e2e_sender: bad RATE, CONNECTIONS or PORT\n");
        return 2;
    }
    s.reqs = read_requests(argv[7], &s.n);
    if (!s.reqs || s.n == 0) {
        fprintf(stderr, "e2e_sender: no requests in %s\n", argv[7]);
        return 2;
    }
    s.base = event_base_new();
    s.conns = calloc((size_t)s.nconns, sizeof(*s.conns));
    for (int i = 0; i < s.nconns; i++) {
        s.conns[i] = evhttp_connection_base_new(s.base, NULL, s.host, (uint16_t)port);
        evhttp_connection_set_timeout(s.conns[i], 30);
    }
    s.tick = event_new(s.base, -1, EV_PERSIST, on_tick, &s);
    struct timeval ms = {0, 1000};
    event_add(s.tick, &ms);
    s.start_ns = mono_ns();
    event_base_dispatch(s.base);

    FILE *out = fopen(argv[8], "w");
    if (!out) {
        perror(argv[8]);
        return 1;
    }
    for (size_t i = 0; i < s.n; i++)
        if (s.reqs[i].answered > 0) fprintf(out, "%zu %.6f\n", i, s.reqs[i].answered);
    fclose(out);
    double secs = (double)(s.last_ns - s.start_ns) / 1e9;
    printf("{\"requests\": %zu, \"ok\": %zu, \"seconds\": %.3f, \"achieved_rate\": %.1f}\n", s.n,
           s.ok, secs, secs > 0 ? (double)s.ok / secs : 0.0);

    event_free(s.tick);
    for (int i = 0; i < s.nconns; i++) evhttp_connection_free(s.conns[i]);
    free(s.conns);
    for (size_t i = 0; i < s.n; i++) {
        free(s.reqs[i].signature);
        free(s.reqs[i].body);
    }
    free(s.reqs);
    event_base_free(s.base);
    return s.ok == s.n ? 0 : 1;
}
