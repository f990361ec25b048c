/*
 * raw_ref.h — the raw record a GET /v1/raw/{partition}/{offset} asks for, read from the
 * path by a pure function (api/raw_ref.c) that unit tests and fuzzers call directly.
 */
#ifndef MH_API_RAW_REF_H
#define MH_API_RAW_REF_H

#include <stddef.h>
#include <stdint.h>

struct api_raw_ref {
    int32_t partition;
    int64_t offset;
};

/*
 * Reads "PARTITION/OFFSET" (what follows /v1/raw/): each a whole number in decimal
 * digits only (no sign, no spaces, at most 19 digits), the partition at most INT32_MAX,
 * the offset below INT64_MAX. 0, or -1 with err (the 400's message).
 */
int api_raw_ref_parse(const char *tail, struct api_raw_ref *ref, char *err, size_t errlen);

#endif
