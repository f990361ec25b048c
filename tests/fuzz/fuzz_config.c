/*
 * fuzz_config.c — fuzz target for the config loader (mh_config_load: inih, the key
 * tables, every provider's option checks and init). The input is the file.
 * Checked for any input: no crash or leak (sanitizers); a refused file gets an error
 * that starts with the file's name (the "FILE:LINE: problem" contract); an accepted one
 * frees cleanly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "mailhook/config.h"
#include "mailhook/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mh_log_threshold = MH_LOG_OFF; /* init warnings (expired certificates...) */
    /* A memory file: no disk traffic per input. */
    int fd = memfd_create("mailhook-fuzz.ini", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char err[1024] = "";
    struct mh_config *cfg = mh_config_load(path, err, sizeof(err));
    if (cfg)
        mh_config_free(cfg);
    else if (strncmp(err, path, strlen(path)) != 0)
        __builtin_trap(); /* an error that does not name the file */
    close(fd);
    return 0;
}

unsigned mh_fuzz_variants(void)
{
    return 1;
}

size_t mh_fuzz_seed(const uint8_t *file, size_t len, unsigned variant, uint8_t *out, size_t cap)
{
    size_t n = len < cap ? len : cap;
    memcpy(out, file, n);
    return n;
}
