/*
 * bench/gpu/fit_batch.c — the doubling-then-bisection search of
 * fit_batch.h.
 */
#include "bench/gpu/fit_batch.h"

#include "common/error.h"

int bench_fit_batch(bench_fit_trial trial, void *ctx, int guess, int cap,
                    bench_fit_result *out)
{
    out->batch = 0;
    out->capped = 0;
    out->trials = 0;
    if (cap < 1 || cap > BENCH_FIT_MAX_CAP)
        return pnx_fail(PNX_EINVAL, "batch cap %d is outside 1..%d", cap, BENCH_FIT_MAX_CAP);
    /* Invariant: lo fits (0: none known yet), hi does not (cap + 1: none
     * known yet), and nothing between them has been tried. */
    int lo = 0, hi = cap + 1;
    int b = guess < 1 ? 1 : guess > cap ? cap : guess;
    for (;;) {
        int r = trial(ctx, b);
        out->trials++;
        if (r < 0)
            return r;
        if (r == 0) {
            hi = b;
            break;
        }
        lo = b;
        if (b == cap)
            break;
        b = b > cap / 2 ? cap : 2 * b;
    }
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        int r = trial(ctx, mid);
        out->trials++;
        if (r < 0)
            return r;
        if (r)
            lo = mid;
        else
            hi = mid;
    }
    if (lo == 0)
        return pnx_fail(PNX_ERANGE, "not even a batch of 1 fits");
    out->batch = lo;
    out->capped = lo == cap;
    return 0;
}
