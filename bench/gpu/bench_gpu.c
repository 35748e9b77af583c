/*
 * bench/gpu/bench_gpu.c — times the U-Net on the CUDA backend: inference
 * (eval forward, logits copied back to the host) or a training step (train
 * forward, BCE + Dice loss and backward, Adam) at one size, precision and
 * batch. With --batch max it first finds the largest batch that fits
 * (fit_batch.h: every trial creates the backend and the model, runs one
 * step and frees both). Run by bench/gpu/run.sh beside bench_torch_gpu.py;
 * prints
 *   pneumoseg-fit mode=train size=512 precision=bf16 batch=96 capped=0 trials=9 s=14.2
 *   pneumoseg mode=train base=64 size=512 batch=96 precision=bf16 iters=4 ms=… img_s=…
 *     tflops=… peak_tflops=989 peak_pct=… mem_gib=…
 * (the second on one line). tflops counts the seed's 337.5 GFLOP per 512²
 * image forward (×3 for a training step), scaled by area and base width
 * squared; peak_tflops is the card's dense peak for the precision
 * (gpu_peaks.h; n/a for cards not in the table); mem_gib is the device
 * memory the model, its plan and the backend's workspaces held after the
 * run, beyond what the backend held when created (n/a where the backend
 * cannot tell). --backend reference runs the whole program on the
 * reference backend, a check of the program itself on a machine without a
 * GPU (its figures mean nothing).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/gpu/fit_batch.h"
#include "bench/gpu/gpu_peaks.h"
#include "common/error.h"
#include "common/rng.h"
#include "model/cuda/cuda_backend.h"
#include "model/unet.h"

/* The seed's forward cost at 512², base 64 (docs/gpu.md). */
#define SEED_GFLOP_FWD_512 337.5
#define EXIT_SKIP 77

typedef struct bench_config {
    int train;             /* 1: training step, 0: inference */
    int base, size;
    int batch;             /* 0: find the largest that fits */
    int max_batch, start_batch;
    int iters, max_iters, warmup;
    double seconds;        /* timed iterations go on at least this long */
    const char *precision; /* fp32, tf32, bf16 */
    int reference;         /* the reference backend stands in for the GPU */
    pnx_cuda_options opt;
} bench_config;

/* Host inputs for up to `images` images: one random image and mask
 * repeated, which costs the device the same as distinct ones. */
typedef struct host_batch {
    float *x, *t, *logits;
    size_t images, pixels;
} host_batch;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void host_batch_free(host_batch *hb)
{
    free(hb->x);
    free(hb->t);
    free(hb->logits);
    *hb = (host_batch){0};
}

static int host_batch_reserve(host_batch *hb, int size, int batch)
{
    const size_t pixels = (size_t)size * (size_t)size;
    if (hb->x && hb->pixels == pixels && hb->images >= (size_t)batch)
        return 0;
    if ((size_t)batch > SIZE_MAX / sizeof(float) / pixels)
        return pnx_fail(PNX_ERANGE, "batch %d of %d² images is too large", batch, size);
    host_batch_free(hb);
    const size_t count = pixels * (size_t)batch;
    hb->x = malloc(count * sizeof *hb->x);
    hb->t = malloc(count * sizeof *hb->t);
    hb->logits = malloc(count * sizeof *hb->logits);
    if (!hb->x || !hb->t || !hb->logits) {
        host_batch_free(hb);
        return pnx_fail(PNX_ENOMEM, "out of host memory for %d images of %d²", batch, size);
    }
    pnx_rng rng;
    pnx_rng_seed(&rng, 1, 0);
    for (size_t i = 0; i < pixels; i++) {
        hb->x[i] = (float)pnx_rng_normal(&rng);
        hb->t[i] = pnx_rng_uniform(&rng) < 0.1 ? 1.0f : 0.0f;
    }
    for (int k = 1; k < batch; k++) {
        memcpy(hb->x + (size_t)k * pixels, hb->x, pixels * sizeof *hb->x);
        memcpy(hb->t + (size_t)k * pixels, hb->t, pixels * sizeof *hb->t);
    }
    hb->images = (size_t)batch;
    hb->pixels = pixels;
    return 0;
}

