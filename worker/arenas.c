/*
 * arenas.c — the worker's malloc arena limit (arenas.h).
 */
#include "arenas.h"

#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

int arenas_limit(void)
{
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_ARENA_MAX") || (tunables && strstr(tunables, "glibc.malloc.arena_max")))
        return 0;
    return mallopt(M_ARENA_MAX, MH_WORKER_MALLOC_ARENAS) == 1 ? MH_WORKER_MALLOC_ARENAS : 0;
#else
    return 0;
#endif
}
