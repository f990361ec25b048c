/*
 * parser.c — a batch's parse on a thread of its own (parser.h).
 *
 * Parsing is the worker's own CPU work — each provider's JSON, the storable check, the
 * event's text — and the claim before it is PostgreSQL's, so the two overlap. What
 * makes that safe: normalize_batch writes only the batch it is given and reads the
 * configuration, which nothing changes while the worker runs; the providers keep no
 * state of their own.
 */
#include "parser.h"
#include "mailhook/timeutil.h"

static void *parse_thread(void *arg)
{
    struct parser *p = arg;
    int64_t t = mh_mono_ms();
    p->parsed = normalize_batch(p->w, p->b, (size_t)p->w->cfg->worker.batch_max_events);
    atomic_fetch_add_explicit(&p->w->stats.normalize_ms, (uint64_t)(mh_mono_ms() - t),
                              memory_order_relaxed);
    return NULL;
}

void parser_start(struct parser *p, struct worker *w, struct batch *b)
{
    *p = (struct parser){.w = w, .b = b};
    if (pthread_create(&p->thread, NULL, parse_thread, p) != 0) {
        parse_thread(p);
        return;
    }
    p->running = 1;
}

void parser_join(struct parser *p)
{
    if (p->running) pthread_join(p->thread, NULL);
    p->running = 0;
}
