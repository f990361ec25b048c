/*
 * bare_server.c — the ceiling for mailhook-ingest's request rate: a libevent evhttp
 * server that reads each request whole and answers 200 with no verification and no
 * Kafka, on THREADS event loops (one SO_REUSEPORT listener each, like ingest's).
 * Built and started by tests/bench/run.
 *
 * usage: bare_server PORT [THREADS]   (listens on 127.0.0.1; runs until SIGTERM/SIGINT)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    evhttp_send_reply(req, 200, "OK", NULL);
}

static evutil_socket_t listen_socket(int port)
{
    evutil_socket_t fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *loop_main(void *arg)
{
    event_base_dispatch(arg);
    return NULL;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bare_server PORT [THREADS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int n = argc > 2 ? atoi(argv[2]) : 1;
    if (n < 1 || n > MAX_THREADS) n = 1;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();

    struct event_base *bases[MAX_THREADS] = {0};
    struct evhttp *https[MAX_THREADS] = {0};
    pthread_t threads[MAX_THREADS];
    int started = 0, rc = 1;
    for (int i = 0; i < n; i++) {
        evutil_socket_t fd = listen_socket(port);
        bases[i] = event_base_new();
        https[i] = bases[i] ? evhttp_new(bases[i]) : NULL;
        if (fd < 0 || !https[i] || !evhttp_accept_socket_with_handle(https[i], fd)) {
            perror("bare_server: listen");
            if (fd >= 0) close(fd);
            goto out;
        }
        evhttp_set_gencb(https[i], on_request, NULL);
    }
    /* Loop 0 runs here and takes the signals; the others stop when it does. */
    struct event *sigs[2] = {evsignal_new(bases[0], SIGTERM, on_signal, bases[0]),
                             evsignal_new(bases[0], SIGINT, on_signal, bases[0])};
    event_add(sigs[0], NULL);
    event_add(sigs[1], NULL);
    for (int i = 1; i < n; i++) {
        if (pthread_create(&threads[i], NULL, loop_main, bases[i]) != 0) goto stop;
        started = i;
    }
    printf("ready\n");
    fflush(stdout);
    event_base_dispatch(bases[0]);
    rc = 0;
stop:
    for (int i = 1; i <= started; i++) {
        event_base_loopbreak(bases[i]);
        pthread_join(threads[i], NULL);
    }
    event_free(sigs[0]);
    event_free(sigs[1]);
out:
    for (int i = 0; i < n; i++) {
        if (https[i]) evhttp_free(https[i]);
        if (bases[i]) event_base_free(bases[i]);
    }
    return rc;
}
