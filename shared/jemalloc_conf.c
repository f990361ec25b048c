/*
 * jemalloc_conf.c — the allocator settings of mailhook-worker and mailhook-ingest, when
 * they are linked with jemalloc (CMake's MH_JEMALLOC, the default outside sanitizer
 * builds).
 *
 * A worker builds and frees a tree of JSON values for every event, on three threads at
 * once, and frees on one thread much of what another allocated. With glibc's allocator
 * malloc and free took about a sixth of the worker's CPU (perf, one worker draining
 * single-event records); jemalloc does the same work with 17–23 % less CPU a record
 * (docs/performance.md, "The allocator"). Ingest allocates a request's buffers, headers
 * and record on its event loops' threads and frees most of them on librdkafka's after
 * the acknowledgement: glibc's malloc and its consolidation of freed chunks took about a
 * quarter of its CPU at 15,000 requests a second; jemalloc took 13 % off ingest's CPU a
 * request (docs/performance.md).
 *
 * jemalloc reads this string when it starts; MALLOC_CONF in the environment is read
 * after it, so an operator can replace any of these:
 *   narenas:2         two arenas, as the worker's glibc build keeps (worker/arenas.h):
 *                     jemalloc's default of four per core let a worker draining batch
 *                     webhooks peak near 70 MiB, over the 64 MiB it is sized for;
 *   dirty_decay_ms    freed pages go back to the system within a second, not ten,
 *   muzzy_decay_ms    and at once once they were purged lazily: the pages a deep
 *                     batch leaves behind do not stay in the peak for the next ones.
 */
#include <jemalloc/jemalloc.h>

const char *malloc_conf = "narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0";
