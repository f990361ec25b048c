/*
 * parser.h — parses a newly collected batch (normalize_batch) on a thread of its own
 * while the worker's main thread claims the batch before it in PostgreSQL and the
 * committer sends the one before that to Kafka (worker/main.c).
 */
#ifndef MH_WORKER_PARSER_H
#define MH_WORKER_PARSER_H

#include <pthread.h>

#include "pipeline.h"

struct parser {
    struct worker *w;
    struct batch *b;
    size_t parsed; /* records parsed, after the join: the rest are over batch_max_events */
    pthread_t thread;
    int running;
};

/* Starts normalize_batch(w, b, [worker] batch_max_events); b must stay as it is until the
 * join. When no thread can be started, parses here. normalize_batch only reads w's
 * configuration. */
void parser_start(struct parser *p, struct worker *w, struct batch *b);
/* Waits until the batch is parsed. */
void parser_join(struct parser *p);

#endif
