/*
 * bench/model/bench_model.c — times the U-Net on the CPU backend: inference
 * (eval forward) or a training step (train forward + loss/backward + Adam)
 * at one size, and reports the process's peak resident memory. Run by
 * bench/model/run.sh beside bench_torch.py; prints one line:
 *   pneumoseg mode=train base=64 size=128 batch=2 threads=2 ms=… img_s=… peak_rss_mib=…
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/cpu/cpu_backend.h"
#include "model/unet.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int base = 64, size = 128, batch = 2, threads = 0, iters = 2, warmup = 1, train = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--base") == 0) base = v;
        else if (strcmp(argv[i], "--size") == 0) size = v;
        else if (strcmp(argv[i], "--batch") == 0) batch = v;
        else if (strcmp(argv[i], "--threads") == 0) threads = v;
        else if (strcmp(argv[i], "--iters") == 0) iters = v;
        else if (strcmp(argv[i], "--warmup") == 0) warmup = v;
        else if (strcmp(argv[i], "--mode") == 0) train = strcmp(argv[i + 1], "train") == 0;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 1;
        }
    }
    pnx_backend *be = NULL;
    pnx_unet *m = NULL;
    if (pnx_backend_cpu_create(&be, (unsigned)threads) || pnx_unet_create(&m, be, base)) {
        fprintf(stderr, "%s\n", pnx_errmsg());
        return 1;
    }
    size_t count = (size_t)batch * size * size;
    float *x = malloc(count * sizeof *x), *t = malloc(count * sizeof *t);
    if (!x || !t)
        return 1;
    pnx_rng rng;
    pnx_rng_seed(&rng, 1, 0);
    for (size_t i = 0; i < count; i++) {
        x[i] = (float)pnx_rng_normal(&rng);
        t[i] = (float)(pnx_rng_uniform(&rng) < 0.1);
    }
    const pnx_adam_hparams adam = {1e-4, 0.9, 0.999, 1e-8, 0.0};
    double start = 0;
    for (int it = 0; it < warmup + iters; it++) {
        if (it == warmup)
            start = now_s();
        pnx_loss loss;
        int rc = train ? pnx_unet_forward(m, x, batch, size, size, 1, NULL)
                       : pnx_unet_forward(m, x, batch, size, size, 0, t);
        if (!rc && train)
            rc = pnx_unet_backward(m, t, 1.0f, 1.0f, &loss);
        if (!rc && train)
            rc = pnx_unet_adam_step(m, &adam);
        if (rc) {
            fprintf(stderr, "%s\n", pnx_errmsg());
            return 1;
        }
    }
    double per_iter = iters > 0 ? (now_s() - start) / iters : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("pneumoseg mode=%s base=%d size=%d batch=%d threads=%d ms=%.1f img_s=%.3f "
           "peak_rss_mib=%.0f\n",
           train ? "train" : "infer", base, size, batch, threads, per_iter * 1e3,
           per_iter > 0 ? batch / per_iter : 0.0, ru.ru_maxrss / 1024.0);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
    free(x);
    free(t);
    return 0;
}
