/*
 * bench/gpu/bench_gpu.c — times the U-Net on the CUDA backend: inference
 * (eval forward, logits copied back to the host) or a training step (train
 * forward, BCE + Dice loss and backward, Adam) at one size and batch. Run by
 * bench/gpu/run.sh beside bench_torch_gpu.py; prints one line:
 *   pneumoseg mode=train base=64 size=512 batch=8 precision=fp32 ms=… img_s=… tflops=…
 * tflops counts the seed's 337.5 GFLOP per 512² image forward (×3 for a
 * training step), scaled by area and base width squared (docs/gpu.md).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/cuda/cuda_backend.h"
#include "model/unet.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int usage(const char *opt)
{
    fprintf(stderr,
            "bench_gpu: unknown option %s\n"
            "usage: bench_gpu [--mode infer|train] [--base B] [--size S] [--batch N]\n"
            "                 [--iters I] [--warmup W] [--tf32 0|1] [--algo heuristic|measured]\n"
            "                 [--deterministic 0|1]\n",
            opt);
    return 2;
}

int main(int argc, char **argv)
{
    int base = 64, size = 512, batch = 4, iters = 10, warmup = 3, train = 0;
    pnx_cuda_options opt = PNX_CUDA_OPTIONS_DEFAULT;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return usage(argv[i]);
        const char *v = argv[i + 1];
        if (strcmp(argv[i], "--base") == 0) base = atoi(v);
        else if (strcmp(argv[i], "--size") == 0) size = atoi(v);
        else if (strcmp(argv[i], "--batch") == 0) batch = atoi(v);
        else if (strcmp(argv[i], "--iters") == 0) iters = atoi(v);
        else if (strcmp(argv[i], "--warmup") == 0) warmup = atoi(v);
        else if (strcmp(argv[i], "--tf32") == 0) opt.allow_tf32 = atoi(v);
        else if (strcmp(argv[i], "--deterministic") == 0) opt.deterministic = atoi(v);
        else if (strcmp(argv[i], "--algo") == 0)
            opt.algo_search = strcmp(v, "measured") == 0 ? PNX_CUDA_ALGO_MEASURED
                                                        : PNX_CUDA_ALGO_HEURISTIC;
        else if (strcmp(argv[i], "--mode") == 0) train = strcmp(v, "train") == 0;
        else
            return usage(argv[i]);
    }
    if (iters < 1 || batch < 1 || size < 16) {
        fprintf(stderr, "bench_gpu: iters, batch must be >= 1 and size >= 16\n");
        return 2;
    }
    char why[256];
    if (pnx_cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "bench_gpu: %s\n", why);
        return 77;
    }
    pnx_backend *be = NULL;
    pnx_unet *m = NULL;
    if (pnx_backend_cuda_create(&be, &opt) || pnx_unet_create(&m, be, base)) {
        fprintf(stderr, "bench_gpu: %s\n", pnx_errmsg());
        return 1;
    }
    char desc[512];
    pnx_backend_cuda_describe(be, desc, sizeof desc);
    fprintf(stderr, "bench_gpu: %s\n", desc);

    const size_t count = (size_t)batch * size * size;
    float *x = malloc(count * sizeof *x), *t = malloc(count * sizeof *t);
    float *logits = malloc(count * sizeof *logits);
    if (!x || !t || !logits) {
        fprintf(stderr, "bench_gpu: out of host memory\n");
        return 1;
    }
    pnx_rng rng;
    pnx_rng_seed(&rng, 1, 0);
    for (size_t i = 0; i < count; i++) {
        x[i] = (float)pnx_rng_normal(&rng);
        t[i] = pnx_rng_uniform(&rng) < 0.1 ? 1.0f : 0.0f;
    }
    pnx_adam_hparams h = PNX_ADAM_DEFAULTS;
    h.lr = 1e-4;
    double start = 0;
    int rc = 0;
    for (int it = 0; !rc && it < warmup + iters; it++) {
        if (it == warmup)
            start = now_s();
        if (train) {
            pnx_loss loss;
            rc = pnx_unet_forward(m, x, batch, size, size, 1, NULL);
            if (!rc)
                rc = pnx_unet_backward(m, t, 1.0f, 1.0f, &loss);
            if (!rc)
                rc = pnx_unet_adam_step(m, &h);
        } else {
            rc = pnx_unet_forward(m, x, batch, size, size, 0, logits);
        }
    }
    /* A read waits for the queued work (the last Adam step). */
    float probe;
    if (!rc)
        rc = pnx_unet_read(m, "fc.bias", PNX_UNET_VALUE, &probe, 1);
    if (rc) {
        fprintf(stderr, "bench_gpu: %s\n", pnx_errmsg());
        return 1;
    }
    const double per_iter = (now_s() - start) / iters;
    const double gflop_fwd = 337.5 * ((double)size / 512) * ((double)size / 512) *
                             ((double)base / 64) * ((double)base / 64);
    const double tflops = gflop_fwd * (train ? 3.0 : 1.0) * batch / per_iter / 1e3;
    printf("pneumoseg mode=%s base=%d size=%d batch=%d precision=%s ms=%.2f img_s=%.2f "
           "tflops=%.1f\n", train ? "train" : "infer", base, size, batch,
           opt.allow_tf32 ? "tf32" : "fp32", per_iter * 1e3, batch / per_iter, tflops);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
    free(x);
    free(t);
    free(logits);
    return 0;
}
