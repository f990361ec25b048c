/*
 * e2e_sender.c — the end-to-end part's open-loop webhook sender (suite/e2e.py): distinct
 * signed requests at a constant rate, and when each was answered 200.
 *
 * Request i is due at start + i / RATE whatever happened before it. Each line of
 * REQUESTS is one request: the signature header's value, one space, the JSON body (a
 * line of its own: compact JSON has no newline). They go to POST PATH over CONNECTIONS
 * keep-alive connections, one request in flight on each: a due request goes out on the
 * free connection that has waited longest, and waits for one when none is free. For
 * every request answered 200, a line "i unix-seconds" goes to OUT, the wall-clock time
 * of the answer (the time the visibility readers compare with). Prints one line of
 * JSON: requests, answered 200, seconds from the first due time to the last answer, the
 * rate achieved. Exits non-zero when any request failed.
 *
 * The sender shares the machine's cores with what it measures, so it costs as little as
 * it can: every request is laid out whole before the clock starts and goes out in one
 * write, the due requests of a millisecond go out together, and the answers are read
 * with http-parser (a libevent client spent twice the CPU on its header lists and its
 * per-request events).
 *
 * usage: e2e_sender HOST PORT PATH SIGNATURE_HEADER RATE CONNECTIONS REQUESTS OUT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
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

struct request {
    char *bytes; /* the whole HTTP request */
    size_t len;
    double answered; /* unix seconds of the 200, 0 until then */
};

struct conn {
    int fd;
    size_t req; /* the request in flight, SIZE_MAX when free */
    http_parser parser;
    int next_free; /* the free list's next connection, -1 at its end */
};

struct sender {
    struct request *reqs;
    size_t n, next, done, ok;
    struct conn *conns;
    int nconns, free_head, free_tail;
    int64_t last_ns;
};

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct sender S;

static void free_push(int c)
{
    S.conns[c].next_free = -1;
    if (S.free_tail >= 0)
        S.conns[S.free_tail].next_free = c;
    else
        S.free_head = c;
    S.free_tail = c;
}

static int free_pop(void)
{
    int c = S.free_head;
    if (c < 0) return -1;
    S.free_head = S.conns[c].next_free;
    if (S.free_head < 0) S.free_tail = -1;
    return c;
}

/* An answer is whole: its request is done, the connection free again. */
static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    if (c->req != SIZE_MAX) {
        if (p->status_code == 200) {
            S.reqs[c->req].answered = wall_s();
            S.ok++;
        }
        S.done++;
        S.last_ns = mono_ns();
        c->req = SIZE_MAX;
        free_push((int)(c - S.conns));
    }
    return 0;
}

static const http_parser_settings parser_settings = {.on_message_complete = on_message_complete};

static int open_conn(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "e2e_sender: HOST must be an IPv4 address: %s\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("e2e_sender: connect");
        if (fd >= 0) close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Reads REQUESTS ("signature body" per line) and lays out each whole request. */
static struct request *read_requests(const char *file, const char *host, const char *path,
                                     const char *sig_header, size_t *n)
{
    FILE *f = fopen(file, "r");
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
        const char *body = sp + 1;
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            reqs = realloc(reqs, cap * sizeof(*reqs));
            if (!reqs) abort();
        }
        char *bytes = NULL;
        int blen = asprintf(&bytes,
                            "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                            "%s: %s\r\nContent-Length: %zu\r\n\r\n%s",
                            path, host, sig_header, line, strlen(body), body);
        if (blen < 0) abort();
        reqs[*n] = (struct request){bytes, (size_t)blen, 0};
        (*n)++;
    }
    free(line);
    fclose(f);
    return reqs;
}

