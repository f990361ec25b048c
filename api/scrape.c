/*
 * scrape.c — the ingest processes' own /metrics ([api] ingest_metrics), scraped every
 * SCRAPE_INTERVAL_S with libevent's HTTP client on the loop (never blocking it), into a
 * bounded ring per source (ring.h): what each scrape added to
 * mailhook_ingest_source_responses_total{source,code} and to the buckets of
 * mailhook_ingest_source_ack_seconds{source}. The first scrape of a URL only sets the
 * baseline; a counter that went down (restart, reload) counts from zero.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "endpoint.h"
#include "mailhook/log.h"
#include "ring.h"
#include "scrape.h"

#define SCRAPE_INTERVAL_S 10
#define SCRAPE_TIMEOUT_S 5
#define RING_SAMPLES 2160 /* 6 hours of one URL's scrapes */
#define MAX_SOURCES 4096
#define MAX_BODY (8 << 20)

struct target {
    struct api_scraper *sc;
    char *url, *host, *path;
    int port;
    struct evhttp_connection *conn;
    int busy;
    int scraped;   /* the baseline is set */
    int failing;   /* the last scrape failed (logged once per failing streak) */
    json_t *prev;  /* "metric\x1fsource\x1flabel" -> cumulative value */
};

struct api_scraper {
    struct event_base *base;
    struct event *timer;
    struct target *t;
    size_t n;
    struct scrape_source *src;
    size_t n_src;
};

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
    return s;
}

/* A label's value in "a=\"x\",b=\"y\"" (no escapes: mailhook's names have none). */
static int label(const char *labels, const char *name, char *out, size_t len)
{
    char key[32];
    snprintf(key, sizeof(key), "%s=\"", name);
    const char *p = labels;
    while ((p = strstr(p, key))) {
        if (p == labels || p[-1] == ',' || p[-1] == '{') {
            p += strlen(key);
            const char *e = strchr(p, '"');
            if (!e || (size_t)(e - p) >= len) return -1;
            memcpy(out, p, (size_t)(e - p));
            out[e - p] = '\0';
            return 0;
        }
        p++;
    }
    return -1;
}

struct scrape_source *scrape_source_of(struct api_scraper *sc, const char *name, int create)
{
    for (size_t i = 0; i < sc->n_src; i++)
        if (!strcmp(sc->src[i].name, name)) return &sc->src[i];
    if (!create || sc->n_src >= MAX_SOURCES) return NULL;
    sc->src = realloc(sc->src, (sc->n_src + 1) * sizeof(*sc->src));
    if (!sc->src) abort();
    struct scrape_source *s = &sc->src[sc->n_src++];
    s->name = mh_strdup(name);
    src_ring_init(&s->ring, RING_SAMPLES);
    return s;
}

/* The le label as a bucket index; -1 when it is none of mailhook's bounds. */
static int bucket_of(const char *le)
{
    if (!strcmp(le, "+Inf")) return MH_HIST_NBOUNDS;
    double v = strtod(le, NULL);
    for (int i = 0; i < MH_HIST_NBOUNDS; i++) {
        double b = mh_histogram_bound((size_t)i);
        if (v > b * 0.999999 && v < b * 1.000001) return i;
    }
    return -1;
}

static void ingest_body(struct target *tg, char *body)
{
    static const char resp[] = "mailhook_ingest_source_responses_total{";
    static const char ack[] = "mailhook_ingest_source_ack_seconds_bucket{";
    json_t *cur = json_object();
    /* source -> sample being built */
    json_t *touched = json_object();
    struct api_scraper *sc = tg->sc;
    struct src_sample *samples = NULL;
    size_t n_samples = 0;
    char *save = NULL;
    for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int is_resp = !strncmp(line, resp, sizeof(resp) - 1);
        int is_ack = !is_resp && !strncmp(line, ack, sizeof(ack) - 1);
        if (!is_resp && !is_ack) continue;
        char *close = strchr(line, '}');
        if (!close) continue;
        *close = '\0';
        const char *labels = strchr(line, '{') + 1;
        double v = strtod(trim(close + 1), NULL);
        char source[512], which[32];
        if (label(labels, "source", source, sizeof(source)) < 0 ||
            label(labels, is_resp ? "code" : "le", which, sizeof(which)) < 0)
            continue;
        int idx = -1;
        if (is_resp) {
            for (int i = 0; i < SRC_CODES; i++)
                if (!strcmp(which, src_codes[i])) idx = i;
        } else {
            idx = bucket_of(which);
        }
        if (idx < 0) continue;
        char key[600];
        snprintf(key, sizeof(key), "%c\x1f%s\x1f%d", is_resp ? 'r' : 'a', source, idx);
        json_object_set_new(cur, key, json_real(v));
        if (!tg->scraped) continue;
        json_t *pos = json_object_get(touched, source);
        if (!pos) {
            samples = realloc(samples, (n_samples + 1) * sizeof(*samples));
            if (!samples) abort();
            memset(&samples[n_samples], 0, sizeof(*samples));
            samples[n_samples].t = (int64_t)time(NULL);
            pos = json_integer((json_int_t)n_samples++);
            json_object_set_new(touched, source, pos);
        }
        struct src_sample *s = &samples[json_integer_value(pos)];
        json_t *pv = json_object_get(tg->prev, key);
        double d = counter_delta(pv ? json_real_value(pv) : 0, v);
        if (is_resp) s->codes[idx] += d;
        else s->buckets[idx] += d; /* cumulative for now */
    }
    const char *name;
    json_t *pos;
    json_object_foreach(touched, name, pos) {
        struct src_sample *s = &samples[json_integer_value(pos)];
        for (int i = SRC_BUCKETS - 1; i > 0; i--) {
            s->buckets[i] -= s->buckets[i - 1];
            if (s->buckets[i] < 0) s->buckets[i] = 0;
        }
        struct scrape_source *src = scrape_source_of(sc, name, 1);
        if (src) src_ring_push(&src->ring, s);
    }
    free(samples);
    json_decref(touched);
    json_decref(tg->prev);
    tg->prev = cur;
    tg->scraped = 1;
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct target *tg = arg;
    tg->busy = 0;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code != 200) {
        if (!tg->failing)
            mh_warn("[api] ingest_metrics: %s: %s; its sources' responses stay at 0 until it "
                    "answers", tg->url, code ? "not 200" : "no answer");
        tg->failing = 1;
        return;
    }
    if (tg->failing) mh_info("[api] ingest_metrics: %s answers again", tg->url);
    tg->failing = 0;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > MAX_BODY) return;
    char *body = mh_malloc(len + 1);
    evbuffer_copyout(in, body, len);
    body[len] = '\0';
    ingest_body(tg, body);
    free(body);
}

