/*
 * fuzz_replay.c — runs a fuzz target without libFuzzer, over files (a corpus or crash
 * reproducers): each file becomes mh_fuzz_variants() inputs (e.g. one per provider)
 * through the target's mh_fuzz_seed. ctest runs every target this way over
 * tests/fixtures in every build.
 *
 *   fuzz_X_replay FILE...               run the target on every variant of every file
 *   fuzz_X_replay --seeds DIR FILE...   write those inputs into DIR instead (the seed
 *                                       corpus of a libFuzzer run, tests/fuzz/run)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAX_INPUT (1 << 20)

static int write_seed(const char *dir, int file_no, unsigned variant, const uint8_t *in, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/seed-%05d-%03u", dir, file_no, variant);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        fprintf(stderr, "fuzz_replay: cannot write %s\n", path);
        return -1;
    }
    size_t w = fwrite(in, 1, n, fp);
    int rc = fclose(fp);
    return (w == n && rc == 0) ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *seeds = NULL;
    int first = 1;
    if (argc > 2 && !strcmp(argv[1], "--seeds")) {
        seeds = argv[2];
        first = 3;
    }
    uint8_t *file = malloc(MAX_INPUT);
    uint8_t *in = malloc(MAX_INPUT);
    if (!file || !in) return 1;
    long runs = 0;
    int status = 0;
    for (int i = first; i < argc && status == 0; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) {
            fprintf(stderr, "fuzz_replay: cannot open %s\n", argv[i]);
            status = 1;
            break;
        }
        size_t n = fread(file, 1, MAX_INPUT, fp);
        fclose(fp);
        for (unsigned v = 0; v < mh_fuzz_variants(); v++) {
            size_t len = mh_fuzz_seed(file, n, v, in, MAX_INPUT);
            if (seeds) {
                if (write_seed(seeds, i - first, v, in, len) < 0) status = 1;
            } else {
                /* A copy of exactly len bytes, so a read past the input is caught. */
                uint8_t *exact = malloc(len ? len : 1);
                memcpy(exact, in, len);
                LLVMFuzzerTestOneInput(exact, len);
                free(exact);
            }
            runs++;
        }
    }
    free(file);
    free(in);
    if (status == 0)
        printf("fuzz_replay: %ld %s from %d files\n", runs, seeds ? "seeds written" : "runs",
               argc - first);
    return status;
}
