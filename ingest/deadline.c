/*
 * deadline.c — a request must arrive whole within [ingest] request_deadline_ms.
 *
 * evhttp's own timeout ([ingest] read_timeout_ms) is a bufferevent inactivity timer:
 * every byte read starts it again, so a client sending one byte every few seconds keeps
 * its connection, and one of the loop's [ingest] max_connections, for ever (Slowloris).
 * This timer is not restarted by data. It starts when a connection is accepted, or when
 * the reply to the previous request on a keep-alive connection has been written, and
 * stops once evhttp has read a whole request (headers and body) and hands it to http.c.
 * When it fires, the connection is closed without a reply: its client is still sending,
 * and may never read one.
 *
 * libevent 2.1 has no hook for a new request on a connection and no user data on one,
 * so a connection is found by its socket: each loop keeps its connections' timers in a
 * table indexed by file descriptor, unique in the process while the connection is open.
 * accept.c reports connections opening and closing. Every timer of a loop has the same
 * duration, so they sit on one of libevent's common-timeout queues: adding and removing
 * one costs O(1) however many connections are open.
 */
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>

#include "ingest.h"
#include "mailhook/log.h"

struct conn_deadline {
    struct ingest *in;
    struct evhttp_connection *evcon;
    struct event *timer;
};

static evutil_socket_t conn_fd(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev ? bufferevent_getfd(bev) : -1;
}

static struct conn_deadline *find(struct ingest *in, struct evhttp_connection *evcon)
{
    evutil_socket_t fd = conn_fd(evcon);
    if (fd < 0 || (size_t)fd >= in->n_deadlines) return NULL;
    struct conn_deadline *cd = in->deadlines[fd];
    return cd && cd->evcon == evcon ? cd : NULL;
}

static void on_expired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn_deadline *cd = arg;
    struct ingest *in = cd->in;
    atomic_fetch_add_explicit(&in->proc->stats.deadline_closes, 1, memory_order_relaxed);
    mh_debug("loop %d: no whole request within %ld ms: closing the connection", in->id,
             in->deadline_ms);
    /* evhttp owns nothing the application holds here (the timer is stopped while a
     * request is with http.c); its close callback (accept.c) frees cd. */
    evhttp_connection_free(cd->evcon);
}

static void forget_fd(struct ingest *in, evutil_socket_t fd)
{
    struct conn_deadline *cd = in->deadlines[fd];
    if (!cd) return;
    event_free(cd->timer);
    free(cd);
    in->deadlines[fd] = NULL;
}

void deadline_conn_open(struct ingest *in, struct evhttp_connection *evcon)
{
    evutil_socket_t fd = conn_fd(evcon);
    if (fd < 0 || !in->deadline_tv) return;
    if ((size_t)fd >= in->n_deadlines) {
        size_t n = in->n_deadlines ? in->n_deadlines : 64;
        while (n <= (size_t)fd) n *= 2;
        in->deadlines = mh_realloc(in->deadlines, n * sizeof(*in->deadlines));
        for (size_t i = in->n_deadlines; i < n; i++) in->deadlines[i] = NULL;
        in->n_deadlines = n;
    }
    forget_fd(in, fd); /* a connection on this descriptor that closed unseen */
    struct conn_deadline *cd = mh_calloc(1, sizeof(*cd));
    cd->in = in;
    cd->evcon = evcon;
    cd->timer = evtimer_new(in->base, on_expired, cd);
    if (!cd->timer) {
        mh_warn("loop %d: no request deadline for a connection: out of memory", in->id);
        free(cd);
        return;
    }
    in->deadlines[fd] = cd;
    evtimer_add(cd->timer, in->deadline_tv);
}

void deadline_conn_closed(struct ingest *in, struct evhttp_connection *evcon)
{
    if (find(in, evcon)) forget_fd(in, conn_fd(evcon));
}

/* The reply went out and the connection is kept open: the next request's time starts. */
static void on_reply_written(struct evhttp_request *req, void *arg)
{
    struct ingest *in = arg;
    struct conn_deadline *cd = find(in, evhttp_request_get_connection(req));
    if (cd) evtimer_add(cd->timer, in->deadline_tv);
}

void deadline_request_read(struct ingest *in, struct evhttp_request *req)
{
    struct conn_deadline *cd = find(in, evhttp_request_get_connection(req));
    if (!cd) return;
    evtimer_del(cd->timer);
    evhttp_request_set_on_complete_cb(req, on_reply_written, in);
}

int deadline_init(struct ingest *in, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    in->deadline_ms = ms;
    in->deadline_tv = event_base_init_common_timeout(in->base, &tv);
    return in->deadline_tv ? 0 : -1;
}

void deadline_fini(struct ingest *in)
{
    for (size_t fd = 0; fd < in->n_deadlines; fd++) forget_fd(in, (evutil_socket_t)fd);
    free(in->deadlines);
    in->deadlines = NULL;
    in->n_deadlines = 0;
}