/* Sends request i on connection c. */
static int send_on(int c, size_t i)
{
    struct conn *k = &S.conns[c];
    const char *p = S.reqs[i].bytes;
    size_t left = S.reqs[i].len;
    while (left) { /* a socket's buffer takes a request whole; a short write still ends */
        ssize_t w = write(k->fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            perror("e2e_sender: write");
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    k->req = i;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: e2e_sender HOST PORT PATH SIGNATURE_HEADER RATE CONNECTIONS "
                        "REQUESTS OUT\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    double rate = atof(argv[5]);
    S.nconns = atoi(argv[6]);
    if (rate <= 0 || S.nconns < 1 || port < 1) {
        fprintf(stderr, "e2e_sender: bad RATE, CONNECTIONS or PORT\n");
        return 2;
    }
    S.reqs = read_requests(argv[7], host, argv[3], argv[4], &S.n);
    if (!S.reqs || S.n == 0) {
        fprintf(stderr, "e2e_sender: no requests in %s\n", argv[7]);
        return 2;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    S.conns = calloc((size_t)S.nconns, sizeof(*S.conns));
    if (ep < 0 || !S.conns) abort();
    S.free_head = S.free_tail = -1;
    for (int i = 0; i < S.nconns; i++) {
        struct conn *c = &S.conns[i];
        c->fd = open_conn(host, port);
        if (c->fd < 0) return 1;
        c->req = SIZE_MAX;
        http_parser_init(&c->parser, HTTP_RESPONSE);
        c->parser.data = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        free_push(i);
    }

    int64_t start = mono_ns(), interval = (int64_t)(1e9 / rate);
    int rc = 0;
    char buf[16384];
    while (S.done < S.n) {
        /* Every due request that has a free connection goes out now. */
        int64_t now = mono_ns();
        int c;
        while (S.next < S.n && start + (int64_t)S.next * interval <= now && (c = free_pop()) >= 0) {
            if (send_on(c, S.next++) < 0) {
                rc = 1;
                goto out;
            }
        }
        /* Sleep to the next due request, at least a millisecond, so that the requests of
         * a millisecond go out in one turn; with a due request and no free connection,
         * or none left to send, only an answer can help. */
        int64_t wait = 1000000000;
        if (S.next < S.n && S.free_head >= 0) {
            wait = start + (int64_t)S.next * interval - mono_ns();
            if (wait < 1000000) wait = 1000000;
        }
        struct epoll_event evs[64];
        int n = wait_ns(ep, evs, 64, wait);
        if (n < 0) {
            perror("e2e_sender: epoll_pwait2");
            rc = 1;
            goto out;
        }
        for (int k = 0; k < n; k++) {
            struct conn *cn = &S.conns[evs[k].data.u32];
            ssize_t r = read(cn->fd, buf, sizeof(buf));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                fprintf(stderr, "e2e_sender: connection closed by the server\n");
                rc = 1;
                goto out;
            }
            size_t used = http_parser_execute(&cn->parser, &parser_settings, buf, (size_t)r);
            if (used != (size_t)r || HTTP_PARSER_ERRNO(&cn->parser) != HPE_OK) {
                fprintf(stderr, "e2e_sender: bad answer: %s\n",
                        http_errno_description(HTTP_PARSER_ERRNO(&cn->parser)));
                rc = 1;
                goto out;
            }
        }
    }

    FILE *out = fopen(argv[8], "w");
    if (!out) {
        perror(argv[8]);
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < S.n; i++)
        if (S.reqs[i].answered > 0) fprintf(out, "%zu %.6f\n", i, S.reqs[i].answered);
    fclose(out);
    double secs = (double)(S.last_ns - start) / 1e9;
    printf("{\"requests\": %zu, \"ok\": %zu, \"seconds\": %.3f, \"achieved_rate\": %.1f}\n", S.n,
           S.ok, secs, secs > 0 ? (double)S.ok / secs : 0.0);
    if (S.ok != S.n) rc = 1;
out:
    for (int i = 0; i < S.nconns; i++)
        if (S.conns[i].fd > 0) close(S.conns[i].fd);
    free(S.conns);
    close(ep);
    for (size_t i = 0; i < S.n; i++) free(S.reqs[i].bytes);
    free(S.reqs);
    return rc;
}
