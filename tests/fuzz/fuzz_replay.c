/*
 * fuzz_replay.c — runs a fuzz target over files (a corpus or crash reproducers) without
 * libFuzzer: each file is fed once per provider (the first byte selects the provider).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) {
            fprintf(stderr, "fuzz_replay: cannot open %s\n", argv[i]);
            return 1;
        }
        uint8_t *buf = malloc(1 << 20);
        size_t n = fread(buf + 1, 1, (1 << 20) - 1, fp);
        fclose(fp);
        for (int sel = 0; sel < 16; sel++) {
            buf[0] = (uint8_t)sel;
            LLVMFuzzerTestOneInput(buf, n + 1);
            runs++;
        }
        free(buf);
    }
    printf("fuzz_replay: %d runs over %d files\n", runs, argc - 1);
    return 0;
}
