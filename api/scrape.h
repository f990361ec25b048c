/*
 * scrape.h — the per-source rings scrape.c fills, for sources_stats.c.
 */
#ifndef MH_API_SCRAPE_H
#define MH_API_SCRAPE_H

#include "endpoint.h"
#include "ring.h"

struct scrape_source {
    char *name;
    struct src_ring ring;
};

/* The ring of source name; NULL when none was scraped (create: make one). */
struct scrape_source *scrape_source_of(struct api_scraper *sc, const char *name, int create);

#endif
