/*
 * tests/test_model_fused.c — the fused BatchNorm+ReLU ops and the
 * activation transfers, on the reference and CPU backends.
 *
 * The oracle is the plain composition of ops_ref.c's BatchNorm and ReLU:
 * forward in training and eval, backward with and without accumulation,
 * y == x in the forward, dy left untouched by the backward, shapes with odd
 * sizes, one channel, and enough channels to spread over threads. Both
 * backends reuse the reference's per-channel arithmetic, so the tolerance
 * is a few float roundings. act_upload / act_download round-trip exactly on
 * these float32 NCHW backends.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/backend.h"
#include "model/cpu/cpu_backend.h"
#include "model/ops_ref.h"

#define MOMENTUM 0.1f
#define EPS 1e-5f
/* Same arithmetic, only summation order across threads may differ. */
#define TOLERANCE 1e-6

#include "test_model_support.h"

/* One BatchNorm's parameters and statistics (C each). */
typedef struct bn_state {
    float *gamma, *beta, *rm, *rv, *sm, *si;
} bn_state;

static bn_state bn_new(int c)
{
    bn_state s = {random_buffer(c, 1), random_buffer(c, 0.5f), random_buffer(c, 0.5f),
                  random_buffer(c, 0.5f), calloc(c, 4), calloc(c, 4)};
    assert_true(s.sm && s.si);
    for (int i = 0; i < c; i++) {
        s.gamma[i] += 1.5f; /* some positive, some near zero */
        s.rv[i] += 1.0f;    /* a variance */
    }
    return s;
}

static bn_state bn_copy(const bn_state *s, int c)
{
    bn_state t = {copy_buffer(s->gamma, c), copy_buffer(s->beta, c), copy_buffer(s->rm, c),
                  copy_buffer(s->rv, c), copy_buffer(s->sm, c), copy_buffer(s->si, c)};
    return t;
}

static void bn_free(bn_state *s)
{
    free(s->gamma), free(s->beta), free(s->rm), free(s->rv), free(s->sm), free(s->si);
}

/* x with a different mean per channel, so that ReLU masks a real share. */
static float *bn_input(pnx_dims d)
{
    const size_t n = pnx_dims_count(d), P = (size_t)d.h * d.w;
    float *x = random_buffer(n, 2);
    for (size_t i = 0; i < n; i++)
        x[i] += (float)((i / P) % (size_t)d.c) - 1.0f;
    return x;
}

/* Forward (training and eval), aliasing, and backward of one shape. */
static void check_fused(pnx_backend *be, pnx_dims d)
{
    const int C = d.c;
    const size_t n = pnx_dims_count(d);
    float *x = bn_input(d);

    for (int training = 0; training <= 1; training++) {
        bn_state ref = bn_new(C), got = bn_copy(&ref, C);
        float *y_ref = calloc(n, 4), *y_got = calloc(n, 4);
        assert_true(y_ref && y_got);
        assert_int_equal(pnx_ref_batchnorm_forward(x, d, ref.gamma, ref.beta, ref.rm, ref.rv,
                                                   training, MOMENTUM, EPS, y_ref, ref.sm,
                                                   ref.si), 0);
        pnx_ref_relu_forward(y_ref, y_ref, n);
        assert_int_equal(be->ops->batchnorm_relu_forward(be, x, d, got.gamma, got.beta, got.rm,
                                                         got.rv, training, MOMENTUM, EPS, y_got,
                                                         got.sm, got.si), 0);
        ASSERT_CLOSE(y_got, y_ref, n, TOLERANCE);
        ASSERT_CLOSE(got.rm, ref.rm, C, TOLERANCE);
        ASSERT_CLOSE(got.rv, ref.rv, C, TOLERANCE);
        if (training) {
            ASSERT_CLOSE(got.sm, ref.sm, C, TOLERANCE);
            ASSERT_CLOSE(got.si, ref.si, C, TOLERANCE);
        }
        size_t zeros = 0;
        for (size_t i = 0; i < n; i++)
            zeros += y_ref[i] == 0.0f;
        assert_true(zeros > 0 && zeros < n); /* the mask is neither all nor nothing */

        /* y == x: normalised in place, the same values. */
        bn_state alias = bn_copy(&ref, C);
        memcpy(alias.rm, got.rm, C * sizeof(float));
        memcpy(alias.rv, got.rv, C * sizeof(float));
        bn_state again = bn_copy(&alias, C);
        float *inplace = copy_buffer(x, n), *y2 = calloc(n, 4);
        assert_non_null(y2);
        assert_int_equal(be->ops->batchnorm_relu_forward(be, inplace, d, alias.gamma, alias.beta,
                                                         alias.rm, alias.rv, training, MOMENTUM,
                                                         EPS, inplace, alias.sm, alias.si), 0);
        assert_int_equal(be->ops->batchnorm_relu_forward(be, x, d, again.gamma, again.beta,
                                                         again.rm, again.rv, training, MOMENTUM,
                                                         EPS, y2, again.sm, again.si), 0);
        assert_memory_equal(inplace, y2, n * sizeof(float));
        assert_memory_equal(alias.rv, again.rv, C * sizeof(float));
        free(inplace), free(y2);
        bn_free(&alias), bn_free(&again);

        if (training) {
            /* Backward, overwriting and accumulating into non-zero buffers. */
            float *dy = random_buffer(n, 1), *dy_saved = copy_buffer(dy, n);
            float *masked = calloc(n, 4);
            assert_non_null(masked);
            pnx_ref_relu_backward(y_ref, dy, masked, n);
            for (int acc = 0; acc <= 1; acc++) {
                float *dx_ref = random_buffer(n, 1), *dx_got = copy_buffer(dx_ref, n);
                float *dg_ref = random_buffer(C, 1), *dg_got = copy_buffer(dg_ref, C);
                float *db_ref = random_buffer(C, 1), *db_got = copy_buffer(db_ref, C);
                pnx_ref_batchnorm_backward(x, d, ref.gamma, ref.sm, ref.si, masked, dx_ref, acc,
                                           dg_ref, db_ref);
                assert_int_equal(be->ops->batchnorm_relu_backward(be, x, y_got, d, got.gamma,
                                                                  got.sm, got.si, dy, dx_got, acc,
                                                                  dg_got, db_got), 0);
                ASSERT_CLOSE(dx_got, dx_ref, n, TOLERANCE);
                ASSERT_CLOSE(dg_got, dg_ref, C, TOLERANCE);
                ASSERT_CLOSE(db_got, db_ref, C, TOLERANCE);
                assert_memory_equal(dy, dy_saved, n * sizeof(float));
                free(dx_ref), free(dx_got), free(dg_ref), free(dg_got), free(db_ref),
                    free(db_got);
            }
            free(dy), free(dy_saved), free(masked);
        }
        free(y_ref), free(y_got);
        bn_free(&ref), bn_free(&got);
    }
    free(x);
}

