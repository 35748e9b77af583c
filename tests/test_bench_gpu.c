/*
 * tests/test_bench_gpu.c — the GPU benchmark's pure parts, which run
 * anywhere: the largest-batch search (bench/gpu/fit_batch.h) against fake
 * trials with a known memory limit, and the table of card peaks
 * (bench/gpu/gpu_peaks.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bench/gpu/fit_batch.h"
#include "bench/gpu/gpu_peaks.h"
#include "common/error.h"

/* A trial that fits up to `limit` and can fail hard at `broken`. */
typedef struct fake_device {
    int limit;
    int broken; /* 0: never */
    int trials, largest_tried;
} fake_device;

static int fake_trial(void *ctx, int batch)
{
    fake_device *d = ctx;
    assert_true(batch >= 1);
    d->trials++;
    if (batch > d->largest_tried)
        d->largest_tried = batch;
    if (d->broken && batch == d->broken)
        return pnx_fail(PNX_EDEVICE, "broken at %d", batch);
    return batch <= d->limit;
}

static int ceil_log2(int x)
{
    int k = 0;
    while ((1 << k) < x)
        k++;
    return k;
}

static void test_search_finds_the_limit(void **state)
{
    (void)state;
    const int limits[] = {1, 2, 3, 7, 8, 9, 31, 48, 100, 255, 256, 257, 5000};
    const int guesses[] = {1, 2, 8, 64, 300, 100000};
    const int caps[] = {1, 5, 256, 4096};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        for (size_t g = 0; g < sizeof guesses / sizeof guesses[0]; g++)
            for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
                fake_device d = {.limit = limits[i]};
                bench_fit_result r;
                assert_int_equal(bench_fit_batch(fake_trial, &d, guesses[g], caps[c], &r), 0);
                const int want = limits[i] < caps[c] ? limits[i] : caps[c];
                assert_int_equal(r.batch, want);
                assert_int_equal(r.capped, limits[i] >= caps[c]);
                assert_int_equal(r.trials, d.trials);
                /* Never past the cap; the doubling overshoots the answer by
                 * at most 2× (or starts at the guess). */
                assert_true(d.largest_tried <= caps[c]);
                const int guess = guesses[g] < caps[c] ? guesses[g] : caps[c];
                assert_true(d.largest_tried <= (2 * want > guess ? 2 * want : guess));
                /* Doubling from the guess, then bisection of an interval
                 * inside 1..cap: each part at most log2(cap) + 1 trials. */
                assert_true(d.trials <= 2 * ceil_log2(caps[c]) + 2);
            }
}

static void test_nothing_fits(void **state)
{
    (void)state;
    fake_device d = {.limit = 0};
    bench_fit_result r;
    assert_int_equal(bench_fit_batch(fake_trial, &d, 8, 256, &r), PNX_ERANGE);
    assert_int_equal(r.batch, 0);
    assert_int_equal(d.largest_tried, 8);
}

static void test_a_hard_failure_stops_the_search(void **state)
{
    (void)state;
    fake_device d = {.limit = 100, .broken = 64};
    bench_fit_result r;
    assert_int_equal(bench_fit_batch(fake_trial, &d, 8, 256, &r), PNX_EDEVICE);
    assert_int_equal(d.largest_tried, 64);
    assert_int_equal(d.trials, 4); /* 8, 16, 32, 64 */
}

static void test_bad_cap(void **state)
{
    (void)state;
    fake_device d = {.limit = 4};
    bench_fit_result r;
    assert_int_equal(bench_fit_batch(fake_trial, &d, 1, 0, &r), PNX_EINVAL);
    assert_int_equal(bench_fit_batch(fake_trial, &d, 1, BENCH_FIT_MAX_CAP + 1, &r),
                     PNX_EINVAL);
    assert_int_equal(d.trials, 0);
    assert_int_equal(bench_fit_batch(fake_trial, &d, 1, BENCH_FIT_MAX_CAP, &r), 0);
    assert_int_equal(r.batch, 4);
}

static void test_peaks(void **state)
{
    (void)state;
    assert_true(bench_gpu_peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.0);
    assert_true(bench_gpu_peak_tflops("NVIDIA H100 80GB HBM3", "tf32") == 495.0);
    assert_true(bench_gpu_peak_tflops("NVIDIA H100 80GB HBM3", "fp32") == 67.0);
    assert_true(bench_gpu_peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.0);
    assert_true(bench_gpu_peak_tflops("NVIDIA H200", "bf16") == 989.0);
    /* Exact names only: a prefix or an unknown card or precision is n/a. */
    assert_true(bench_gpu_peak_tflops("NVIDIA H100", "bf16") == 0.0);
    assert_true(bench_gpu_peak_tflops("NVIDIA GeForce RTX 4090", "bf16") == 0.0);
    assert_true(bench_gpu_peak_tflops("NVIDIA H100 80GB HBM3", "fp16") == 0.0);
    assert_true(bench_gpu_peak_tflops("", "") == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_finds_the_limit),
        cmocka_unit_test(test_nothing_fits),
        cmocka_unit_test(test_a_hard_failure_stops_the_search),
        cmocka_unit_test(test_bad_cap),
        cmocka_unit_test(test_peaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
