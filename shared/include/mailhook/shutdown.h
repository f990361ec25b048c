/*
 * shutdown.h — the staged shutdown of an HTTP server on one event loop (mailhook-ingest's
 * loops, mailhook-api).
 *
 * Stop listening at once; then let the requests already taken get their answers,
 * asking every poll_ms how many are still unanswered; then end the loop. If answers
 * are still missing after grace_ms, the loop ends anyway and a warning says how many.
 * Ending the loop: after linger_ms more, so that the last replies get written out, or
 * at once with 0.
 */
#ifndef MH_SHUTDOWN_H
#define MH_SHUTDOWN_H

#include <event2/event.h>
#include <stdint.h>

struct mh_shutdown_spec {
    void (*stop_listening)(void *arg);
    long (*unanswered)(void *arg); /* requests taken and not answered yet */
    void *arg;
    long grace_ms;
    long poll_ms;
    long linger_ms;
    const char *what; /* the warning's words for what is left: "requests unanswered" */
};

struct mh_shutdown;

/* Begins the shutdown of the server on base (on base's thread). Never fails: without
 * memory for its timer it ends the loop at once. Free the result after the loop ended. */
struct mh_shutdown *mh_shutdown_begin(struct event_base *base, const struct mh_shutdown_spec *spec);
/* When the grace period ends (mh_mono_ms clock; now for NULL): what follows the loop
 * (flushing a producer, say) may take what is left of it. */
int64_t mh_shutdown_grace_end_ms(const struct mh_shutdown *sd);
void mh_shutdown_free(struct mh_shutdown *sd);

#endif