static void scrape(struct target *tg)
{
    if (tg->busy) return;
    if (!tg->conn) {
        tg->conn = evhttp_connection_base_new(tg->sc->base, NULL, tg->host, (ev_uint16_t)tg->port);
        if (!tg->conn) return;
        evhttp_connection_set_timeout(tg->conn, SCRAPE_TIMEOUT_S);
    }
    struct evhttp_request *req = evhttp_request_new(on_response, tg);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", tg->host);
    if (evhttp_make_request(tg->conn, req, EVHTTP_REQ_GET, tg->path) == 0) tg->busy = 1;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct api_scraper *sc = arg;
    for (size_t i = 0; i < sc->n; i++) scrape(&sc->t[i]);
}

struct api_scraper *api_scraper_new(struct event_base *base, const struct mh_config *cfg)
{
    struct api_scraper *sc = mh_calloc(1, sizeof(*sc));
    sc->base = base;
    const char *list = cfg->api.ingest_metrics;
    if (!list || !*list) return sc;
    char *copy = mh_strdup(list), *save = NULL;
    for (char *u = strtok_r(copy, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        u = trim(u);
        if (!*u) continue;
        struct evhttp_uri *uri = evhttp_uri_parse(u);
        const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
        if (!uri || !scheme || strcmp(scheme, "http") || !evhttp_uri_get_host(uri)) {
            mh_warn("[api] ingest_metrics: \"%s\" is not an http:// URL; not scraped", u);
            if (uri) evhttp_uri_free(uri);
            continue;
        }
        sc->t = realloc(sc->t, (sc->n + 1) * sizeof(*sc->t));
        if (!sc->t) abort();
        struct target *tg = &sc->t[sc->n++];
        memset(tg, 0, sizeof(*tg));
        tg->sc = sc;
        tg->url = mh_strdup(u);
        tg->host = mh_strdup(evhttp_uri_get_host(uri));
        tg->port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
        const char *path = evhttp_uri_get_path(uri);
        tg->path = mh_strdup(path && *path ? path : "/metrics");
        evhttp_uri_free(uri);
    }
    free(copy);
    /* The targets array is final now: the requests' callbacks point into it. */
    if (sc->n) {
        sc->timer = event_new(base, -1, EV_PERSIST, on_timer, sc);
        struct timeval tv = {SCRAPE_INTERVAL_S, 0};
        event_add(sc->timer, &tv);
        on_timer(-1, 0, sc);
        mh_info("scraping %zu ingest /metrics every %d s", sc->n, SCRAPE_INTERVAL_S);
    }
    return sc;
}

void api_scraper_free(struct api_scraper *sc)
{
    if (!sc) return;
    if (sc->timer) event_free(sc->timer);
    for (size_t i = 0; i < sc->n; i++) {
        if (sc->t[i].conn) evhttp_connection_free(sc->t[i].conn);
        free(sc->t[i].url);
        free(sc->t[i].host);
        free(sc->t[i].path);
        json_decref(sc->t[i].prev);
    }
    free(sc->t);
    for (size_t i = 0; i < sc->n_src; i++) {
        free(sc->src[i].name);
        src_ring_free(&sc->src[i].ring);
    }
    free(sc->src);
    free(sc);
}
