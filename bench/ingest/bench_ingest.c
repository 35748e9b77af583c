/*
 * bench/ingest/bench_ingest.c — decodes every DICOM file under a folder
 * with pneumoseg's isolated worker pool (or in-process, --unisolated) and
 * prints images per second.
 *
 *   bench_ingest [--workers N] [--unisolated] DIR
 * Output: "files=N ok=K seconds=S img_s=X"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "ingest/ingest.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    unsigned workers = 0;
    int unisolated = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            workers = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--unisolated") == 0)
            unisolated = 1;
        else
            dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "usage: bench_ingest [--workers N] [--unisolated] DIR\n");
        return 1;
    }
    pnx_ingest_file_list files;
    if (pnx_ingest_walk(dir, &files) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", pnx_errmsg());
        return 3;
    }
    size_t ok = 0;
    double t0, t1;
    if (unisolated) {
        t0 = now_s();
        for (size_t i = 0; i < files.count; i++) {
            pnx_decode_result r;
            pnx_decode_file_unisolated(files.files[i].path, NULL, PNX_DECODE_PIXELS, &r);
            ok += r.error_kind == PNX_INGEST_OK;
            pnx_decode_result_free(&r);
        }
        t1 = now_s();
    } else {
        pnx_decode_pool *pool = NULL;
        /* The workers' start-up (fork) counts: it is part of every run. */
        t0 = now_s();
        if (pnx_decode_pool_create(&pool, workers, NULL) != 0) {
            fprintf(stderr, "bench_ingest: %s\n", pnx_errmsg());
            return 3;
        }
        for (size_t i = 0; i < files.count; i++)
            pnx_decode_pool_submit(pool, i, files.files[i].path, PNX_DECODE_PIXELS);
        pnx_decode_result r;
        while (pnx_decode_pool_next(pool, &r) == 0) {
            ok += r.error_kind == PNX_INGEST_OK;
            pnx_decode_result_free(&r);
        }
        t1 = now_s();
        pnx_decode_pool_destroy(pool);
    }
    double s = t1 - t0;
    printf("files=%zu ok=%zu seconds=%.3f img_s=%.1f\n", files.count, ok, s,
           s > 0 ? (double)files.count / s : 0.0);
    pnx_ingest_file_list_free(&files);
    return ok == files.count ? 0 : 2;
}
