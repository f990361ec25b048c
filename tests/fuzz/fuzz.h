/*
 * fuzz.h — what every fuzz target defines besides LLVMFuzzerTestOneInput, so that one
 * driver (fuzz_replay.c) can run it without libFuzzer and turn tests/fixtures into its
 * seed corpus.
 */
#ifndef MH_FUZZ_H
#define MH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How many inputs the target makes of one corpus file (e.g. one per provider). */
unsigned mh_fuzz_variants(void);

/*
 * Input number variant made of a corpus file's bytes, written to out (cap bytes).
 * Returns its length (at most cap).
 */
size_t mh_fuzz_seed(const uint8_t *file, size_t len, unsigned variant, uint8_t *out, size_t cap);

#endif
