/*
 * suppression.c — suppression effects of claimed events (see worker.h).
 *
 * The rules engine is not wired in yet: no event changes suppression state, and the
 * suppressions topic receives nothing. The hooks are in place in the claim transaction
 * (dedup.c) and the Kafka transaction (emit.c).
 */
#include "worker.h"

int suppression_apply(struct worker *w, struct batch *b, char *err, size_t errlen)
{
    (void)w;
    (void)b;
    (void)err;
    (void)errlen;
    return 0;
}

void suppression_release(struct worker *w)
{
    (void)w;
}