static void check_backend_fused(pnx_backend *be)
{
    check_fused(be, (pnx_dims){3, 4, 5, 3});
    check_fused(be, (pnx_dims){2, 5, 7, 9});
    check_fused(be, (pnx_dims){1, 1, 3, 5});
    check_fused(be, (pnx_dims){2, 48, 16, 16}); /* spread over the threads */

    /* Training needs two values per channel, fused or not. */
    float one = 1, out, m, s, r = 0, v = 1, g = 1, b = 0;
    assert_int_equal(be->ops->batchnorm_relu_forward(be, &one, (pnx_dims){1, 1, 1, 1}, &g, &b, &r,
                                                     &v, 1, MOMENTUM, EPS, &out, &m, &s),
                     PNX_EINVAL);
}

static void test_reference_fused(void **state)
{
    (void)state;
    pnx_backend *be = NULL;
    assert_int_equal(pnx_backend_reference_create(&be), 0);
    check_backend_fused(be);
    pnx_backend_destroy(be);
}

static void test_cpu_fused(void **state)
{
    (void)state;
    pnx_backend *be = NULL;
    assert_int_equal(pnx_backend_cpu_create(&be, 3), 0);
    check_backend_fused(be);
    pnx_backend_destroy(be);
}

/* act_upload then act_download gives the host tensor back, bit for bit
 * (NaN, -0 and denormals included), through backend memory of
 * pnx_act_bytes. */
static void check_act_round_trip(pnx_backend *be)
{
    assert_int_equal(be->act_size, 4);
    const pnx_dims d = {2, 3, 5, 7};
    const size_t n = pnx_dims_count(d);
    assert_int_equal(pnx_act_bytes(be, d), n * 4);
    float *host = random_buffer(n, 100), *back = calloc(n, 4);
    assert_non_null(back);
    host[0] = NAN;
    host[1] = -0.0f;
    host[2] = 1e-40f;
    void *dev = NULL;
    assert_int_equal(be->ops->alloc(be, pnx_act_bytes(be, d), &dev), 0);
    assert_int_equal(be->ops->act_upload(be, dev, host, d), 0);
    assert_int_equal(be->ops->act_download(be, back, dev, d), 0);
    assert_memory_equal(back, host, n * sizeof(float));
    /* An empty tensor moves nothing; a negative side is refused. */
    assert_int_equal(be->ops->act_upload(be, dev, host, (pnx_dims){0, 3, 5, 7}), 0);
    assert_int_equal(be->ops->act_download(be, back, dev, (pnx_dims){2, -3, 5, 7}), PNX_EINVAL);
    assert_null(be->ops->mem_info);
    be->ops->release(be, dev);
    free(host), free(back);
}

static void test_act_round_trip(void **state)
{
    (void)state;
    pnx_backend *ref = NULL, *cpu = NULL;
    assert_int_equal(pnx_backend_reference_create(&ref), 0);
    assert_int_equal(pnx_backend_cpu_create(&cpu, 2), 0);
    check_act_round_trip(ref);
    check_act_round_trip(cpu);
    pnx_backend_destroy(ref);
    pnx_backend_destroy(cpu);
}

static int setup(void **state)
{
    (void)state;
    pnx_rng_seed(&rng, 77, 0);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_fused),
        cmocka_unit_test(test_cpu_fused),
        cmocka_unit_test(test_act_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
