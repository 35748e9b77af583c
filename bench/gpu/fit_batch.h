/*
 * bench/gpu/fit_batch.h — the largest batch for which a trial succeeds:
 * doubling from a first guess until a trial fails (or the cap is reached),
 * then bisection between the last success and the first failure.
 *
 * Promises: with a trial that is monotone (a batch that fits means every
 * smaller one fits), the result is the largest fitting batch in 1..cap, found
 * in about 2·log2(batch) trials, each at most twice the answer. The trial is
 * the caller's: on a GPU it creates the backend and the model, runs one step
 * and frees both, so every trial starts from empty device memory. No
 * allocation, no I/O: a plain function a test drives with a fake trial.
 */
#ifndef PNX_BENCH_GPU_FIT_BATCH_H
#define PNX_BENCH_GPU_FIT_BATCH_H

/* Batches above this are refused (the doubling never overflows an int). */
#define BENCH_FIT_MAX_CAP (1 << 24)

/* One trial at batch (>= 1): 1 when it fits, 0 when it does not, or a
 * negative PNX_E… code (after pnx_fail) that stops the search. */
typedef int (*bench_fit_trial)(void *ctx, int batch);

typedef struct bench_fit_result {
    int batch;  /* the largest batch that fit */
    int capped; /* 1 when that is the cap: larger batches were not tried */
    int trials; /* trials run */
} bench_fit_result;

/* Searches 1..cap starting at guess (clamped into 1..cap). Returns 0 with
 * *out filled; PNX_ERANGE when even batch 1 does not fit; PNX_EINVAL for a
 * cap outside 1..BENCH_FIT_MAX_CAP; or the trial's own error code. */
int bench_fit_batch(bench_fit_trial trial, void *ctx, int guess, int cap,
                    bench_fit_result *out);

#endif
