/*
 * shutdown.c — the staged shutdown of an HTTP server on one event loop (shutdown.h).
 */
#include "mailhook/shutdown.h"

#include <stdlib.h>

#include "mailhook/log.h"
#include "mailhook/timeutil.h"

struct mh_shutdown {
    struct event_base *base;
    struct mh_shutdown_spec spec;
    int64_t until_ms; /* the grace period ends */
    struct event *poll;
};

static void end_loop(struct event_base *base, long linger_ms)
{
    if (linger_ms <= 0) {
        event_base_loopbreak(base);
        return;
    }
    struct timeval tv = {linger_ms / 1000, (linger_ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct mh_shutdown *sd = arg;
    (void)fd;
    (void)what;
    long left = sd->spec.unanswered(sd->spec.arg);
    if (left > 0 && mh_mono_ms() < sd->until_ms) return;
    if (left > 0) mh_warn("shutdown: %ld %s", left, sd->spec.what);
    event_del(sd->poll);
    end_loop(sd->base, sd->spec.linger_ms);
}

struct mh_shutdown *mh_shutdown_begin(struct event_base *base, const struct mh_shutdown_spec *spec)
{
    spec->stop_listening(spec->arg);
    struct mh_shutdown *sd = calloc(1, sizeof(*sd));
    if (sd) sd->poll = event_new(base, -1, EV_PERSIST, on_poll, sd);
    if (!sd || !sd->poll) {
        mh_error("shutdown: out of memory; not waiting for requests in flight");
        free(sd);
        end_loop(base, spec->linger_ms);
        return NULL;
    }
    sd->base = base;
    sd->spec = *spec;
    sd->until_ms = mh_mono_ms() + spec->grace_ms;
    struct timeval tv = {spec->poll_ms / 1000, (spec->poll_ms % 1000) * 1000};
    event_add(sd->poll, &tv);
    return sd;
}

int64_t mh_shutdown_grace_end_ms(const struct mh_shutdown *sd)
{
    return sd ? sd->until_ms : mh_mono_ms();
}

void mh_shutdown_free(struct mh_shutdown *sd)
{
    if (!sd) return;
    event_free(sd->poll);
    free(sd);
}
