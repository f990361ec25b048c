/* event_counts.c — committed events by source and type (event_counts.h). */
#include "event_counts.h"

#include <stdlib.h>
#include <string.h>

#include "mailhook/event_types.h"
#include "pipeline.h"

int event_counts_init(struct event_counts *c, const struct mh_config *cfg)
{
    c->cfg = cfg;
    c->n = NULL;
    size_t cells = cfg->n_sources * mh_event_types_n;
    if (!cells) return 0;
    c->n = calloc(cells, sizeof(*c->n));
    return c->n ? 0 : -1;
}

void event_counts_free(struct event_counts *c)
{
    free(c->n);
    c->n = NULL;
}

/* The index of the source named NAME, or -1 (a source removed from the config since the
 * record was taken: not counted, as there is no series for it). */
static long source_index(const struct mh_config *cfg, const char *name)
{
    if (!name) return -1;
    for (size_t i = 0; i < cfg->n_sources; i++)
        if (!strcmp(cfg->sources[i]->name, name)) return (long)i;
    return -1;
}

void event_counts_add_batch(struct event_counts *c, const struct batch *b)
{
    if (!c->n) return;
    for (size_t i = 0; i < b->n; i++) {
        const struct batch_rec *r = &b->recs[i];
        if (r->dlq_reason || !r->events || !r->emit) continue;
        long src = -2; /* looked up once per record: its events share one source */
        size_t j;
        json_t *ev;
        json_array_foreach(r->events, j, ev) {
            if (!r->emit[j]) continue;
            if (src == -2)
                src = source_index(c->cfg, json_string_value(json_object_get(ev, "source")));
            if (src < 0) break;
            size_t t = mh_event_type_index(json_string_value(json_object_get(ev, "type")));
            atomic_fetch_add_explicit(&c->n[(size_t)src * mh_event_types_n + t], 1,
                                      memory_order_relaxed);
        }
    }
}

uint64_t event_counts_get(const struct event_counts *c, size_t source, size_t type)
{
    if (!c->n || source >= c->cfg->n_sources || type >= mh_event_types_n) return 0;
    return atomic_load_explicit(&c->n[source * mh_event_types_n + type], memory_order_relaxed);
}
