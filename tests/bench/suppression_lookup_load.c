/*
 * suppression_lookup_load.c — a constant-rate HTTP load generator for mailhook-api's
 * "may I send?" lookup (GET /v1/suppressions/{address}?tenant=T), used by
 * suppression_lookup.sh.
 *
 * Open loop: request i is due at start + i / rate whatever happened before it, and its
 * latency is measured from that due time, not from when a connection got free — so a
 * stall shows up in the percentiles instead of silently lowering the rate (the
 * coordinated-omission trap). Keep-alive connections, one request in flight on each;
 * addresses are drawn from a seeded generator: a given share of them suppressed
 * (bench-N@example.com with N below --suppressed), the rest never suppressed.
 *
 * usage: suppression_lookup_load HOST PORT TOKEN TENANT RATE SECONDS SUPPRESSED
 *                                HIT_PERCENT CONNECTIONS
 * Prints one summary line of JSON and exits non-zero if any request failed.
 * MH_BENCH_BASELINE=1 asks GET /healthz instead (no database): the machine's own share.
 * MH_BENCH_REQUEST=FILE sends that file, a whole HTTP request, every time and expects
 * 200 (ingest_ack_latency.sh: a signed webhook); TOKEN, TENANT, SUPPRESSED and
 * HIT_PERCENT are then unused.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wait_ns.h"

struct conn {
    int fd;
    int busy;
    int64_t due_ns; /* when the request in flight was due */
    int expect_status;
    char buf[8192];
    size_t len;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int open_conn(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* A complete response in c->buf: its length, or 0 when more is needed. */
static size_t response_len(struct conn *c, int *status)
{
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return 0;
    char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    size_t total = (size_t)(end + 4 - c->buf) + body;
    if (c->len < total) return 0;
    *status = atoi(c->buf + 9);
    return total;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: %s HOST PORT TOKEN TENANT RATE SECONDS SUPPRESSED HIT_PERCENT "
                        "CONNECTIONS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *token = argv[3], *tenant = argv[4];
    int port = atoi(argv[2]);
    double rate = atof(argv[5]);
    double seconds = atof(argv[6]);
    long suppressed = atol(argv[7]);
    int hit_pct = atoi(argv[8]);
    int nconn = atoi(argv[9]);
    long total = (long)(rate * seconds);
    /* MH_BENCH_BASELINE=1: GET /healthz instead, the same server without PostgreSQL —
     * what the machine itself adds to the latency. */
    const char *b = getenv("MH_BENCH_BASELINE");
    int baseline = b && !strcmp(b, "1");
    if (rate <= 0 || total <= 0 || nconn <= 0 || nconn > 1024 || suppressed <= 0) return 2;
    char *raw = NULL;
    size_t raw_len = 0;
    const char *raw_file = getenv("MH_BENCH_REQUEST");
    if (raw_file && *raw_file && !baseline) {
        FILE *f = fopen(raw_file, "rb");
        if (!f) {
            perror(raw_file);
            return 2;
        }
        raw = malloc(65536);
        raw_len = fread(raw, 1, 65536, f);
        fclose(f);
        if (raw_len == 0 || raw_len == 65536) {
            fprintf(stderr, "%s: empty or over 64 KiB\n", raw_file);
            return 2;
        }
    }

    struct conn *conns = calloc((size_t)nconn, sizeof(*conns));
    int ep = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = open_conn(host, port);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    int64_t *lat = calloc((size_t)total, sizeof(*lat));
    long sent = 0, done = 0, errors = 0, hits = 0;
    int last = nconn - 1, inflight = 0; /* connections with a request in flight */
    int64_t interval = (int64_t)(1e9 / rate);
    int64_t start = mono_ns() + 10000000;

    while (done < total) {
        int64_t now = mono_ns();
        /* Send every request that is due, as long as a connection is free. */
        while (sent < total && start + sent * interval <= now) {
            /* Round robin over the free connections, so none sits idle long enough for
             * the server's idle timeout to close it. */
            int free_i = -1;
            for (int k = 1; k <= nconn; k++) {
                int i = (last + k) % nconn;
                if (!conns[i].busy) {
                    free_i = i;
                    break;
                }
            }
            if (free_i < 0) break; /* it waits; its latency still counts from its due time */
            last = free_i;
            struct conn *c = &conns[free_i];
            /* The request file's bytes, or a lookup (or /healthz) made here. */
            const char *out = raw;
            size_t out_len = raw_len;
            int expect = 200;
            char req[1024];
            if (!raw) {
                int hit = (int)(next_rand() % 100) < hit_pct;
                long n = (long)(next_rand() % (uint64_t)suppressed);
                int len =
                    baseline
                        ? snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n",
                                   host)
                        : snprintf(req, sizeof(req),
                                   "GET /v1/suppressions/%s-%ld%%40example.com?tenant=%s"
                                   " HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n",
                                   hit ? "bench" : "clean", n, tenant, host, token);
                out = req;
                out_len = (size_t)len;
                expect = hit || baseline ? 200 : 404;
            }
            if (write(c->fd, out, out_len) != (ssize_t)out_len) {
                perror("write");
                return 1;
            }
            c->busy = 1;
            inflight++;
            c->due_ns = start + sent * interval;
            c->expect_status = expect;
            c->len = 0;
            sent++;
        }
        /* Sleep to the next due time (wait_ns.h). With a due request and no free
         * connection only an answer can help: wait for one (at most a second, then look
         * again). */
        int64_t wait = 1000000000;
        if (sent < total && inflight < nconn) wait = start + sent * interval - mono_ns();
        struct epoll_event evs[64];
        int n = wait_ns(ep, evs, 64, wait);
        if (n < 0) {
            perror("epoll_pwait2");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[evs[k].data.u32];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
            if (r <= 0) {
                fprintf(stderr, "connection closed by the server\n");
                return 1;
            }
            c->len += (size_t)r;
            int status;
            if (!c->busy || !response_len(c, &status)) continue;
            lat[done++] = mono_ns() - c->due_ns;
            if (status != c->expect_status) errors++;
            if (status == 200) hits++;
            c->busy = 0;
            inflight--;
        }
    }
    int64_t elapsed = mono_ns() - start;
    qsort(lat, (size_t)total, sizeof(*lat), cmp_i64);
#define PCT(p) (lat[(size_t)((double)(total - 1) * (p))] / 1e6)
    printf("{\"requests\": %ld, \"seconds\": %.2f, \"achieved_rate\": %.1f, \"errors\": %ld,"
           " \"suppressed_answers\": %ld, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f,"
           " \"p999_ms\": %.3f, \"max_ms\": %.3f}\n",
           total, elapsed / 1e9, total / (elapsed / 1e9), errors, hits, PCT(0.50), PCT(0.90),
           PCT(0.99), PCT(0.999), lat[total - 1] / 1e6);
    for (int i = 0; i < nconn; i++) close(conns[i].fd);
    free(conns);
    free(lat);
    free(raw);
    return errors ? 1 : 0;
}
