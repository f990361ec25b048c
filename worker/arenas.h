/*
 * arenas.h — how many malloc arenas the worker's threads share.
 *
 * glibc gives each thread that allocates while another holds the arena lock an arena
 * of its own, up to eight per core. A worker's threads — its pipeline's three (claim,
 * parse, commit) and librdkafka's — allocate a batch in one arena and free it in
 * another, and every arena keeps the pages its freed chunks leave behind, so the
 * process held far more than it used: with two arenas a worker peaked 4–16 MiB lower
 * for the same CPU a record (docs/performance.md, "Memory").
 * MALLOC_ARENA_MAX, or glibc.malloc.arena_max in GLIBC_TUNABLES, replaces the limit.
 */
#ifndef MH_WORKER_ARENAS_H
#define MH_WORKER_ARENAS_H

#define MH_WORKER_MALLOC_ARENAS 2

/* Limits the arenas to MH_WORKER_MALLOC_ARENAS unless the environment sets a limit;
 * to be called before any thread starts. Returns the limit set, or 0 when it left
 * glibc's (the environment's, or not glibc). */
int arenas_limit(void);

#endif
