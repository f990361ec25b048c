/*
 * accept.c — how many connections a loop takes, before HTTP sees them.
 *
 * Connection cap. [ingest] max_connections is shared out over the loops; a loop at its
 * share stops accepting (its listener is disabled) and starts again when a connection
 * closes. Waiting connections queue in the kernel's backlog; past that the kernel
 * refuses them and the provider retries. A connection is counted from the moment it is
 * accepted, so one that never sends a byte counts too, until [ingest] read_timeout_ms
 * closes it; one that sends slowly counts until [ingest] request_deadline_ms does
 * (deadline.c, told here of every connection that opens or closes).
 *
 * With [ingest] tls_cert_file, the bufferevent made for each connection is a TLS one
 * (tls.c); the counting and the deadline below treat it like any other.
 *
 * Counting uses libevent's public hooks only: evhttp_set_bevcb is called for every
 * accepted connection (count up), and the connection's close callback (count down) is
 * set right after evhttp has built it, from an event activated in the bevcb: by then
 * the bufferevent's callback argument is the evhttp_connection. The bevcb holds a
 * reference on the bufferevent until that event has run, so a connection evhttp gave
 * up on meanwhile (it frees the bufferevent, which clears its callbacks) is seen as
 * such, never as freed memory.
 *
 * accept() errors. When accept() fails for want of file descriptors or memory
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM), retrying at once would spin a core on the
 * level-triggered listener; the loop pauses accepting for ACCEPT_PAUSE_MS instead, logs
 * that at most every 10 s and counts it. Open connections are served meanwhile.
 */
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "mailhook/log.h"
#include "mailhook/timeutil.h"

#define ACCEPT_PAUSE_MS 200
#define WARN_EVERY_MS 10000

/* Enables or disables the loop's listener as the cap and a pending pause say. */
static void update_listener(struct ingest *in)
{
    if (!in->bound) return; /* no longer listening (shutdown) */
    struct evconnlistener *lev = evhttp_bound_socket_get_listener(in->bound);
    int want = !in->accept_paused && in->conns < in->max_conns;
    if (want == in->accepting) return;
    if (want) evconnlistener_enable(lev);
    else evconnlistener_disable(lev);
    in->accepting = want;
}

static void on_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct ingest *in = arg;
    deadline_conn_closed(in, evcon);
    in->conns--;
    atomic_store_explicit(&in->conns_gauge, in->conns, memory_order_relaxed);
    update_listener(in);
}

/* Sets the close callback of every connection accepted since the last run. */
static void on_fresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ingest *in = arg;
    for (size_t i = 0; i < in->n_fresh; i++) {
        void *cbarg = NULL;
        bufferevent_getcb(in->fresh[i], NULL, NULL, NULL, &cbarg);
        if (cbarg) {
            evhttp_connection_set_closecb(cbarg, on_conn_closed, in);
            deadline_conn_open(in, cbarg);
        } else {
            in->conns--; /* evhttp could not take the connection and freed it */
        }
        bufferevent_decref(in->fresh[i]);
    }
    in->n_fresh = 0;
    atomic_store_explicit(&in->conns_gauge, in->conns, memory_order_relaxed);
    update_listener(in);
}

static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    struct ingest *in = arg;
    /* HTTPS: the TLS context of the loop's current config ([ingest] tls_*, tls.c). When
     * it cannot be made (out of memory), evhttp's own plain bufferevent answers the
     * client's handshake with an HTTP error: nothing is served unencrypted. */
    SSL_CTX *tls = in->cur->tls;
    struct bufferevent *bev = tls ? tls_conn_new(base, tls)
                                  : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) return NULL; /* evhttp tries its own, which is then not counted */
    bufferevent_incref(bev); /* until on_fresh has looked at it */
    if (in->n_fresh == in->cap_fresh) {
        in->cap_fresh = in->cap_fresh ? in->cap_fresh * 2 : 16;
        in->fresh = mh_realloc(in->fresh, in->cap_fresh * sizeof(*in->fresh));
    }
    in->fresh[in->n_fresh++] = bev;
    in->conns++;
    event_active(in->fresh_ev, EV_TIMEOUT, 0);
    if (in->conns >= in->max_conns) update_listener(in);
    return bev;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ingest *in = arg;
    in->accept_paused = 0;
    update_listener(in);
}

static int out_of_resources(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* The listener's argument is evhttp's, so the loop is found by its listener. */
static struct ingest_proc *guarded_proc;

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    struct ingest *in = NULL;
    for (int i = 0; guarded_proc && i < guarded_proc->n_loops; i++) {
        struct ingest *l = &guarded_proc->loops[i];
        if (l->bound && evhttp_bound_socket_get_listener(l->bound) == lev) in = l;
    }
    if (!in) return;
    atomic_fetch_add_explicit(&in->proc->stats.accept_pauses, 1, memory_order_relaxed);
    int64_t now = mh_mono_ms();
    if (!in->accept_warned_ms || now - in->accept_warned_ms >= WARN_EVERY_MS) {
        mh_warn("loop %d: accept: %s; not accepting for %d ms (open connections: %ld; %s)",
                in->id, strerror(e), ACCEPT_PAUSE_MS, in->conns,
                out_of_resources(e) ? "raise the file limit or lower [ingest] max_connections"
                                    : "unexpected error");
        in->accept_warned_ms = now;
    }
    in->accept_paused = 1;
    update_listener(in);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(in->resume_ev, &tv);
}

int accept_guard_init(struct ingest *in, long max_connections)
{
    guarded_proc = in->proc;
    in->max_conns = max_connections / in->proc->n_loops;
    if (in->max_conns < 1) in->max_conns = 1;
    in->accepting = 1;
    in->fresh_ev = event_new(in->base, -1, 0, on_fresh, in);
    in->resume_ev = evtimer_new(in->base, on_resume, in);
    if (!in->fresh_ev || !in->resume_ev) return -1;
    evhttp_set_bevcb(in->http, on_new_conn, in);
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(in->bound), on_accept_error);
    return 0;
}

void accept_guard_fini(struct ingest *in)
{
    for (size_t i = 0; i < in->n_fresh; i++) bufferevent_decref(in->fresh[i]);
    if (in->fresh_ev) event_free(in->fresh_ev);
    if (in->resume_ev) event_free(in->resume_ev);
    in->fresh_ev = in->resume_ev = NULL;
    free(in->fresh);
    in->fresh = NULL;
    in->n_fresh = in->cap_fresh = 0;
}
