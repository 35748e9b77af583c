/*
 * tests/test_model_support.h — what the cmocka tests of the backend ops
 * share: random and copied host buffers from one seeded stream per test
 * program, and the normwise comparison they assert with. Include after
 * <cmocka.h>.
 */
#ifndef PNX_TEST_MODEL_SUPPORT_H
#define PNX_TEST_MODEL_SUPPORT_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

/* The test program's stream; each test seeds it. */
static pnx_rng rng;

/* n values uniform in ±scale. */
static float *random_buffer(size_t n, float scale)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(scale * (2.0 * pnx_rng_uniform(&rng) - 1.0));
    return p;
}

static float *copy_buffer(const float *src, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* max |a−b| / max(|b|_max, 1e-6): a relative error over the whole tensor;
 * a NaN difference is infinite. */
static double rel_error(const float *a, const float *b, size_t n)
{
    double maxdiff = 0, maxref = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > maxdiff || isnan(d))
            maxdiff = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > maxref)
            maxref = fabs(b[i]);
    }
    return maxdiff / maxref;
}

#define ASSERT_CLOSE(a, b, n, tol)                                                     \
    do {                                                                               \
        double e_ = rel_error((a), (b), (n));                                          \
        if (!(e_ <= (tol)))                                                            \
            fail_msg("%s vs %s: relative error %.3g > %.3g", #a, #b, e_, (double)(tol)); \
    } while (0)

#endif
