/*
 * tests/test_rle_support.h — helpers shared by the rle/ tests: an
 * independent, deliberately naive decoder (one pixel at a time, strtoull,
 * no validation shortcuts shared with rle/codec.c) used as the reference,
 * and small file helpers.
 */
#ifndef PNX_TESTS_TEST_RLE_SUPPORT_H
#define PNX_TESTS_TEST_RLE_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/image.h"

/* ORs the runs of text into mask; starts relative (absolute = 0) or
 * absolute. Assumes valid input (the tests give it only valid strings).
 * Returns the number of runs. */
static inline size_t naive_decode(const char *text, int absolute, pnx_image *mask)
{
    const uint64_t n = (uint64_t)mask->width * mask->height;
    const char *p = text;
    char *end;
    uint64_t pos = 0;
    size_t runs = 0;
    while (*p == ' ')
        p++;
    if (strncmp(p, "-1", 2) == 0)
        return 0;
    for (;;) {
        unsigned long long start = strtoull(p, &end, 10);
        if (end == p)
            break;
        p = end;
        unsigned long long length = strtoull(p, &end, 10);
        p = end;
        uint64_t first = absolute ? start : pos + start;
        for (uint64_t k = first; k < first + length && k < n; k++) {
            uint32_t x = (uint32_t)(k / mask->height), y = (uint32_t)(k % mask->height);
            mask->pixels[(size_t)y * mask->width + x] = 1;
        }
        pos = first + length;
        runs++;
    }
    return runs;
}

static inline void write_text_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (len && fwrite(text, 1, len, f) != len)
        abort();
    fclose(f);
}

#endif