static int create_backend(const bench_config *c, pnx_backend **be)
{
    return c->reference ? pnx_backend_reference_create(be)
                        : pnx_backend_cuda_create(be, &c->opt);
}

/* Device memory in use (0 where the backend's memory is the host's). */
static size_t device_used(pnx_backend *be, int *known)
{
    size_t free_b = 0, total_b = 0;
    *known = be->ops->mem_info && be->ops->mem_info(be, &free_b, &total_b) == 0;
    return *known && total_b >= free_b ? total_b - free_b : 0;
}

static int run_step(const bench_config *c, pnx_unet *m, host_batch *hb, int batch)
{
    if (!c->train)
        return pnx_unet_forward(m, hb->x, batch, c->size, c->size, 0, hb->logits);
    pnx_adam_hparams h = PNX_ADAM_DEFAULTS;
    h.lr = 1e-4;
    pnx_loss loss;
    int rc = pnx_unet_forward(m, hb->x, batch, c->size, c->size, 1, NULL);
    if (!rc)
        rc = pnx_unet_backward(m, hb->t, 1.0f, 1.0f, &loss);
    if (!rc)
        rc = pnx_unet_adam_step(m, &h);
    return rc;
}

/* Waits for the queued work: a read comes after the last Adam step. */
static int wait_idle(pnx_unet *m)
{
    float probe;
    return pnx_unet_read(m, "fc.bias", PNX_UNET_VALUE, &probe, 1);
}

typedef struct fit_ctx {
    const bench_config *c;
    host_batch *hb;
} fit_ctx;

/* One trial of the search: a fresh backend and model, one step, all freed.
 * Any failure of the step counts as "does not fit"; it is printed, so a
 * failure that is not about memory does not pass unnoticed. Failing to
 * create the backend itself stops the search. */
static int fit_trial(void *ctx, int batch)
{
    const fit_ctx *f = ctx;
    int rc = host_batch_reserve(f->hb, f->c->size, batch);
    if (rc)
        return rc;
    pnx_backend *be = NULL;
    rc = create_backend(f->c, &be);
    if (rc)
        return rc;
    pnx_unet *m = NULL;
    rc = pnx_unet_create(&m, be, f->c->base);
    if (!rc)
        rc = run_step(f->c, m, f->hb, batch);
    if (!rc)
        rc = wait_idle(m);
    if (rc)
        fprintf(stderr, "bench_gpu: batch %d does not fit: %s\n", batch, pnx_errmsg());
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);
    return rc == 0;
}

static int find_batch(bench_config *c, host_batch *hb)
{
    fit_ctx f = {c, hb};
    bench_fit_result r;
    double t0 = now_s();
    int rc = bench_fit_batch(fit_trial, &f, c->start_batch, c->max_batch, &r);
    if (rc)
        return pnx_fail_prefix(rc, "finding the largest batch");
    c->batch = r.batch;
    printf("pneumoseg-fit mode=%s size=%d precision=%s batch=%d capped=%d trials=%d s=%.1f\n",
           c->train ? "train" : "infer", c->size, c->precision, r.batch, r.capped, r.trials,
           now_s() - t0);
    fflush(stdout);
    return 0;
}

/* Names the device (the key of gpu_peaks.h) and prints the backend's
 * describe line, which holds the driver and cuDNN versions. */
