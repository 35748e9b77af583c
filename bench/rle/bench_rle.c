/*
 * bench/rle/bench_rle.c — rows per second of pneumoseg's RLE decoding over
 * a whole CSV, measured the way bench/rle/numpy_decode.py measures numpy:
 * read the file, and for every row produce that row's row-major mask.
 *
 *   bench_rle decode CSV [WxH] [REPEATS]   prints one line per mode: wall and
 *                                          process CPU time, each the best of REPEATS
 *   bench_rle generate OUT.csv             writes a synthetic CSV the size of the
 *                                          real SIIM train file (for when it is absent)
 *
 * Modes:
 *   fresh   each row gets a newly calloc'd mask, freed after: what numpy's
 *           np.zeros per row does (lazily zeroed pages from the kernel);
 *   reused  one mask for the whole file; after each row its pixels are set
 *           back to 0 with pnx_rle_erase: what a caller that keeps one buffer
 *           does.
 * Both print the total of foreground pixels, which numpy_decode.py must match.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/image.h"
#include "common/rng.h"
#include "rle/rle.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int decode_file(const char *csv, uint32_t w, uint32_t h, int fresh, uint64_t *rows,
                       uint64_t *pixels)
{
    pnx_rle_reader *r;
    int rc = pnx_rle_reader_open(&r, csv);
    if (rc)
        return rc;
    pnx_image reused = {0};
    if (!fresh && (rc = pnx_image_alloc(&reused, w, h))) {
        pnx_rle_reader_close(r);
        return rc;
    }
    pnx_rle_row row;
    *rows = *pixels = 0;
    while ((rc = pnx_rle_reader_next(r, &row)) == 1) {
        pnx_image fresh_mask = {0};
        pnx_image *m = &reused;
        if (fresh) {
            if ((rc = pnx_image_alloc(&fresh_mask, w, h)))
                break;
            m = &fresh_mask;
        }
        uint64_t covered = 0;
        rc = pnx_rle_reader_decode(r, &row, PNX_RLE_FMT_RELATIVE, m, &covered);
        if (fresh)
            pnx_image_free(&fresh_mask);
        else if (!rc && covered)
            rc = pnx_rle_erase(row.encoded, row.encoded_len, PNX_RLE_FMT_RELATIVE, &reused);
        if (rc)
            break;
        (*rows)++;
        *pixels += covered;
    }
    pnx_image_free(&reused);
    pnx_rle_reader_close(r);
    return rc < 0 ? rc : 0;
}

static int bench_decode(const char *csv, uint32_t w, uint32_t h, int repeats)
{
    static const char *const names[] = {"reused", "fresh"};
    for (int fresh = 0; fresh < 2; fresh++) {
        double best = 1e30, best_cpu = 1e30;
        uint64_t rows = 0, pixels = 0;
        for (int k = 0; k < repeats; k++) {
            double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            int rc = decode_file(csv, w, h, fresh, &rows, &pixels);
            double t = clock_s(CLOCK_MONOTONIC) - t0, c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
            if (rc) {
                fprintf(stderr, "bench_rle: %s\n", pnx_errmsg());
                return 1;
            }
            if (t < best)
                best = t;
            if (c < best_cpu)
                best_cpu = c;
        }
        printf("pneumoseg %-6s rows %llu  foreground_pixels %llu  seconds %.4f  rows_per_s %.0f"
               "  cpu_seconds %.4f  rows_per_cpu_s %.0f\n",
               names[fresh], (unsigned long long)rows, (unsigned long long)pixels, best,
               (double)rows / best, best_cpu, (double)rows / best_cpu);
    }
    return 0;
}

/* A synthetic file shaped like the real one: 12,954 rows over 12,047 images,
 * 3,576 rows with a mask (a filled ellipse, about 11,000 pixels on average,
 * as in the real file), the rest "-1"; extra rows of one image are spread
 * through the file. */
enum { GEN_ROWS = 12954, GEN_IMAGES = 12047, GEN_MASK_ROWS = 3576, GEN_SIDE = 1024 };

static int generate(const char *out)
{
    pnx_rng rng;
    pnx_rng_seed(&rng, 4, 1);
    pnx_rle_writer *wr;
    pnx_image m = {0};
    int rc = pnx_rle_writer_open(&wr, out, PNX_RLE_CSV_STAGE1);
    if (!rc)
        rc = pnx_image_alloc(&m, GEN_SIDE, GEN_SIDE);
    const int extra = GEN_ROWS - GEN_IMAGES; /* rows repeating an earlier image */
    for (int i = 0; i < GEN_ROWS && !rc; i++) {
        char id[64];
        int image = i < GEN_IMAGES ? i : (int)pnx_rng_below(&rng, GEN_IMAGES);
        snprintf(id, sizeof id, "1.2.276.0.7230010.3.1.4.8323329.%d.1517875%03d.%d", image,
                 image % 1000, 100000 + image);
        /* the first GEN_MASK_ROWS - extra images and every extra row have a mask */
        int positive = i >= GEN_IMAGES || image < GEN_MASK_ROWS - extra;
        memset(m.pixels, 0, pnx_image_size(&m));
        if (positive) {
            double rx = 20 + pnx_rng_uniform(&rng) * 90, ry = 20 + pnx_rng_uniform(&rng) * 90;
            double cx = rx + pnx_rng_uniform(&rng) * (GEN_SIDE - 2 * rx);
            double cy = ry + pnx_rng_uniform(&rng) * (GEN_SIDE - 2 * ry);
            for (int y = (int)(cy - ry); y <= (int)(cy + ry); y++)
                for (int x = (int)(cx - rx); x <= (int)(cx + rx); x++) {
                    double dx = (x - cx) / rx, dy = (y - cy) / ry;
                    if (dx * dx + dy * dy <= 1.0)
                        m.pixels[(size_t)y * GEN_SIDE + x] = 1;
                }
        }
        rc = pnx_rle_writer_mask(wr, id, &m, PNX_RLE_FMT_RELATIVE);
    }
    pnx_image_free(&m);
    if (!rc)
        rc = pnx_rle_writer_commit(wr);
    else
        pnx_rle_writer_abort(wr);
    if (rc) {
        fprintf(stderr, "bench_rle: %s\n", pnx_errmsg());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "generate") == 0)
        return generate(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "decode") == 0) {
        unsigned w = 1024, h = 1024;
        int repeats = 5;
        if (argc >= 4 && (sscanf(argv[3], "%ux%u", &w, &h) != 2 || !w || !h || w > 65535 || h > 65535)) {
            fprintf(stderr, "bench_rle: bad size %s\n", argv[3]);
            return 2;
        }
        if (argc >= 5)
            repeats = atoi(argv[4]) > 0 ? atoi(argv[4]) : 1;
        return bench_decode(argv[2], w, h, repeats);
    }
    fprintf(stderr, "usage: bench_rle decode CSV [WxH] [REPEATS]\n"
                    "       bench_rle generate OUT.csv\n");
    return 2;
}
