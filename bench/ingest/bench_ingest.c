/*
 * bench/ingest/bench_ingest.c — decodes every DICOM file under a folder
 * with pneumoseg's isolated worker pool (or in-process, --unisolated) and
 * prints images per second.
 *
 *   bench_ingest [--workers N] [--unisolated] DIR
 * Output: "files=N ok=K seconds=S img_s=X cpu_ms_per_img=C" (C counts the
 * workers' CPU time too: on a busy machine it is the steadier figure).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/error.h"
#include "ingest/ingest.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of this process and its reaped children (the workers). */
static double cpu_s(void)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
                    kids.ru_stime.tv_sec) +
           (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
                    kids.ru_stime.tv_usec) / 1e6;
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
    double c0 = cpu_s();
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
        pnx_decode_pool_destroy(pool); /* reaps the workers: their CPU time counts */
        t1 = now_s();
    }
    double s = t1 - t0;
    double cpu_ms = (cpu_s() - c0) * 1e3 / (double)(files.count ? files.count : 1);
    printf("files=%zu ok=%zu seconds=%.3f img_s=%.1f cpu_ms_per_img=%.2f\n", files.count, ok, s,
           s > 0 ? (double)files.count / s : 0.0, cpu_ms);
    pnx_ingest_file_list_free(&files);
    return ok == files.count ? 0 : 2;
}