static void device_name(pnx_backend *be, const bench_config *c, char *name, size_t size)
{
    char desc[512];
    if (c->reference) {
        snprintf(name, size, "reference backend (stand-in)");
        fprintf(stderr, "bench_gpu: backend %s\n", name);
        return;
    }
    pnx_backend_cuda_describe(be, desc, sizeof desc);
    fprintf(stderr, "bench_gpu: backend %s\n", desc);
    /* The describe line is "<name> (sm_XY, …), …". */
    char *end = strstr(desc, " (sm_");
    if (end)
        *end = '\0';
    snprintf(name, size, "%.*s", (int)(size - 1), desc);
}

static int time_batch(const bench_config *c, host_batch *hb)
{
    int rc = host_batch_reserve(hb, c->size, c->batch);
    if (rc)
        return rc;
    pnx_backend *be = NULL;
    pnx_unet *m = NULL;
    rc = create_backend(c, &be);
    if (rc)
        return rc;
    int known = 0;
    const size_t used0 = device_used(be, &known);
    rc = pnx_unet_create(&m, be, c->base);
    for (int it = 0; !rc && it < c->warmup; it++)
        rc = run_step(c, m, hb, c->batch);
    if (!rc)
        rc = wait_idle(m);
    double start = now_s(), elapsed = 0;
    int timed = 0;
    while (!rc) {
        rc = run_step(c, m, hb, c->batch);
        timed++;
        elapsed = now_s() - start;
        if ((timed >= c->iters && elapsed >= c->seconds) || timed >= c->max_iters)
            break;
    }
    if (!rc)
        rc = wait_idle(m);
    if (rc) {
        pnx_unet_destroy(m);
        pnx_backend_destroy(be);
        return rc;
    }
    const double per_iter = (now_s() - start) / timed;
    const size_t used1 = device_used(be, &known);
    char name[300];
    device_name(be, c, name, sizeof name);
    pnx_unet_destroy(m);
    pnx_backend_destroy(be);

    const double scale = ((double)c->size / 512) * ((double)c->size / 512) *
                         ((double)c->base / 64) * ((double)c->base / 64);
    const double gflop = SEED_GFLOP_FWD_512 * scale * (c->train ? 3.0 : 1.0);
    const double tflops = gflop * c->batch / per_iter / 1e3;
    const double peak = bench_gpu_peak_tflops(name, c->precision);
    char peak_text[32] = "n/a", pct_text[32] = "n/a", mem_text[32] = "n/a";
    if (peak > 0) {
        snprintf(peak_text, sizeof peak_text, "%.0f", peak);
        snprintf(pct_text, sizeof pct_text, "%.1f", 100.0 * tflops / peak);
    }
    if (known)
        snprintf(mem_text, sizeof mem_text, "%.2f",
                 (double)(used1 > used0 ? used1 - used0 : 0) / (1 << 30));
    printf("pneumoseg mode=%s base=%d size=%d batch=%d precision=%s iters=%d ms=%.2f "
           "img_s=%.2f tflops=%.1f peak_tflops=%s peak_pct=%s mem_gib=%s\n",
           c->train ? "train" : "infer", c->base, c->size, c->batch, c->precision, timed,
           per_iter * 1e3, c->batch / per_iter, tflops, peak_text, pct_text, mem_text);
    fflush(stdout);
    return 0;
}

static int usage(const char *why, const char *arg)
{
    fprintf(stderr,
            "bench_gpu: %s %s\n"
            "usage: bench_gpu [--mode infer|train] [--precision fp32|tf32|bf16] [--base B]\n"
            "                 [--size S] [--batch N|max] [--max-batch CAP] [--start-batch G]\n"
            "                 [--iters I] [--seconds T] [--max-iters M] [--warmup W]\n"
            "                 [--algo heuristic|measured] [--deterministic 0|1]\n"
            "                 [--backend cuda|reference]\n",
            why, arg);
    return 2;
}

/* An integer option in lo..hi; -1 when v is not one. */
static int int_arg(const char *v, int lo, int hi)
{
    char *end = NULL;
    long x = strtol(v, &end, 10);
    return end != v && !*end && x >= lo && x <= hi ? (int)x : -1;
}

