/*
 * pool.c — the thread pool behind mailhook-api's requests (see pool.h).
 *
 * Two FIFO lists under one mutex: `todo` (submitted, not started) and `done` (run, not
 * yet handed back). A pool thread that moves a job to an empty `done` list writes the
 * eventfd once; the loop drains the whole list per wake-up, so a burst costs one
 * syscall pair, not one per job.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pool.h"
#include "mailhook/log.h"
#include "mailhook/timeutil.h"

/* Beyond this many waiting jobs a request is refused (503) rather than queued. */
#define MAX_QUEUED 4096

struct pool_thread {
    struct api_pool *pool;
    pthread_t tid;
    struct supp_store st;
    int started;
};

struct api_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct api_job *todo, *todo_tail;
    struct api_job *done, *done_tail;
    size_t queued;    /* on todo */
    size_t in_flight; /* submitted, done step not run (loop thread only) */
    int stop;
    int efd;
    struct event *wake;
    struct pool_thread *threads;
    int n;
    struct mh_histogram latency; /* submit -> done step */
};

static void push(struct api_job **head, struct api_job **tail, struct api_job *job)
{
    job->next = NULL;
    if (*tail) (*tail)->next = job;
    else *head = job;
    *tail = job;
}

static void *thread_main(void *arg)
{
    struct pool_thread *t = arg;
    struct api_pool *p = t->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->todo && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        struct api_job *job = p->todo;
        if (!job) break; /* stopping, and nothing left to run */
        p->todo = job->next;
        if (!p->todo) p->todo_tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);

        job->run(job, &t->st);
        supp_unlock_all(&t->st); /* a failed write must not keep address locks */

        pthread_mutex_lock(&p->mu);
        int was_empty = p->done == NULL;
        push(&p->done, &p->done_tail, job);
        if (was_empty) {
            uint64_t one = 1;
            /* Cannot block (eventfd counter) and cannot fail short of EBADF. */
            ssize_t w = write(p->efd, &one, sizeof(one));
            (void)w;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Loop thread: runs the done step of every finished job. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct api_pool *p = arg;
    (void)what;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof(n));
    (void)r;
    pthread_mutex_lock(&p->mu);
    struct api_job *job = p->done;
    p->done = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (job) {
        struct api_job *next = job->next;
        p->in_flight--;
        mh_histogram_observe_us(&p->latency, mh_mono_us() - job->submitted_us);
        job->done(job);
        job = next;
    }
}

struct api_pool *api_pool_new(struct event_base *base, const struct mh_config *cfg,
                              const char *app, int n, char *err, size_t errlen)
{
    struct api_pool *p = mh_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->n = n;
    p->threads = mh_calloc((size_t)n, sizeof(*p->threads));
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    p->wake = event_new(base, p->efd, EV_READ | EV_PERSIST, on_wake, p);
    event_add(p->wake, NULL);

    /* The first store owns the producer; the others borrow it (rd_kafka_t is
     * thread-safe, and each waits only for its own delivery reports). */
    for (int i = 0; i < n; i++) {
        struct pool_thread *t = &p->threads[i];
        t->pool = p;
        char cerr[1024];
        if (supp_store_open(&t->st, cfg, app, i == 0, cerr, sizeof(cerr)) < 0) {
            if (i == 0 && !t->st.rk) {
                snprintf(err, errlen, "%s", cerr);
                goto fail;
            }
            if (i == 0) mh_warn("%s (will retry)", cerr);
        }
        if (i > 0) t->st.rk = p->threads[0].st.rk;
    }
    for (int i = 0; i < n; i++) {
        struct pool_thread *t = &p->threads[i];
        if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
            snprintf(err, errlen, "cannot start a database thread");
            goto fail;
        }
        t->started = 1;
    }
    return p;
fail:
    api_pool_free(p);
    return NULL;
}

int api_pool_submit(struct api_pool *p, struct api_job *job)
{
    pthread_mutex_lock(&p->mu);
    if (p->queued >= MAX_QUEUED) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    job->submitted_us = mh_mono_us();
    push(&p->todo, &p->todo_tail, job);
    p->queued++;
    p->in_flight++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

const struct mh_histogram *api_pool_latency(const struct api_pool *p)
{
    return &p->latency;
}

size_t api_pool_in_flight(const struct api_pool *p)
{
    return p ? p->in_flight : 0;
}

void api_pool_free(struct api_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->threads[i].started) pthread_join(p->threads[i].tid, NULL);
    /* Jobs whose done step never ran (the loop ended first): the done step frees. */
    if (p->efd >= 0) on_wake(p->efd, 0, p);
    for (int i = p->n - 1; i >= 0; i--) {
        if (i > 0) p->threads[i].st.rk = NULL; /* borrowed */
        supp_store_close(&p->threads[i].st);
    }
    if (p->wake) event_free(p->wake);
    if (p->efd >= 0) close(p->efd);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