static int parse_args(int argc, char **argv, bench_config *c)
{
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage("missing value for", k);
        int *target = NULL, lo = 1, hi = BENCH_FIT_MAX_CAP;
        if (strcmp(k, "--base") == 0) target = &c->base, hi = PNX_UNET_MAX_BASE_WIDTH;
        else if (strcmp(k, "--size") == 0) target = &c->size, lo = 16, hi = 16384;
        else if (strcmp(k, "--max-batch") == 0) target = &c->max_batch;
        else if (strcmp(k, "--start-batch") == 0) target = &c->start_batch;
        else if (strcmp(k, "--iters") == 0) target = &c->iters, hi = 100000;
        else if (strcmp(k, "--max-iters") == 0) target = &c->max_iters, hi = 100000;
        else if (strcmp(k, "--warmup") == 0) target = &c->warmup, lo = 0, hi = 1000;
        else if (strcmp(k, "--deterministic") == 0) target = &c->opt.deterministic, lo = 0, hi = 1;
        if (target) {
            if ((*target = int_arg(v, lo, hi)) < 0)
                return usage("bad value for", k);
        } else if (strcmp(k, "--batch") == 0) {
            c->batch = strcmp(v, "max") == 0 ? 0 : int_arg(v, 1, BENCH_FIT_MAX_CAP);
            if (c->batch < 0)
                return usage("--batch takes a count or max, not", v);
        } else if (strcmp(k, "--seconds") == 0) {
            char *end = NULL;
            c->seconds = strtod(v, &end);
            if (end == v || *end || !(c->seconds >= 0 && c->seconds <= 3600))
                return usage("bad value for", k);
        } else if (strcmp(k, "--mode") == 0 && (!strcmp(v, "train") || !strcmp(v, "infer"))) {
            c->train = strcmp(v, "train") == 0;
        } else if (strcmp(k, "--precision") == 0 &&
                   (!strcmp(v, "fp32") || !strcmp(v, "tf32") || !strcmp(v, "bf16"))) {
            c->precision = v;
        } else if (strcmp(k, "--algo") == 0 &&
                   (!strcmp(v, "heuristic") || !strcmp(v, "measured"))) {
            c->opt.algo_search = strcmp(v, "measured") == 0 ? PNX_CUDA_ALGO_MEASURED
                                                            : PNX_CUDA_ALGO_HEURISTIC;
        } else if (strcmp(k, "--backend") == 0 &&
                   (!strcmp(v, "cuda") || !strcmp(v, "reference"))) {
            c->reference = strcmp(v, "reference") == 0;
        } else {
            return usage("unknown option or value:", k);
        }
    }
    if (c->size % PNX_UNET_SIZE_MULTIPLE)
        return usage("--size must be a multiple of", "16");
    c->opt.allow_tf32 = strcmp(c->precision, "tf32") == 0;
    c->opt.mixed_bf16 = strcmp(c->precision, "bf16") == 0;
    return 0;
}

int main(int argc, char **argv)
{
    bench_config c = {
        .base = 64, .size = 512, .batch = 4, .max_batch = 256, .start_batch = 8,
        .iters = 3, .max_iters = 1000, .warmup = 2, .seconds = 1.0, .precision = "fp32",
        .opt = PNX_CUDA_OPTIONS_DEFAULT,
    };
    int rc = parse_args(argc, argv, &c);
    if (rc)
        return rc;
    char why[256];
    if (!c.reference && pnx_cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "bench_gpu: no GPU: %s\n", why);
        return EXIT_SKIP;
    }
    host_batch hb = {0};
    rc = c.batch == 0 ? find_batch(&c, &hb) : 0;
    if (!rc)
        rc = time_batch(&c, &hb);
    host_batch_free(&hb);
    if (rc) {
        fprintf(stderr, "bench_gpu: %s\n", pnx_errmsg());
        return 1;
    }
    return 0;
}
